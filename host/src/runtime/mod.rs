//! Scheduling: instances and their activations, activities, timers.
//!
//! Each instance that has work to do gets an actor task that owns its wasm store. While the
//! orchestration waits, the actor stays parked inside the guest's `await-any` call (a hot
//! instance); after `idle_timeout` without news it is evicted, and the next wake-up replays the
//! history into a fresh instance.

mod activation;
mod activity;
mod callbacks;
mod cluster;
mod completion;
mod components;
mod entities;
mod imports;
mod replay;
mod restart;
mod settings;
mod spans;
mod versions;

pub use callbacks::CallbackError;
pub use completion::MAX_WAIT;

pub use components::{Loaded, Registered};
pub use replay::{BUNDLE_FORMAT, Bundle, BundleError, BundledComponent, BundledRun, Replayed};
pub use settings::Settings;
pub use versions::{Deployment, ReplayCheck};

use crate::clock::{Clock, Millis};
use crate::history::{ComponentDigest, HistoryEvent, InstanceId, Recorded, RuntimeStatus};
use crate::store::{
    ActivityWork, ChangeOutcome, CreateOutcome, EntityKey, EntityOp, EntityRow, Filter,
    InstanceCount, InstanceRow, LoggedOp, PageToken, PurgeOutcome, RaiseOutcome, Store, StoreError,
};
use crate::wasm::ComponentError;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// What the runtime's callers can get wrong, or what can fail underneath.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no orchestration named '{0}' is deployed")]
    UnknownOrchestration(String),
    #[error("instance '{0}' not found")]
    NotFound(InstanceId),
    #[error("no entity named '{0}' is deployed")]
    UnknownEntity(String),
    #[error("entity '{0}' not found")]
    EntityNotFound(EntityKey),
    #[error("instance '{id}' has already ended ({})", status.as_str())]
    Finished {
        id: InstanceId,
        status: RuntimeStatus,
    },
    #[error("instance '{0}' already exists with a different orchestration or input")]
    Conflict(InstanceId),
    #[error("the clock cannot be moved: weft runs on wall time (start it with --manual-clock)")]
    ClockNotManual,
    #[error("{path}: {error}")]
    ComponentFile { path: String, error: ComponentError },
    #[error(transparent)]
    Component(#[from] ComponentError),
    #[error("component {0} is not deployed")]
    MissingComponent(ComponentDigest),
    #[error("{0}")]
    Diverges(String),
    #[error(
        "instance '{id}' has not ended ({}): terminate it first, or purge with force=true",
        status.as_str()
    )]
    Running {
        id: InstanceId,
        status: RuntimeStatus,
    },
    #[error(
        "instance '{id}' has not ended ({}): only an ended instance can be restarted",
        status.as_str()
    )]
    NotEnded {
        id: InstanceId,
        status: RuntimeStatus,
    },
    #[error("instance '{0}' kept recording while it was checked; try again")]
    Busy(InstanceId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Callback(#[from] CallbackError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The weft runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    components: components::Components,
    /// Mailboxes of the instances that have an actor.
    actors: Mutex<HashMap<InstanceId, mpsc::Sender<()>>>,
    /// Tells the timer service that a timer was armed.
    timers_changed: Notify,
    /// Held while due timers are fired, so a clock advance fires (and counts) the timers it
    /// made due before the timer service can.
    firing: tokio::sync::Mutex<()>,
    signer: callbacks::Signer,
    /// Announces each instance that ends.
    finished: tokio::sync::broadcast::Sender<(InstanceId, RuntimeStatus)>,
    /// Entities whose worker runs, and whether it must look at the inbox again.
    entity_workers: Mutex<HashMap<EntityKey, entities::Again>>,
    /// Instances moved to another component that their actor has not noticed yet.
    moved: Mutex<std::collections::HashSet<InstanceId>>,
    /// The leases this node holds on a shared store.
    leases: cluster::Leases,
}

/// An instance's status, with its history when asked for.
#[derive(Debug, Clone)]
pub struct Status {
    pub instance: InstanceRow,
    pub history: Option<Vec<Recorded>>,
    /// With the history: the histories of earlier runs (continued as new), by generation.
    pub previous_runs: Vec<(u32, Vec<Recorded>)>,
}

impl Runtime {
    /// A runtime on `store`; call [`Runtime::recover`] once components are registered.
    pub async fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        cache_dir: Option<std::path::PathBuf>,
        settings: Settings,
    ) -> Result<Self, RuntimeError> {
        // Room for every hot instance, plus activities and instances on their way in or out.
        let pool =
            u32::try_from(settings.max_hot.saturating_add(1_000).max(2_000)).unwrap_or(u32::MAX);
        let components = components::Components::new(cache_dir, pool, settings.max_memory)?;
        let fresh = [
            *uuid::Uuid::new_v4().as_bytes(),
            *uuid::Uuid::new_v4().as_bytes(),
        ]
        .concat();
        let key = store.secret("callback-hmac", fresh).await?;
        let signer = callbacks::Signer::new(key, &settings.public_url);
        let leases = cluster::Leases::new(store.shared());
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                settings,
                components,
                actors: Mutex::new(HashMap::new()),
                timers_changed: Notify::new(),
                firing: tokio::sync::Mutex::new(()),
                signer,
                finished: tokio::sync::broadcast::channel(1 << 16).0,
                entity_workers: Mutex::new(HashMap::new()),
                moved: Mutex::default(),
                leases,
            }),
        })
    }

    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    /// Registers every `.wasm` file in `dir` (in name order; a later file's orchestration
    /// replaces an earlier one of the same name for new instances).
    pub async fn register_dir(&self, dir: &Path) -> Result<Vec<Registered>, RuntimeError> {
        let io = |e| RuntimeError::Io {
            path: dir.display().to_string(),
            source: e,
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        files.sort();
        let mut registered = Vec::new();
        for path in files {
            let bytes = std::fs::read(&path).map_err(|e| RuntimeError::Io {
                path: path.display().to_string(),
                source: e,
            })?;
            let r = self.register(bytes).await.map_err(|e| match e {
                RuntimeError::Component(error) => RuntimeError::ComponentFile {
                    path: path.display().to_string(),
                    error,
                },
                other => other,
            })?;
            registered.push(r);
        }
        Ok(registered)
    }

    /// Registers a component: compiles and checks it, stores its bytes, and makes its
    /// orchestrations available by name to new instances. A component already stored keeps
    /// its place in the deploy order (see [`Runtime::deploy`]).
    pub async fn register(&self, bytes: Vec<u8>) -> Result<Registered, RuntimeError> {
        self.register_as(bytes, false).await
    }

    /// Checks, then stores and publishes, a component: nothing is stored for one that is
    /// refused. With `again`, a component stored before becomes the newest deployed.
    async fn register_as(&self, bytes: Vec<u8>, again: bool) -> Result<Registered, RuntimeError> {
        let digest = crate::history::digest_of(&bytes);
        let loaded = self
            .inner
            .components
            .load(digest.clone(), bytes.clone())
            .await?;
        self.inner
            .store
            .put_component(digest, bytes, again, self.now())
            .await?;
        let registered = self.inner.components.publish(&loaded, true);
        self.announce(crate::store::Notice::Deployed);
        Ok(registered)
    }

    /// The digest new instances of orchestration `name` start on.
    pub(crate) fn digest_for(&self, name: &str) -> Option<ComponentDigest> {
        self.inner.components.digest_for(name)
    }

    /// The names of the orchestrations new instances can start, sorted.
    pub fn orchestration_names(&self) -> Vec<String> {
        self.inner.components.names()
    }

    /// The names of the entities operations can be sent to, sorted.
    pub fn entity_names(&self) -> Vec<String> {
        self.inner.components.entity_names()
    }

    /// Picks up work after a (re)start: pending activities, timers, unfinished instances.
    /// On a shared store, only the instances this node held before it restarted are resumed
    /// here; those of other nodes are theirs, or taken over once their node's lease ran out.
    pub async fn recover(&self) -> Result<(), RuntimeError> {
        self.publish_stored().await?;
        if self.shared() {
            self.join_cluster().await?;
        } else {
            for work in self.inner.store.pending_activities().await? {
                self.dispatch_activity(work);
            }
            for id in self.inner.store.unfinished_instances().await? {
                self.wake(&id);
            }
            for entity in self.inner.store.entities_with_work().await? {
                self.wake_entity(&entity);
            }
        }
        let rt = self.clone();
        tokio::spawn(async move { rt.timer_service().await });
        Ok(())
    }

    /// Starts an instance of orchestration `name`, in the trace of `traceparent` if there is
    /// one. Starting again with the same id, name and input returns the existing instance;
    /// with another name or input it is a conflict.
    pub async fn start(
        &self,
        name: &str,
        input: &serde_json::Value,
        id: Option<InstanceId>,
        traceparent: Option<&str>,
    ) -> Result<(InstanceId, bool), RuntimeError> {
        let digest = self
            .deployed(|c| c.digest_for(name))
            .await?
            .ok_or_else(|| RuntimeError::UnknownOrchestration(name.to_string()))?;
        let id = id.unwrap_or_else(crate::history::new_instance_id);
        let now = self.now();
        let started = HistoryEvent::Started {
            name: name.to_string(),
            input: input.to_string(),
            digest,
            seed: seed_for(&id, now),
            at: now,
            trace: crate::telemetry::instance_trace(name, id.as_str(), traceparent),
        };
        match self
            .inner
            .store
            .create_instance(id.clone(), started, now)
            .await?
        {
            CreateOutcome::Created => {
                crate::metrics::get().started(name);
                // A shared store gives a new instance to the node that creates it.
                self.took(&id, 1);
                self.wake(&id);
                Ok((id, true))
            }
            CreateOutcome::Exists { same_input: true } => Ok((id, false)),
            CreateOutcome::Exists { same_input: false } => Err(RuntimeError::Conflict(id)),
        }
    }

    /// Raises event `name` to an instance; returns once the event is durable.
    pub async fn raise_event(
        &self,
        id: &InstanceId,
        name: &str,
        payload: &serde_json::Value,
    ) -> Result<(), RuntimeError> {
        let outcome = self
            .inner
            .store
            .raise_event(
                id.clone(),
                name.to_string(),
                payload.to_string(),
                self.now(),
            )
            .await?;
        if matches!(outcome, RaiseOutcome::Raised(_)) {
            crate::metrics::get().events_raised.inc();
        }
        self.after_write(id, outcome)
    }

    /// Terminates a running instance; its timers and waits are dropped. With `recursive`, its
    /// running sub-orchestrations end terminated too; the instances that ended with it.
    pub async fn terminate(
        &self,
        id: &InstanceId,
        reason: &str,
        recursive: bool,
    ) -> Result<Vec<InstanceId>, RuntimeError> {
        let (outcome, done) = self
            .inner
            .store
            .terminate(id.clone(), reason.to_string(), recursive, self.now())
            .await?;
        if let Some(parent) = done.parent {
            self.wake(&parent);
        }
        if matches!(outcome, RaiseOutcome::Raised(_)) {
            let name = self.orchestration_of(id).await;
            self.announce_finished(id, &name, RuntimeStatus::Terminated);
        }
        for child in &done.children {
            let name = self.orchestration_of(child).await;
            self.announce_finished(child, &name, RuntimeStatus::Terminated);
            self.wake(child);
        }
        self.after_write(id, outcome)?;
        Ok(done.children)
    }

    fn after_write(&self, id: &InstanceId, outcome: RaiseOutcome) -> Result<(), RuntimeError> {
        match outcome {
            RaiseOutcome::Raised(_) => {
                self.wake(id);
                Ok(())
            }
            RaiseOutcome::NotFound => Err(RuntimeError::NotFound(id.clone())),
            RaiseOutcome::Finished(status) => Err(RuntimeError::Finished {
                id: id.clone(),
                status,
            }),
        }
    }

    /// Suspends a running instance: events and timers are recorded but not delivered.
    pub async fn suspend(&self, id: &InstanceId, reason: &str) -> Result<(), RuntimeError> {
        self.set_suspended(id, true, reason).await
    }

    /// Resumes a suspended instance; what arrived meanwhile is delivered.
    pub async fn resume(&self, id: &InstanceId, reason: &str) -> Result<(), RuntimeError> {
        self.set_suspended(id, false, reason).await
    }

    async fn set_suspended(
        &self,
        id: &InstanceId,
        suspend: bool,
        reason: &str,
    ) -> Result<(), RuntimeError> {
        let outcome = self
            .inner
            .store
            .set_suspended(id.clone(), suspend, reason.to_string(), self.now())
            .await?;
        match outcome {
            ChangeOutcome::Changed => {
                self.wake(id);
                Ok(())
            }
            ChangeOutcome::Unchanged => Ok(()),
            ChangeOutcome::NotFound => Err(RuntimeError::NotFound(id.clone())),
            ChangeOutcome::Finished(status) => Err(RuntimeError::Finished {
                id: id.clone(),
                status,
            }),
        }
    }

    /// The URL that raises `event` on `id` until `expires_at`.
    pub(crate) fn callback_url(&self, id: &InstanceId, event: &str, expires_at: Millis) -> String {
        self.inner.signer.url(id, event, expires_at)
    }

    /// Raises an event through a callback URL: the signature must match the instance, the event
    /// and the expiry, and the URL must not have expired.
    pub async fn raise_by_callback(
        &self,
        instance: &str,
        event: &str,
        expires_at: Millis,
        sig: &str,
        payload: &serde_json::Value,
    ) -> Result<(), RuntimeError> {
        self.inner
            .signer
            .verify(instance, event, expires_at, sig, self.now())?;
        let id: InstanceId = instance
            .parse()
            .map_err(|_| RuntimeError::Callback(CallbackError::BadSignature))?;
        self.raise_event(&id, event, payload).await
    }

    /// Sends `operation` with `input` to an entity from outside; returns once it is durable.
    pub async fn signal_entity(
        &self,
        entity: EntityKey,
        operation: &str,
        input: &serde_json::Value,
    ) -> Result<(), RuntimeError> {
        if self
            .deployed(|c| c.entity_digest(&entity.name))
            .await?
            .is_none()
        {
            return Err(RuntimeError::UnknownEntity(entity.name));
        }
        let op = EntityOp {
            entity: entity.clone(),
            operation: operation.to_string(),
            input: input.to_string(),
            reply: None,
        };
        self.inner.store.signal_entity(op, self.now()).await?;
        self.wake_entity(&entity);
        Ok(())
    }

    /// An entity's state and counts.
    pub async fn entity(&self, entity: EntityKey) -> Result<EntityRow, RuntimeError> {
        self.inner
            .store
            .entity(entity.clone())
            .await?
            .ok_or(RuntimeError::EntityNotFound(entity))
    }

    /// An entity's applied operations from `from` on, at most `limit`.
    pub async fn entity_log(
        &self,
        entity: EntityKey,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LoggedOp>, RuntimeError> {
        self.entity(entity.clone()).await?;
        Ok(self.inner.store.entity_log(entity, from, limit).await?)
    }

    /// Entities (of one name, if given) in (name, key) order, after `after`.
    pub async fn list_entities(
        &self,
        name: Option<String>,
        after: Option<EntityKey>,
        limit: usize,
    ) -> Result<Vec<EntityRow>, RuntimeError> {
        Ok(self.inner.store.list_entities(name, after, limit).await?)
    }

    /// Deletes an entity's state and log: how many entities (0 or 1) and log entries.
    pub async fn purge_entity(&self, entity: EntityKey) -> Result<(usize, usize), RuntimeError> {
        match self.inner.store.purge_entity(entity.clone()).await? {
            (0, 0) => Err(RuntimeError::EntityNotFound(entity)),
            deleted => Ok(deleted),
        }
    }

    /// Instances matching `filter`, oldest first; and where the next page starts.
    pub async fn list(
        &self,
        filter: Filter,
        after: Option<PageToken>,
        limit: usize,
    ) -> Result<(Vec<InstanceRow>, Option<PageToken>), RuntimeError> {
        Ok(self.inner.store.list(filter, after, limit).await?)
    }

    /// How many instances match `filter`, by status and component.
    pub async fn instance_counts(
        &self,
        filter: Filter,
    ) -> Result<Vec<InstanceCount>, RuntimeError> {
        Ok(self.inner.store.instance_counts(filter).await?)
    }

    /// Purges the ended instances matching `filter`; how many.
    pub async fn purge_where(&self, filter: Filter) -> Result<usize, RuntimeError> {
        Ok(self.inner.store.purge_where(filter).await?)
    }

    /// Deletes an ended instance, its history and its ended sub-orchestrations; how many
    /// instances. A running one is refused unless `force`, which terminates it (and its
    /// sub-orchestrations) first.
    pub async fn purge(&self, id: &InstanceId, force: bool) -> Result<usize, RuntimeError> {
        let mut outcome = self.inner.store.purge(id.clone()).await?;
        if force && let PurgeOutcome::Running(_) = outcome {
            match self.terminate(id, "purged", true).await {
                Ok(_) | Err(RuntimeError::Finished { .. }) => {}
                Err(e) => return Err(e),
            }
            outcome = self.inner.store.purge(id.clone()).await?;
        }
        match outcome {
            PurgeOutcome::Purged(n) => Ok(n),
            PurgeOutcome::NotFound => Err(RuntimeError::NotFound(id.clone())),
            PurgeOutcome::Running(status) => Err(RuntimeError::Running {
                id: id.clone(),
                status,
            }),
        }
    }

    /// An instance's status (and history, if asked).
    /// An instance's stored row; `NotFound` if there is none.
    async fn row(&self, id: &InstanceId) -> Result<InstanceRow, RuntimeError> {
        self.inner
            .store
            .instance(id.clone())
            .await?
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))
    }

    pub async fn status(
        &self,
        id: &InstanceId,
        with_history: bool,
    ) -> Result<Status, RuntimeError> {
        let instance = self.row(id).await?;
        let mut previous_runs: Vec<(u32, Vec<Recorded>)> = Vec::new();
        let history = if with_history {
            for (generation, r) in self.inner.store.archived_history(id.clone()).await? {
                match previous_runs.last_mut() {
                    Some((g, events)) if *g == generation => events.push(r),
                    _ => previous_runs.push((generation, vec![r])),
                }
            }
            Some(self.inner.store.history(id.clone(), 0).await?)
        } else {
            None
        };
        Ok(Status {
            instance,
            history,
            previous_runs,
        })
    }

    /// Moves a manual clock forward and fires the timers that became due; returns the new time
    /// and how many instances got a timer.
    pub async fn advance_clock(&self, by: Duration) -> Result<(Millis, usize), RuntimeError> {
        if !self.inner.clock.is_manual() {
            return Err(RuntimeError::ClockNotManual);
        }
        let firing = self.inner.firing.lock().await;
        // The new time is committed before any part of the server sees it.
        let at = self
            .inner
            .store
            .advance_manual_clock(self.now(), by.as_millis() as Millis)
            .await?;
        let now = self
            .inner
            .clock
            .advance_to(at)
            .ok_or(RuntimeError::ClockNotManual)?;
        self.announce(crate::store::Notice::Clock(now));
        let fired = self.fire_due_timers_now().await?;
        drop(firing);
        Ok((now, fired))
    }

    /// Fires every due timer and wakes the instances that own them.
    async fn fire_due_timers(&self) -> Result<usize, StoreError> {
        let _firing = self.inner.firing.lock().await;
        self.fire_due_timers_now().await
    }

    /// Fires every due timer (the caller holds `firing`).
    async fn fire_due_timers_now(&self) -> Result<usize, StoreError> {
        let fired = self.inner.store.fire_due_timers(self.now()).await?;
        for id in &fired.woken {
            self.wake(id);
        }
        for work in fired.retries {
            self.retry_activity(work);
        }
        crate::metrics::get()
            .timers_fired
            .inc_by(fired.woken.len() as u64);
        Ok(fired.woken.len())
    }

    async fn timer_service(&self) {
        loop {
            let next = match self.inner.store.next_timer_due().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!("timer service: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Some(at) = next
                && at <= self.now()
            {
                if let Err(e) = self.fire_due_timers().await {
                    tracing::error!("timer service: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                continue;
            }
            let sleep = async {
                match next {
                    Some(at) => self.inner.clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            // Other nodes arm timers too (and may die before they fire them): look again.
            let others = async {
                if self.shared() {
                    tokio::time::sleep(self.sweep_interval()).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                () = sleep => {}
                () = others => {}
                () = self.inner.timers_changed.notified() => {}
            }
        }
    }

    /// Makes sure the instance's actor looks at its history.
    pub(crate) fn wake(&self, id: &InstanceId) {
        let mut actors = self.inner.actors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = actors.get(id) {
            // A full mailbox already holds a wake-up; the actor re-reads everything new.
            let _ = tx.try_send(());
            return;
        }
        let (tx, rx) = mpsc::channel(1);
        actors.insert(id.clone(), tx);
        let rt = self.clone();
        let id = id.clone();
        tokio::spawn(async move { activation::actor(rt, id, rx).await });
    }

    /// Called by an actor that wants to stop: it may, unless a wake-up is waiting for it.
    fn retire(&self, id: &InstanceId, rx: &mut mpsc::Receiver<()>) -> bool {
        let mut actors = self.inner.actors.lock().unwrap_or_else(|p| p.into_inner());
        if rx.try_recv().is_ok() {
            return false;
        }
        actors.remove(id);
        true
    }

    /// Whether the instance has an actor on this node.
    fn is_hot(&self, id: &InstanceId) -> bool {
        self.inner
            .actors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    /// Makes the instance's actor replay its history at its next wake.
    fn mark_moved(&self, id: &InstanceId) {
        self.inner
            .moved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone());
    }

    /// How many instances are in memory.
    pub fn hot_instances(&self) -> usize {
        self.inner.actors.lock().map(|a| a.len()).unwrap_or(0)
    }

    fn engine(&self) -> &wasmtime::Engine {
        self.inner.components.engine()
    }

    /// A component by digest: loaded already, or compiled from its stored bytes.
    async fn component(&self, digest: &ComponentDigest) -> Result<Arc<Loaded>, RuntimeError> {
        if let Some(l) = self.inner.components.get(digest) {
            return Ok(l);
        }
        let bytes = self
            .inner
            .store
            .component_bytes(digest.clone())
            .await?
            .ok_or_else(|| RuntimeError::MissingComponent(digest.clone()))?;
        Ok(self.inner.components.load(digest.clone(), bytes).await?)
    }

    fn dispatch_activity(&self, work: ActivityWork) {
        if !self.starts_here(&work) {
            return;
        }
        let rt = self.clone();
        tokio::spawn(async move { activity::run(rt, work).await });
    }
}

/// The seed of an instance's deterministic randomness.
pub(crate) fn seed_for(id: &InstanceId, at: Millis) -> u64 {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("{id}@{at}"));
    u64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
}
