//! Running activities: a fresh instance of the component per attempt, with real WASI and
//! outbound HTTP; the result is recorded once.

use super::Runtime;
use crate::store::{ActivityWork, CompleteOutcome};
use crate::wasm::bindings::{Workflow, WorkflowPre};
use crate::wasm::{GuestState, HttpPolicy, Limits, activity_wasi, new_store, trap_message};

/// The activity side of a wasm store: what `activity-context` answers.
pub struct ActivityCall {
    pub(super) idempotency_key: String,
    pub(super) attempt: u32,
}

/// Runs one scheduled activity and records its result.
pub(super) async fn run(rt: Runtime, work: ActivityWork) {
    let span = super::spans::attempt(&work);
    // The attempt's outbound HTTP carries its span, so the systems it calls join the trace.
    let traceparent = crate::telemetry::context_of(&span)
        .as_ref()
        .and_then(crate::telemetry::traceparent);
    let result =
        tracing::Instrument::instrument(execute(&rt, &work, traceparent), span.clone()).await;
    if let Err(e) = &result {
        super::spans::failed(&span, e);
        tracing::info!(instance = %work.instance, activity = %work.name, "activity failed: {e}");
    }
    drop(span);
    let ok = result.is_ok();
    let recorded = record(&rt, &work, result).await;
    let outcome = match (ok, &recorded) {
        (true, _) => "completed",
        (false, Ok(CompleteOutcome::Retrying(_))) => "retried",
        (false, _) => "failed",
    };
    crate::metrics::get().attempt(&work.name, outcome);
    rt.finished_here(&work);
    match recorded {
        Ok(CompleteOutcome::Recorded) => rt.wake(&work.instance),
        // A retry timer was armed.
        Ok(CompleteOutcome::Retrying(_)) => rt.inner.timers_changed.notify_one(),
        Ok(CompleteOutcome::Ignored) => {}
        // Another node claimed the activity after this node's lease ran out; it runs it.
        Err(crate::store::StoreError::Fenced(_)) => {
            tracing::info!(instance = %work.instance, activity = %work.name, "result dropped: another node claimed the activity");
        }
        // Not recorded: the activity stays pending and runs again after a restart.
        Err(e) => tracing::error!(instance = %work.instance, "cannot record activity result: {e}"),
    }
}

/// Records an attempt's result. A write the store could not make (the disk failed, or is
/// full, or the database is unreachable) kept nothing, so it is made again, from the result
/// in memory, until it is made or the store closes: the instance goes on without a restart.
async fn record(
    rt: &Runtime,
    work: &ActivityWork,
    result: Result<String, String>,
) -> Result<CompleteOutcome, crate::store::StoreError> {
    use crate::store::StoreError;
    let mut wait = std::time::Duration::from_millis(50);
    loop {
        let now = rt.now();
        let recorded = rt
            .store()
            .complete_activity(work.instance.clone(), work.pos, result.clone(), now)
            .await;
        match recorded {
            Err(e @ (StoreError::Io(_) | StoreError::Full(_) | StoreError::Unavailable(_))) => {
                tracing::warn!(
                    instance = %work.instance, activity = %work.name,
                    "cannot record the activity's result ({e}); trying again in {wait:?}"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

async fn execute(
    rt: &Runtime,
    work: &ActivityWork,
    traceparent: Option<String>,
) -> Result<String, String> {
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
        HttpPolicy::Allow { traceparent },
        limits,
        call,
    );
    let mut store = new_store(rt.engine(), state);
    let attempt = async {
        let instance = instantiate(&loaded.activity, &mut store).await?;
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
pub(super) async fn instantiate<C: Send + 'static>(
    pre: &WorkflowPre<GuestState<C>>,
    store: &mut wasmtime::Store<GuestState<C>>,
) -> Result<Workflow, String> {
    loop {
        match pre.instantiate_async(&mut *store).await {
            Ok(instance) => return Ok(instance),
            Err(e) if crate::wasm::is_pool_exhausted(&e) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => return Err(format!("cannot instantiate: {e:#}")),
        }
    }
}
