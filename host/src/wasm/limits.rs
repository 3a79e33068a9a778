//! What one guest may use: time between waits (counted in epoch ticks of wasm execution) and
//! linear memory. Going past either traps the guest with a [`GuestLimit`] that says which.

use std::time::Duration;
use wasmtime::UpdateDeadline;

/// How often the engine's epoch moves on: the unit of a guest's running time.
pub const TICK: Duration = Duration::from_millis(10);

/// A limit a guest went past.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestLimit {
    #[error("deadline_exceeded: ran for more than {0:?} without waiting")]
    Deadline(Duration),
    #[error(
        "memory_limit: tried to grow its memory to {wanted} bytes, over the {limit}-byte limit"
    )]
    Memory { wanted: usize, limit: usize },
}

/// Why a guest call ended in a trap, as a failure message `kind: text` about `what` (say,
/// "orchestration"): a limit it went past, or a trap with its wasm backtrace.
pub fn trap_message(what: &str, trap: &wasmtime::Error) -> String {
    match trap.downcast_ref::<GuestLimit>() {
        Some(limit) => {
            let text = limit.to_string();
            let (kind, detail) = text.split_once(": ").unwrap_or(("limit", &text));
            format!("{kind}: the {what} {detail}")
        }
        None => {
            let mut message = format!("trap: the {what} trapped: {}", trap.root_cause());
            if let Some(backtrace) = trap.downcast_ref::<wasmtime::WasmBacktrace>() {
                message.push_str(&format!("\n{backtrace}"));
            }
            message
        }
    }
}

/// A guest's limits and what it has used of them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Ticks of running time allowed between waits; `None`: no limit (the caller bounds it).
    budget: Option<u64>,
    /// Ticks used since the guest last waited.
    used: u64,
    /// The most linear memory, in bytes.
    memory: usize,
}

impl Limits {
    pub fn new(deadline: Option<Duration>, memory: usize) -> Self {
        Self {
            budget: deadline.map(|d| (d.as_millis() / TICK.as_millis()).max(1) as u64),
            used: 0,
            memory,
        }
    }

    /// The guest waited (its time between waits starts again).
    pub fn waited(&mut self) {
        self.used = 0;
    }

    /// Called each tick the guest runs: yield to other tasks, or stop it if it is over budget.
    pub(super) fn tick(&mut self) -> wasmtime::Result<UpdateDeadline> {
        self.used += 1;
        match self.budget {
            Some(budget) if self.used > budget => {
                Err(GuestLimit::Deadline(TICK * budget as u32).into())
            }
            _ => Ok(UpdateDeadline::Yield(1)),
        }
    }
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            return Err(GuestLimit::Memory {
                wanted: desired,
                limit: self.memory,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}
