//! Running an orchestration: the instance actor, and the activation, the state a run's
//! `orchestration-context` imports (in `imports::orchestration_context`) replay and record
//! against.
//!
//! Record before effect: live calls collect in `pending`; when the orchestration blocks (or
//! ends) they are committed in one write, and only then are activities dispatched and timers
//! armed.

use super::{Loaded, Runtime};
use crate::history::RuntimeStatus;
use crate::history::{HistoryEvent, InstanceId, Pos, RunState, Step, UsageError};
use crate::store::{ActivityWork, Commit, ContinueAsNew, EntityOp};
use crate::wasm::{
    GuestState, HttpPolicy, Limits, OrchestrationClock, new_store, orchestration_wasi, trap_message,
};
use std::time::Duration;
use tokio::sync::mpsc;

/// Why an activation stops before the orchestration returns. Raised as a trap to unwind the
/// guest; never shown to users.
#[derive(Debug, thiserror::Error)]
pub(super) enum Stop {
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
    pub(super) rt: Runtime,
    pub(super) id: InstanceId,
    pub(super) run: RunState,
    /// The position of the next host call.
    pub(super) pos: Pos,
    pub(super) pending: Commit,
    pub(super) clock: OrchestrationClock,
    seed: u64,
    digest: crate::history::ComponentDigest,
    /// The orchestration's name (for metrics).
    orchestration: String,
    /// When the replay of a recorded history began, until its last recorded call is matched.
    replay_began: Option<tokio::time::Instant>,
    /// Wake-ups: something was appended to the history.
    mailbox: mpsc::Receiver<()>,
    /// The last history position read from the store.
    seen: u64,
    /// The lease this node holds on the instance, which its commits carry.
    lease: Option<u64>,
    /// Only replay, to check the code against the history: stop at the first live call.
    check_only: bool,
    /// The timers and event waits whose spans are made when an await takes them.
    pub(super) waits: super::spans::Waits,
    /// The instance's trace context (its `started` event's), which its activities carry.
    pub(super) trace: Option<String>,
    /// A check's copy of the guest's log lines, replayed ones too.
    pub(super) logs: Vec<String>,
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
    /// Another node holds the instance (and was told to look at it).
    Elsewhere(mpsc::Receiver<()>),
    /// Another node took the instance over: what this activation did is dropped.
    Fenced(mpsc::Receiver<()>),
}

/// The actor of one instance: runs activations until the instance ends or idles out.
pub(super) async fn actor(rt: Runtime, id: InstanceId, mut mailbox: mpsc::Receiver<()>) {
    loop {
        match activate(&rt, &id, mailbox).await {
            Exit::Done => {
                let mut dummy = mpsc::channel(1).1;
                rt.retire(&id, &mut dummy);
                rt.forget_lease(&id);
                return;
            }
            Exit::Idle(mut rx) => {
                rt.let_go(&id).await;
                if rt.retire(&id, &mut rx) {
                    return;
                }
                mailbox = rx;
            }
            Exit::Elsewhere(mut rx) => {
                if rt.retire(&id, &mut rx) {
                    return;
                }
                mailbox = rx;
            }
            Exit::Fenced(rx) => {
                tracing::info!(instance = %id, "another node took the instance over");
                rt.forget_lease(&id);
                // The next activation finds the holder and tells it what this node was told.
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
    let lease = match rt.hold(id).await {
        Ok(super::cluster::Holding::Held(epoch)) => epoch,
        Ok(super::cluster::Holding::Elsewhere(node)) => {
            rt.forward(&node, crate::store::Notice::Attend(id.clone()));
            return Exit::Elsewhere(mailbox);
        }
        Ok(super::cluster::Holding::Missing) => return Exit::Done,
        Err(e) => {
            tracing::error!(instance = %id, "cannot take the instance's lease: {e}");
            return Exit::Retry(mailbox);
        }
    };
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
            return finish_failed(rt, id, &start.name, message, lease, mailbox).await;
        }
    };
    let span = super::spans::activation(
        id,
        &start.name,
        start.trace.as_deref(),
        run.recorded_calls(),
    );
    let start = Start {
        span: crate::telemetry::context_of(&span),
        ..start
    };
    tracing::Instrument::instrument(run_live(rt, id, &loaded, start, run, mailbox, lease), span)
        .await
}

/// Runs an activation that was loaded, to its end or until it idles out.
async fn run_live(
    rt: &Runtime,
    id: &InstanceId,
    loaded: &Loaded,
    start: Start,
    run: RunState,
    mailbox: mpsc::Receiver<()>,
    lease: Option<u64>,
) -> Exit {
    if run.recorded_calls() > 0 {
        tracing::info!(instance = %id, "replaying {} recorded calls", run.recorded_calls());
    }
    let began = tokio::time::Instant::now();
    let (activation, result) = run_guest(rt, id, loaded, start, run, mailbox, Some(lease)).await;
    crate::metrics::get()
        .activation_seconds
        .observe(began.elapsed().as_secs_f64());
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
            Ok(Stop::Store(crate::store::StoreError::Fenced(_))) => {
                Exit::Fenced(activation.mailbox)
            }
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
pub(super) struct Start {
    pub(super) name: String,
    input: String,
    seed: u64,
    at: crate::clock::Millis,
    trace: Option<String>,
    /// The activation's span, when traces are exported.
    span: Option<opentelemetry::Context>,
}

impl Start {
    pub(super) fn of(history: &[crate::history::Recorded]) -> Option<Self> {
        match history.first().map(|r| &r.event) {
            Some(HistoryEvent::Started {
                name,
                input,
                seed,
                at,
                trace,
                ..
            }) => Some(Self {
                name: name.clone(),
                input: input.clone(),
                seed: *seed,
                at: *at,
                trace: trace.clone(),
                span: None,
            }),
            _ => None,
        }
    }
}

/// Runs the orchestration of `start` in a fresh instance of `loaded`, replaying `run`; live
/// after that, or (with `check_only`) stopping where the history ends. The activation as it
/// was left, and what the guest returned.
pub(super) async fn run_guest(
    rt: &Runtime,
    id: &InstanceId,
    loaded: &Loaded,
    start: Start,
    run: RunState,
    mailbox: mpsc::Receiver<()>,
    lease: Option<Option<u64>>,
) -> (Activation, wasmtime::Result<Result<String, String>>) {
    // A check (no lease) records nothing.
    let check_only = lease.is_none();
    let lease = lease.flatten();
    let clock = OrchestrationClock::new(start.at);
    let seen = run.last_seq().unwrap_or(0);
    let replays = run.recorded_calls() > 0 && !check_only;
    if replays {
        crate::metrics::get().replays.inc();
    }
    let activation = Activation {
        rt: rt.clone(),
        id: id.clone(),
        run,
        pos: 0,
        pending: Commit::default(),
        clock: clock.clone(),
        seed: start.seed,
        digest: loaded.digest.clone(),
        orchestration: start.name.clone(),
        replay_began: replays.then(tokio::time::Instant::now),
        mailbox,
        seen,
        check_only,
        lease,
        waits: super::spans::Waits::new(start.span.clone(), id, &start.name),
        trace: start.trace.clone(),
        logs: Vec::new(),
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

async fn finish_failed(
    rt: &Runtime,
    id: &InstanceId,
    orchestration: &str,
    message: String,
    lease: Option<u64>,
    mailbox: mpsc::Receiver<()>,
) -> Exit {
    let commit = Commit {
        events: vec![HistoryEvent::Failed {
            error: message.clone(),
        }],
        end: Some((RuntimeStatus::Failed, None, Some(message))),
        lease,
        ..Commit::default()
    };
    match rt.store().commit(id.clone(), commit, rt.now()).await {
        Ok(Some(_)) => {
            rt.announce_finished(id, orchestration, RuntimeStatus::Failed);
            Exit::Done
        }
        Ok(None) => Exit::Done,
        Err(crate::store::StoreError::Fenced(_)) => Exit::Fenced(mailbox),
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
        let children = std::mem::take(&mut self.pending.children);
        let entity_ops = std::mem::take(&mut self.pending.entity_ops);
        let custom_status = self.pending.custom_status.take();
        let now = self.rt.now();
        let seed = super::seed_for(&self.id, now.wrapping_add(self.seen));
        match self
            .rt
            .store()
            .continue_as_new(
                self.id.clone(),
                ContinueAsNew {
                    events,
                    children,
                    entity_ops,
                    custom_status,
                    input,
                    seed,
                    lease: self.lease,
                },
                now,
            )
            .await
        {
            Ok(Some(committed)) => {
                for child in &committed.wake {
                    self.rt.wake(child);
                }
                for entity in &committed.entities {
                    self.rt.wake_entity(entity);
                }
                Exit::Continue(self.mailbox)
            }
            Ok(None) => Exit::Done,
            Err(crate::store::StoreError::Fenced(_)) => Exit::Fenced(self.mailbox),
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
        self.pending = Commit {
            events: vec![HistoryEvent::Failed {
                error: message.clone(),
            }],
            end: Some((RuntimeStatus::Failed, None, Some(message))),
            ..Commit::default()
        };
        self.commit_end().await
    }

    async fn commit_end(mut self) -> Exit {
        let mut commit = std::mem::take(&mut self.pending);
        commit.lease = self.lease;
        let status = commit.end.as_ref().map(|(s, _, _)| *s);
        match self
            .rt
            .store()
            .commit(self.id.clone(), commit, self.rt.now())
            .await
        {
            Ok(committed) => {
                if let Some(done) = committed {
                    for id in &done.wake {
                        self.rt.wake(id);
                    }
                    for entity in &done.entities {
                        self.rt.wake_entity(entity);
                    }
                    if let Some(status) = status {
                        self.rt
                            .announce_finished(&self.id, &self.orchestration, status);
                    }
                }
                Exit::Done
            }
            Err(crate::store::StoreError::Fenced(_)) => Exit::Fenced(self.mailbox),
            Err(e) => {
                tracing::error!(instance = %self.id, "cannot record the end: {e}");
                Exit::Retry(self.mailbox)
            }
        }
    }

    pub(super) fn replaying(&self) -> bool {
        (self.pos as usize) < self.run.recorded_calls()
    }

    /// Matches the call against the history: the recorded event on replay, `None` when live.
    pub(super) fn step(
        &mut self,
        attempted: &HistoryEvent,
    ) -> wasmtime::Result<Option<HistoryEvent>> {
        match self.run.step(self.pos, attempted)? {
            Step::Replay(recorded) => {
                let recorded = recorded.clone();
                self.pos += 1;
                if !self.replaying()
                    && let Some(began) = self.replay_began.take()
                {
                    let seconds = began.elapsed().as_secs_f64();
                    crate::metrics::get().replay_seconds.observe(seconds);
                }
                Ok(Some(recorded))
            }
            Step::Live if self.check_only => Err(Stop::CaughtUp.into()),
            Step::Live => Ok(None),
        }
    }

    /// A line the guest logged: a check keeps every one; a live activation logs the ones it
    /// has not logged before (those past the replay).
    pub(super) fn guest_log(&mut self, message: String) {
        if self.check_only {
            self.logs.push(message);
        } else if !self.replaying() {
            tracing::info!(instance = %self.id, "{message}");
        }
    }

    /// Records a live call, unless the history is full.
    pub(super) fn record(&mut self, event: HistoryEvent) -> Result<(), UsageError> {
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
    pub(super) fn check_size(&self, what: &'static str, payload: &str) -> Result<(), UsageError> {
        UsageError::check_size(what, payload, self.rt.inner.settings.max_payload)
    }

    /// Records an entity signal (no `reply`) or call (`reply` is this position, the handle) and,
    /// when live, sends the operation with the activation's commit. The call's position.
    pub(super) fn send_entity_op(&mut self, op: EntityOp) -> wasmtime::Result<Pos> {
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
    pub(super) fn derived(&self, pos: Pos) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(format!("{}:{pos}", self.seed)).into()
    }

    /// Commits pending calls, then starts their effects.
    pub(super) async fn flush(&mut self) -> Result<(), Stop> {
        if self.pending.events.is_empty() {
            return Ok(());
        }
        let mut commit = std::mem::take(&mut self.pending);
        commit.lease = self.lease;
        commit.run_here = self.rt.room_for_activities(commit.activities.len());
        let run_here = commit.run_here;
        let activities = commit.activities.clone();
        let armed = !commit.timers.is_empty();
        let committed = self
            .rt
            .store()
            .commit(self.id.clone(), commit, self.rt.now())
            .await?;
        let Some(done) = committed else {
            return Err(Stop::Ended);
        };
        for id in &done.wake {
            self.rt.wake(id);
        }
        for entity in &done.entities {
            self.rt.wake_entity(entity);
        }
        if run_here < activities.len() {
            self.rt.work_for_others();
        }
        for a in activities.into_iter().take(run_here) {
            self.rt.dispatch_activity(ActivityWork {
                instance: self.id.clone(),
                pos: a.pos,
                name: a.name,
                input: a.input,
                attempt: 1,
                digest: self.digest.clone(),
                trace: self.trace.clone(),
                orchestration: self.orchestration.clone(),
            });
        }
        if armed {
            self.rt.inner.timers_changed.notify_one();
        }
        Ok(())
    }

    /// Waits for something to be appended to the history, then reads it.
    pub(super) async fn wait_for_news(&mut self) -> Result<(), Stop> {
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
