//! Running activities: a fresh instance of the component per attempt, with real WASI and
//! outbound HTTP; the result is recorded once.

use super::{Loaded, Runtime};
use crate::store::{ActivityWork, CompleteOutcome};
use crate::wasm::bindings::Workflow;
use crate::wasm::bindings::weft::workflow::types::{
    Completion as WitCompletion, RetryPolicy as WitRetryPolicy,
};
use crate::wasm::bindings::weft::workflow::{activity_context, orchestration_context};
use crate::wasm::{GuestState, HttpPolicy, Limits, activity_wasi, new_store, trap_message};

/// The activity side of a wasm store.
pub struct ActivityCall {
    idempotency_key: String,
    attempt: u32,
}

impl ActivityCall {
    /// For asking a component what it exports, or applying an entity operation: no activity
    /// runs.
    pub(super) fn introspection() -> Self {
        Self {
            idempotency_key: String::new(),
            attempt: 0,
        }
    }
}

/// Runs one scheduled activity and records its result.
pub(super) async fn run(rt: Runtime, work: ActivityWork) {
    let result = execute(&rt, &work).await;
    if let Err(e) = &result {
        tracing::info!(instance = %work.instance, activity = %work.name, "activity failed: {e}");
    }
    match rt
        .store()
        .complete_activity(work.instance.clone(), work.pos, result, rt.now())
        .await
    {
        Ok(CompleteOutcome::Recorded) => rt.wake(&work.instance),
        // A retry timer was armed.
        Ok(CompleteOutcome::Retrying(_)) => rt.inner.timers_changed.notify_one(),
        Ok(CompleteOutcome::Ignored) => {}
        // Not recorded: the activity stays pending and runs again after a restart.
        Err(e) => tracing::error!(instance = %work.instance, "cannot record activity result: {e}"),
    }
}

async fn execute(rt: &Runtime, work: &ActivityWork) -> Result<String, String> {
    let loaded = rt
        .component(&work.digest)
        .await
        .map_err(|e| format!("cannot load component: {e}"))?;
    if !loaded.activities.contains(&work.name) {
        return Err(format!(
            "unknown activity '{}': the component exports {:?}",
            work.name, loaded.activities
        ));
    }
    let call = ActivityCall {
        idempotency_key: format!("{}/{}", work.instance, work.pos),
        attempt: work.attempt,
    };
    let settings = &rt.inner.settings;
    // The attempt's timeout bounds it; the guest still yields every tick so it can fire.
    let limits = Limits::new(None, settings.max_memory);
    let state = GuestState::new(
        activity_wasi(&settings.app_settings),
        HttpPolicy::Allow,
        limits,
        call,
    );
    let mut store = new_store(rt.engine(), state);
    let attempt = async {
        let instance = instantiate(&loaded, &mut store).await?;
        match instance
            .weft_workflow_activities()
            .call_execute(&mut store, &work.name, &work.input)
            .await
        {
            Ok(result) => result,
            Err(trap) => Err(trap_message("activity", &trap)),
        }
    };
    let output = tokio::time::timeout(settings.activity_timeout, attempt)
        .await
        .map_err(|_| {
            format!(
                "timeout: the activity did not finish within {:?}",
                settings.activity_timeout
            )
        })??;
    check_payload("the activity's output", &output, settings.max_payload)?;
    Ok(output)
}

/// A `payload_too_large` failure if `payload` is over `max` bytes.
pub(super) fn check_payload(what: &'static str, payload: &str, max: usize) -> Result<(), String> {
    crate::history::UsageError::check_size(what, payload, max).map_err(|e| e.to_string())
}

/// A fresh instance of a component for an activity or an entity operation; when every slot of
/// the pool is taken by running work, waits for one to free up.
pub(super) async fn instantiate(
    loaded: &Loaded,
    store: &mut wasmtime::Store<GuestState<ActivityCall>>,
) -> Result<Workflow, String> {
    loop {
        match loaded.activity.instantiate_async(&mut *store).await {
            Ok(instance) => return Ok(instance),
            Err(e) if crate::wasm::is_pool_exhausted(&e) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => return Err(format!("cannot instantiate: {e:#}")),
        }
    }
}

impl activity_context::Host for GuestState<ActivityCall> {
    async fn idempotency_key(&mut self) -> wasmtime::Result<String> {
        Ok(self.ctx.idempotency_key.clone())
    }

    async fn attempt(&mut self) -> wasmtime::Result<u32> {
        Ok(self.ctx.attempt)
    }
}

const NOT_HERE: &str = "orchestration-context is available to orchestrations, not activities";

impl orchestration_context::Host for GuestState<ActivityCall> {
    async fn instance_id(&mut self) -> wasmtime::Result<String> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn now(&mut self) -> wasmtime::Result<u64> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn new_guid(&mut self) -> wasmtime::Result<String> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn random_u64(&mut self) -> wasmtime::Result<u64> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn is_replaying(&mut self) -> wasmtime::Result<bool> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn log(&mut self, _message: String) -> wasmtime::Result<()> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn set_custom_status(&mut self, _status: String) -> wasmtime::Result<()> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn schedule_activity(
        &mut self,
        _name: String,
        _input: String,
        _retry: Option<WitRetryPolicy>,
    ) -> wasmtime::Result<u32> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn create_timer(&mut self, _fire_at: u64) -> wasmtime::Result<u32> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn signal_entity(
        &mut self,
        _name: String,
        _key: String,
        _operation: String,
        _input: String,
    ) -> wasmtime::Result<()> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn call_entity(
        &mut self,
        _name: String,
        _key: String,
        _operation: String,
        _input: String,
    ) -> wasmtime::Result<u32> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn call_sub_orchestration(
        &mut self,
        _name: String,
        _instance_id: Option<String>,
        _input: String,
    ) -> wasmtime::Result<u32> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn wait_event(&mut self, _name: String) -> wasmtime::Result<u32> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn callback_url(&mut self, _event: String, _ttl_ms: u64) -> wasmtime::Result<String> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn continue_as_new(&mut self, _input: String) -> wasmtime::Result<()> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn cancel(&mut self, _handle: u32) -> wasmtime::Result<()> {
        wasmtime::bail!(NOT_HERE)
    }
    async fn await_any(&mut self, _handles: Vec<u32>) -> wasmtime::Result<(u32, WitCompletion)> {
        wasmtime::bail!(NOT_HERE)
    }
}
