//! `orchestration-context`, the imports of an orchestration: each call replays its recorded
//! result or records it live (see [`Activation::step`]); live calls collect in the activation's
//! pending commit, which is written when the orchestration blocks in `await-any` (or ends).

use crate::history::{Completion, HistoryEvent, InstanceId, RetryPolicy};
use crate::runtime::activation::Activation;
use crate::store::{ChildStart, EntityKey, EntityOp, ScheduledActivity};
use crate::wasm::GuestState;
use crate::wasm::bindings::weft::workflow::orchestration_context;
use crate::wasm::bindings::weft::workflow::types::{
    Completion as WitCompletion, RetryPolicy as WitRetryPolicy,
};

fn to_wit(c: Completion) -> WitCompletion {
    match c {
        Completion::Success(s) => WitCompletion::Success(s),
        Completion::Failure(s) => WitCompletion::Failure(s),
        Completion::Fired => WitCompletion::Fired,
    }
}

impl orchestration_context::Host for GuestState<Activation> {
    async fn instance_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.ctx.id.to_string())
    }

    async fn now(&mut self) -> wasmtime::Result<u64> {
        let a = &mut self.ctx;
        let pos = a.pos;
        let value = match a.step(&HistoryEvent::Now { pos, value: 0 })? {
            Some(HistoryEvent::Now { value, .. }) => value,
            Some(_) => unreachable!("step matched the kind"),
            None => {
                let value = a.rt.now().max(a.clock.now());
                a.record(HistoryEvent::Now { pos, value })?;
                value
            }
        };
        a.clock.advance_to(value);
        Ok(value)
    }

    async fn new_guid(&mut self) -> wasmtime::Result<String> {
        let a = &mut self.ctx;
        let pos = a.pos;
        match a.step(&HistoryEvent::Guid {
            pos,
            value: String::new(),
        })? {
            Some(HistoryEvent::Guid { value, .. }) => Ok(value),
            Some(_) => unreachable!("step matched the kind"),
            None => {
                let bytes: [u8; 16] = a.derived(pos)[..16].try_into().expect("16 bytes");
                let value = uuid::Builder::from_random_bytes(bytes)
                    .into_uuid()
                    .hyphenated()
                    .to_string();
                a.record(HistoryEvent::Guid {
                    pos,
                    value: value.clone(),
                })?;
                Ok(value)
            }
        }
    }

    async fn random_u64(&mut self) -> wasmtime::Result<u64> {
        let a = &mut self.ctx;
        let pos = a.pos;
        match a.step(&HistoryEvent::Random { pos, value: 0 })? {
            Some(HistoryEvent::Random { value, .. }) => Ok(value),
            Some(_) => unreachable!("step matched the kind"),
            None => {
                let value = u64::from_le_bytes(a.derived(pos)[..8].try_into().expect("8 bytes"));
                a.record(HistoryEvent::Random { pos, value })?;
                Ok(value)
            }
        }
    }

    async fn is_replaying(&mut self) -> wasmtime::Result<bool> {
        Ok(self.ctx.replaying())
    }

    async fn log(&mut self, message: String) -> wasmtime::Result<()> {
        self.ctx.guest_log(message);
        Ok(())
    }

    async fn set_custom_status(&mut self, status: String) -> wasmtime::Result<()> {
        let a = &mut self.ctx;
        let event = HistoryEvent::CustomStatusSet {
            pos: a.pos,
            status: status.clone(),
        };
        if a.step(&event)?.is_none() {
            a.check_size("the custom status", &status)?;
            a.record(event)?;
            a.pending.custom_status = Some(status);
        }
        Ok(())
    }

    async fn schedule_activity(
        &mut self,
        name: String,
        input: String,
        retry: Option<WitRetryPolicy>,
    ) -> wasmtime::Result<u32> {
        let a = &mut self.ctx;
        let pos = a.pos;
        let retry = retry.map(|r| RetryPolicy {
            max_attempts: r.max_attempts,
            first_interval_ms: r.first_interval_ms,
            backoff_coefficient: r.backoff_coefficient,
            max_interval_ms: r.max_interval_ms,
            non_retryable: r.non_retryable,
        });
        let event = HistoryEvent::ActivityScheduled {
            pos,
            name: name.clone(),
            input: input.clone(),
            retry: retry.clone(),
        };
        if a.step(&event)?.is_none() {
            a.check_size("an activity's input", &input)?;
            a.record(event)?;
            a.pending.activities.push(ScheduledActivity {
                pos,
                name,
                input,
                retry,
            });
        }
        Ok(pos)
    }

    async fn call_sub_orchestration(
        &mut self,
        name: String,
        instance_id: Option<String>,
        input: String,
    ) -> wasmtime::Result<u32> {
        let a = &mut self.ctx;
        let pos = a.pos;
        let child = instance_id.unwrap_or_else(|| format!("{}:{pos}", a.id));
        let event = HistoryEvent::SubOrchestrationScheduled {
            pos,
            name: name.clone(),
            instance_id: child.clone(),
            input: input.clone(),
        };
        if a.step(&event)?.is_none() {
            a.check_size("a child orchestration's input", &input)?;
            let id: InstanceId = child
                .parse()
                .map_err(|e: crate::history::InvalidId| wasmtime::Error::msg(e.to_string()))?;
            let now = a.rt.now();
            let started = a.rt.digest_for(&name).map(|digest| HistoryEvent::Started {
                name: name.clone(),
                input,
                digest,
                seed: crate::runtime::seed_for(&id, now),
                at: now,
                // The child's spans go under this activation's.
                trace: a.waits.traceparent().or_else(|| a.trace.clone()),
            });
            a.record(event)?;
            a.pending.children.push(ChildStart {
                pos,
                id,
                name,
                started,
            });
        }
        Ok(pos)
    }

    async fn create_timer(&mut self, fire_at: u64) -> wasmtime::Result<u32> {
        let a = &mut self.ctx;
        let pos = a.pos;
        let event = HistoryEvent::TimerCreated { pos, fire_at };
        if a.step(&event)?.is_none() {
            a.record(event)?;
            a.pending.timers.push((pos, fire_at));
        }
        let since = a.clock.now();
        a.waits.timer(pos, since, fire_at);
        Ok(pos)
    }

    async fn wait_event(&mut self, name: String) -> wasmtime::Result<u32> {
        let a = &mut self.ctx;
        let pos = a.pos;
        a.waits.event(pos, a.clock.now(), &name);
        let event = HistoryEvent::EventWaitCreated { pos, name };
        if a.step(&event)?.is_none() {
            a.record(event)?;
        }
        Ok(pos)
    }

    async fn signal_entity(
        &mut self,
        name: String,
        key: String,
        operation: String,
        input: String,
    ) -> wasmtime::Result<()> {
        let op = EntityOp {
            entity: EntityKey { name, key },
            operation,
            input,
            reply: None,
        };
        self.ctx.send_entity_op(op).map(|_| ())
    }

    async fn call_entity(
        &mut self,
        name: String,
        key: String,
        operation: String,
        input: String,
    ) -> wasmtime::Result<u32> {
        let op = EntityOp {
            entity: EntityKey { name, key },
            operation,
            input,
            reply: Some(self.ctx.pos),
        };
        self.ctx.send_entity_op(op)
    }

    async fn callback_url(&mut self, event: String, ttl_ms: u64) -> wasmtime::Result<String> {
        let a = &mut self.ctx;
        let pos = a.pos;
        let attempted = HistoryEvent::CallbackUrlCreated {
            pos,
            event: event.clone(),
            expires_at: 0,
            url: String::new(),
        };
        match a.step(&attempted)? {
            Some(HistoryEvent::CallbackUrlCreated { url, .. }) => Ok(url),
            Some(_) => unreachable!("step matched the kind"),
            None => {
                let now = a.rt.now().max(a.clock.now());
                let expires_at = now.saturating_add(ttl_ms);
                let url = a.rt.callback_url(&a.id, &event, expires_at);
                a.record(HistoryEvent::CallbackUrlCreated {
                    pos,
                    event,
                    expires_at,
                    url: url.clone(),
                })?;
                Ok(url)
            }
        }
    }

    async fn continue_as_new(&mut self, input: String) -> wasmtime::Result<()> {
        let a = &mut self.ctx;
        let event = HistoryEvent::ContinueAsNewRequested { pos: a.pos, input };
        if a.step(&event)?.is_none() {
            if let HistoryEvent::ContinueAsNewRequested { input, .. } = &event {
                a.check_size("the next run's input", input)?;
            }
            a.record(event)?;
        }
        Ok(())
    }

    async fn cancel(&mut self, handle: u32) -> wasmtime::Result<()> {
        let a = &mut self.ctx;
        a.run.check_handle(handle)?;
        let event = HistoryEvent::Cancelled { pos: a.pos, handle };
        if a.step(&event)?.is_none() {
            if a.run.is_timer(handle) {
                a.pending.cancel_timers.push(handle);
            }
            a.record(event)?;
        }
        Ok(())
    }

    async fn await_any(&mut self, handles: Vec<u32>) -> wasmtime::Result<(u32, WitCompletion)> {
        let a = &mut self.ctx;
        let pos = a.pos;
        let attempted = HistoryEvent::AwaitResolved {
            pos,
            handles: handles.clone(),
            winner: 0,
            completion: Completion::Fired,
            arrival: 0,
            at: 0,
        };
        if let Some(HistoryEvent::AwaitResolved {
            winner,
            completion,
            at,
            ..
        }) = a.step(&attempted)?
        {
            a.clock.advance_to(at);
            a.waits.taken(winner, at, false);
            return Ok((winner, to_wit(completion)));
        }
        loop {
            let resolved = a.run.resolve(&handles)?;
            if resolved.is_some() && a.run.is_suspended() {
                // A suspended run records arrivals but takes none until it is resumed.
                tracing::info!(instance = %a.id, "suspended: holding what arrived until resumed");
            } else if let Some(r) = resolved {
                let at = a.rt.now().max(a.clock.now());
                a.clock.advance_to(at);
                a.record(HistoryEvent::AwaitResolved {
                    pos,
                    handles,
                    winner: r.winner,
                    completion: r.completion.clone(),
                    arrival: r.arrival,
                    at,
                })?;
                a.waits.taken(r.winner, at, true);
                return Ok((r.winner, to_wit(r.completion)));
            }
            a.flush().await?;
            a.wait_for_news().await?;
            // Time spent waiting is not running time.
            self.limits.waited();
        }
    }
}
