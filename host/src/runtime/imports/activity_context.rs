//! `activity-context`, the imports of an activity: which scheduled call and which attempt it
//! runs for.

use crate::runtime::activity::ActivityCall;
use crate::wasm::GuestState;
use crate::wasm::bindings::weft::workflow::activity_context;

impl activity_context::Host for GuestState<ActivityCall> {
    async fn idempotency_key(&mut self) -> wasmtime::Result<String> {
        Ok(self.ctx.idempotency_key.clone())
    }

    async fn attempt(&mut self) -> wasmtime::Result<u32> {
        Ok(self.ctx.attempt)
    }
}
