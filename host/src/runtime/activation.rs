//! Running an orchestration: the instance actor, and the `orchestration-context` imports that
//! replay recorded calls and record live ones.
//!
//! Record before effect: live calls collect in `pending`; when the orchestration blocks (or
//! ends) they are committed in one write, and only then are activities dispatched and timers
//! armed.

use super::{Loaded, Runtime};
use crate::history::RuntimeStatus;
use crate::history::{
    Completion, HistoryEvent, InstanceId, Pos, RetryPolicy, RunState, Step, UsageError,
};
use crate::store::{ActivityWork, Append, ChildStart, EntityKey, EntityOp, ScheduledActivity};
use crate::wasm::bindings::weft::workflow::types::{
    Completion as WitCompletion, RetryPolicy as WitRetryPolicy,
};
use crate::wasm::bindings::weft::workflow::{activity_context, orchestration_context};
use crate::wasm::{
    GuestState, HttpPolicy, Limits, OrchestrationClock, new_store, orchestration_wasi, trap_message,
};
use std::time::Duration;
use tokio::sync::mpsc;

/// Why an activation stops before the orchestration returns. Raised as a trap to unwind the
/// guest; never shown to users.
#[derive(Debug, thiserror::Error)]
enum Stop {
    /// Nothing happened for the idle timeout: the instance is evicted.
    #[error("evicted while idle")]
    Idle,
    /// The instance ended from outside (terminated, purged).
    #[error("the instance has ended")]
    Ended,
    /// A write failed; the activation's state is ahead of the database. It is dropped and the
    /// instance replayed later.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The host is shutting down.
    #[error("shutting down")]
    Shutdown,
    /// The instance was moved to another component: replay it there.
    #[error("moved to another component")]
    Moved,
    /// A check replayed the whole history: the code made every recorded call.
    #[error("the replay caught up with the history")]
    CaughtUp,
}

/// The orchestration side of a wasm store: the run's state and what is not yet committed.
pub struct Activation {
    rt: Runtime,
    id: InstanceId,
    run: RunState,
    /// The position of the next host call.
    pos: Pos,
    pending: Append,
    clock: OrchestrationClock,
    seed: u64,
    digest: crate::history::ComponentDigest,
    /// Wake-ups: something was appended to the history.
    mailbox: mpsc::Receiver<()>,
    /// The last history position read from the store.
    seen: u64,
    /// Only replay, to check the code against the history: stop at the first live call.
    check_only: bool,
}

/// How an actor's activation ended.
enum Exit {
    /// The run ended (or had ended): the actor is done.
    Done,
    /// Evicted while waiting; the mailbox goes back to the actor.
    Idle(mpsc::Receiver<()>),
    /// The run continued as new: the next run starts at once.
    Continue(mpsc::Receiver<()>),
    /// A failure outside the orchestration's control; try again later.
    Retry(mpsc::Receiver<()>),
}

/// The actor of one instance: runs activations until the instance ends or idles out.
pub(super) async fn actor(rt: Runtime, id: InstanceId, mut mailbox: mpsc::Receiver<()>) {
    loop {
        match activate(&rt, &id, mailbox).await {
            Exit::Done => {
                let mut dummy = mpsc::channel(1).1;
                rt.retire(&id, &mut dummy);
                return;
            }
            Exit::Idle(mut rx) => {
                if rt.retire(&id, &mut rx) {
                    return;
                }
                mailbox = rx;
            }
            Exit::Continue(rx) => mailbox = rx,
            Exit::Retry(rx) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                mailbox = rx;
            }
        }
    }
}

/// Loads the instance, replays its history into a fresh wasm instance and runs it live until it
/// ends or idles out.
async fn activate(rt: &Runtime, id: &InstanceId, mailbox: mpsc::Receiver<()>) -> Exit {
    let history = match rt.store().history(id.clone(), 0).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(instance = %id, "cannot load history: {e}");
            return Exit::Retry(mailbox);
        }
    };
    let Some(start) = Start::of(&history) else {
        // Purged, or never created.
        return Exit::Done;
    };
    // The component the instance is pinned to now: the one it started on, unless it was
    // moved since (a move asked before this activation is served by it).
    rt.take_moved(id);
    let digest = match rt.store().instance(id.clone()).await {
        Ok(Some(row)) => row.digest,
        Ok(None) => return Exit::Done,
        Err(e) => {
            tracing::error!(instance = %id, "cannot load instance: {e}");
            return Exit::Retry(mailbox);
        }
    };
    let run = RunState::from_history(&history);
    if run.end().is_some() {
        return Exit::Done;
    }
    let loaded = match rt.component(&digest).await {
        Ok(l) => l,
        Err(e) => {
            let message = format!("cannot load component {}: {e}", digest.short());
            return finish_failed(rt, id, message, mailbox).await;
        }
    };
    if run.recorded_calls() > 0 {
        tracing::info!(instance = %id, "replaying {} recorded calls", run.recorded_calls());
    }
    let (activation, result) = run_guest(rt, id, &loaded, start, run, mailbox, false).await;
    if let Err(e) = &result
        && crate::wasm::is_pool_exhausted(e)
    {
        tracing::warn!(instance = %id, "no free instance slot; trying again shortly");
        return Exit::Retry(activation.mailbox);
    }
    match result {
        Ok(output) => activation.finish(output).await,
        Err(trap) => match trap.downcast::<Stop>() {
            Ok(Stop::Idle) => Exit::Idle(activation.mailbox),
            Ok(Stop::Moved) => Exit::Continue(activation.mailbox),
            Ok(Stop::CaughtUp) => unreachable!("only a check stops when it catches up"),
            Ok(Stop::Ended | Stop::Shutdown) => Exit::Done,
            Ok(Stop::Store(e)) => {
                tracing::error!(instance = %id, "activation dropped: {e}");
                Exit::Retry(activation.mailbox)
            }
            Err(trap) => {
                let message = match trap.downcast_ref::<crate::history::UsageError>() {
                    Some(usage) => usage.to_string(),
                    None => trap_message("orchestration", &trap),
                };
                activation.fail(message).await
            }
        },
    }
}

/// How a run started: from its `started` event.
struct Start {
    name: String,
    input: String,
    seed: u64,
    at: crate::clock::Millis,
}

impl Start {
    fn of(history: &[crate::history::Recorded]) -> Option<Self> {
        match history.first().map(|r| &r.event) {
            Some(HistoryEvent::Started {
                name,
                input,
                seed,
                at,
                ..
            }) => Some(Self {
                name: name.clone(),
                input: input.clone(),
                seed: *seed,
                at: *at,
            }),
            _ => None,
        }
    }
}

/// Runs the orchestration of `start` in a fresh instance of `loaded`, replaying `run`; live
/// after that, or (with `check_only`) stopping where the history ends. The activation as it
/// was left, and what the guest returned.
async fn run_guest(
    rt: &Runtime,
    id: &InstanceId,
    loaded: &Loaded,
    start: Start,
    run: RunState,
    mailbox: mpsc::Receiver<()>,
    check_only: bool,
) -> (Activation, wasmtime::Result<Result<String, String>>) {
    let clock = OrchestrationClock::new(start.at);
    let seen = run.last_seq().unwrap_or(0);
    let activation = Activation {
        rt: rt.clone(),
        id: id.clone(),
        run,
        pos: 0,
        pending: Append::default(),
        clock: clock.clone(),
        seed: start.seed,
        digest: loaded.digest.clone(),
        mailbox,
        seen,
        check_only,
    };
    let settings = &rt.inner.settings;
    let limits = Limits::new(Some(settings.activation_deadline), settings.max_memory);
    let state = GuestState::new(
        orchestration_wasi(&clock, start.seed),
        HttpPolicy::Deny,
        limits,
        activation,
    );
    let mut store = new_store(rt.engine(), state);
    let result = match loaded.orchestration.instantiate_async(&mut store).await {
        Ok(instance) => {
            instance
                .weft_workflow_orchestrations()
                .call_run(&mut store, &start.name, &start.input)
                .await
        }
        Err(e) => Err(e),
    };
    (store.into_data().ctx, result)
}

/// Replays instance `id`'s history against `loaded` without recording anything: `Ok` with
/// the history's next position if the code makes the recorded calls (it may go on further),
/// or the first divergence.
pub(super) async fn check_replay(
    rt: &Runtime,
    id: &InstanceId,
    loaded: &Loaded,
) -> Result<crate::history::Seq, String> {
    let history = rt
        .store()
        .history(id.clone(), 0)
        .await
        .map_err(|e| e.to_string())?;
    let start = Start::of(&history).ok_or_else(|| format!("instance '{id}' has no history"))?;
    if !loaded.orchestrations.contains(&start.name) {
        return Err(format!(
            "misuse: the component does not export orchestration '{}'",
            start.name
        ));
    }
    let next = history.last().map_or(0, |r| r.seq + 1);
    let run = RunState::from_history(&history);
    let (activation, result) =
        run_guest(rt, id, loaded, start, run, mpsc::channel(1).1, true).await;
    match result {
        Ok(_) if (activation.pos as usize) < activation.run.recorded_calls() => {
            Err(UsageError::FinishedEarly {
                made: activation.pos as usize,
                recorded: activation.run.recorded_calls(),
            }
            .to_string())
        }
        Ok(_) => Ok(next),
        Err(trap) => match trap.downcast_ref::<Stop>() {
            Some(Stop::CaughtUp) => Ok(next),
            _ => Err(match trap.downcast_ref::<UsageError>() {
                Some(usage) => usage.to_string(),
                None => trap_message("orchestration", &trap),
            }),
        },
    }
}

async fn finish_failed(
    rt: &Runtime,
    id: &InstanceId,
    message: String,
    mailbox: mpsc::Receiver<()>,
) -> Exit {
    let append = Append {
        events: vec![HistoryEvent::Failed {
            error: message.clone(),
        }],
        end: Some((RuntimeStatus::Failed, None, Some(message))),
        ..Append::default()
    };
    match rt.store().append(id.clone(), append, rt.now()).await {
        Ok(_) => Exit::Done,
        Err(e) => {
            tracing::error!(instance = %id, "cannot record failure: {e}");
            Exit::Retry(mailbox)
        }
    }
}

impl Activation {
    /// The orchestration returned: commit what is pending with the end.
    async fn finish(mut self, output: Result<String, String>) -> Exit {
        if (self.pos as usize) < self.run.recorded_calls() {
            let usage = crate::history::UsageError::FinishedEarly {
                made: self.pos as usize,
                recorded: self.run.recorded_calls(),
            };
            return self.fail(usage.to_string()).await;
        }
        if let Some(input) = self.run.continue_as_new().map(str::to_string) {
            return self.continue_as_new(input).await;
        }
        let max = self.rt.inner.settings.max_payload;
        if let Ok(out) | Err(out) = &output
            && let Err(e) = UsageError::check_size("the orchestration's output", out, max)
        {
            return self.fail(e.to_string()).await;
        }
        let (event, end) = match output {
            Ok(output) => (
                HistoryEvent::Completed {
                    output: output.clone(),
                },
                (RuntimeStatus::Completed, Some(output), None),
            ),
            Err(error) => (
                HistoryEvent::Failed {
                    error: error.clone(),
                },
                (RuntimeStatus::Failed, None, Some(error)),
            ),
        };
        self.pending.events.push(event);
        self.pending.end = Some(end);
        self.commit_end().await
    }

    /// The run asked to continue as new: archive it and start the next run.
    async fn continue_as_new(mut self, input: String) -> Exit {
        let events = std::mem::take(&mut self.pending.events);
        let entity_ops = std::mem::take(&mut self.pending.entity_ops);
        let entities: Vec<EntityKey> = entity_ops.iter().map(|op| op.entity.clone()).collect();
        let now = self.rt.now();
        let seed = super::seed_for(&self.id, now.wrapping_add(self.seen));
        match self
            .rt
            .store()
            .continue_as_new(self.id.clone(), events, entity_ops, input, seed, now)
            .await
        {
            Ok(true) => {
                for entity in &entities {
                    self.rt.wake_entity(entity);
                }
                Exit::Continue(self.mailbox)
            }
            Ok(false) => Exit::Done,
            Err(e) => {
                tracing::error!(instance = %self.id, "cannot continue as new: {e}");
                Exit::Retry(self.mailbox)
            }
        }
    }

    /// The orchestration failed (trap, nondeterminism, misuse): record the failure. Calls it
    /// made live are dropped: they never took effect.
    async fn fail(mut self, message: String) -> Exit {
        tracing::warn!(instance = %self.id, "failed: {message}");
        self.pending = Append {
            events: vec![HistoryEvent::Failed {
                error: message.clone(),
            }],
            end: Some((RuntimeStatus::Failed, None, Some(message))),
            ..Append::default()
        };
        self.commit_end().await
    }

    async fn commit_end(mut self) -> Exit {
        let append = std::mem::take(&mut self.pending);
        let status = append.end.as_ref().map(|(s, _, _)| *s);
        match self
            .rt
            .store()
            .append(self.id.clone(), append, self.rt.now())
            .await
        {
            Ok(committed) => {
                if let Some(appended) = committed {
                    for id in &appended.wake {
                        self.rt.wake(id);
                    }
                    for entity in &appended.entities {
                        self.rt.wake_entity(entity);
                    }
                    if let Some(status) = status {
                        self.rt.announce_finished(&self.id, status);
                    }
                }
                Exit::Done
            }
            Err(e) => {
                tracing::error!(instance = %self.id, "cannot record the end: {e}");
                Exit::Retry(self.mailbox)
            }
        }
    }

    fn replaying(&self) -> bool {
        (self.pos as usize) < self.run.recorded_calls()
    }

    /// Matches the call against the history: the recorded event on replay, `None` when live.
    fn step(&mut self, attempted: &HistoryEvent) -> wasmtime::Result<Option<HistoryEvent>> {
        match self.run.step(self.pos, attempted)? {
            Step::Replay(recorded) => {
                let recorded = recorded.clone();
                self.pos += 1;
                Ok(Some(recorded))
            }
            Step::Live if self.check_only => Err(Stop::CaughtUp.into()),
            Step::Live => Ok(None),
        }
    }

    /// Records a live call, unless the history is full.
    fn record(&mut self, event: HistoryEvent) -> Result<(), UsageError> {
        let max = self.rt.inner.settings.max_history;
        if self.seen as usize + 1 + self.pending.events.len() >= max {
            return Err(UsageError::HistoryLimit(max));
        }
        self.run.record_call(&event);
        self.pending.events.push(event);
        self.pos += 1;
        Ok(())
    }

    /// A `payload_too_large` misuse if `payload` is over the limit.
    fn check_size(&self, what: &'static str, payload: &str) -> Result<(), UsageError> {
        UsageError::check_size(what, payload, self.rt.inner.settings.max_payload)
    }

    /// Records an entity signal (no `reply`) or call (`reply` is this position, the handle) and,
    /// when live, sends the operation with the activation's commit. The call's position.
    fn send_entity_op(&mut self, op: EntityOp) -> wasmtime::Result<Pos> {
        let pos = self.pos;
        let (name, key) = (op.entity.name.clone(), op.entity.key.clone());
        let (operation, input) = (op.operation.clone(), op.input.clone());
        let event = match op.reply {
            None => HistoryEvent::EntitySignalled {
                pos,
                name,
                key,
                operation,
                input,
            },
            Some(_) => HistoryEvent::EntityCalled {
                pos,
                name,
                key,
                operation,
                input,
            },
        };
        if self.step(&event)?.is_none() {
            self.check_size("an entity operation's input", &op.input)?;
            self.record(event)?;
            self.pending.entity_ops.push(op);
        }
        Ok(pos)
    }

    /// A value derived from the instance's seed and a position: replays need not store it,
    /// but it is recorded anyway so the history reads on its own.
    fn derived(&self, pos: Pos) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(format!("{}:{pos}", self.seed)).into()
    }

    /// Commits pending calls, then starts their effects.
    async fn flush(&mut self) -> Result<(), Stop> {
        if self.pending.events.is_empty() {
            return Ok(());
        }
        let append = std::mem::take(&mut self.pending);
        let activities = append.activities.clone();
        let armed = !append.timers.is_empty();
        let committed = self
            .rt
            .store()
            .append(self.id.clone(), append, self.rt.now())
            .await?;
        let Some(appended) = committed else {
            return Err(Stop::Ended);
        };
        for id in &appended.wake {
            self.rt.wake(id);
        }
        for entity in &appended.entities {
            self.rt.wake_entity(entity);
        }
        for a in activities {
            self.rt.dispatch_activity(ActivityWork {
                instance: self.id.clone(),
                pos: a.pos,
                name: a.name,
                input: a.input,
                attempt: 1,
                digest: self.digest.clone(),
            });
        }
        if armed {
            self.rt.inner.timers_changed.notify_one();
        }
        Ok(())
    }

    /// Waits for something to be appended to the history, then reads it.
    async fn wait_for_news(&mut self) -> Result<(), Stop> {
        let settings = &self.rt.inner.settings;
        // Over the bound of hot instances, a waiting instance leaves memory at once.
        let idle = if self.rt.hot_instances() > settings.max_hot {
            Duration::ZERO
        } else {
            settings.idle_timeout
        };
        let woken = match self.mailbox.try_recv() {
            Ok(()) => true,
            Err(mpsc::error::TryRecvError::Disconnected) => return Err(Stop::Shutdown),
            Err(mpsc::error::TryRecvError::Empty) if idle.is_zero() => false,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout(idle, self.mailbox.recv()).await {
                    Ok(Some(())) => true,
                    Ok(None) => return Err(Stop::Shutdown),
                    Err(_) => false,
                }
            }
        };
        if !woken {
            return Err(Stop::Idle);
        }
        if self.rt.take_moved(&self.id) {
            return Err(Stop::Moved);
        }
        let news = self
            .rt
            .store()
            .history(self.id.clone(), self.seen + 1)
            .await?;
        for r in news {
            self.seen = self.seen.max(r.seq);
            // Our own calls are applied already.
            if r.event.call_pos().is_none() {
                self.run.apply(r.seq, &r.event);
            }
        }
        if self.run.end().is_some() {
            return Err(Stop::Ended);
        }
        Ok(())
    }
}

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
        if !self.ctx.replaying() {
            tracing::info!(instance = %self.ctx.id, "{message}");
        }
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
                seed: super::seed_for(&id, now),
                at: now,
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
        Ok(pos)
    }

    async fn wait_event(&mut self, name: String) -> wasmtime::Result<u32> {
        let a = &mut self.ctx;
        let pos = a.pos;
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
                return Ok((r.winner, to_wit(r.completion)));
            }
            a.flush().await?;
            a.wait_for_news().await?;
            // Time spent waiting is not running time.
            self.limits.waited();
        }
    }
}

impl activity_context::Host for GuestState<Activation> {
    async fn idempotency_key(&mut self) -> wasmtime::Result<String> {
        wasmtime::bail!("activity-context is available to activities, not orchestrations")
    }

    async fn attempt(&mut self) -> wasmtime::Result<u32> {
        wasmtime::bail!("activity-context is available to activities, not orchestrations")
    }
}
