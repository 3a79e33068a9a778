//! Several nodes on one shared store: the leases this node holds, the activities it runs, and
//! the services that keep a node's lease, take over what nodes that stopped held, claim
//! activities, and act on what other nodes tell it.
//!
//! An instance is executed by the node holding its lease. A node takes the lease when the
//! instance comes into its memory (an activation starts), keeps it while the instance is hot,
//! and lets go of it when the instance leaves memory. Whoever records something for an
//! instance (an event over HTTP, an activity's result, a fired timer, a child's end) wakes it:
//! on this node if it holds it, else its holder is told ([`Notice::Attend`]). Commits carry the
//! lease's epoch and are refused once another node took the instance over, so a node that was
//! paused or cut off writes nothing stale.
//!
//! Activities are claimed by the node that runs them: the scheduling node runs what fits in
//! its `max_activities` and leaves the rest for any node to claim ([`Notice::Work`]); a node
//! whose lease ran out loses its claims, and a result from a lost claim is refused. On a
//! single-node store none of this runs.

use super::Runtime;
use crate::history::{InstanceId, Pos};
use crate::store::{ActivityWork, Claim, Notice, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How many orphaned instances one sweep takes over at a time.
const ORPHAN_BATCH: usize = 256;

/// The leases this node holds and the activities it runs.
#[derive(Default)]
pub(super) struct Leases {
    /// Whether the store is shared (else nothing here is used).
    shared: bool,
    /// Instances this node holds, with the lease's epoch.
    held: Mutex<HashMap<InstanceId, u64>>,
    /// Activities running on this node.
    in_flight: Mutex<HashSet<(InstanceId, Pos)>>,
    /// Whether activities may be waiting for a claim (this node left some, or was told).
    backlog: AtomicBool,
    /// Wakes the claim service.
    work: Notify,
}

impl Leases {
    pub(super) fn new(shared: bool) -> Self {
        Self {
            shared,
            ..Self::default()
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<InstanceId, u64>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<(InstanceId, Pos)>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Work may wait for a claim: the claim service looks.
    fn work_waits(&self) {
        self.backlog.store(true, Ordering::Relaxed);
        self.work.notify_one();
    }
}

/// How this node stands with an instance.
pub(super) enum Holding {
    /// It holds the instance, with this epoch (`None` on a single-node store).
    Held(Option<u64>),
    /// Another node holds it.
    Elsewhere(String),
    Missing,
}

impl Runtime {
    /// Whether the store is shared with other nodes.
    pub(super) fn shared(&self) -> bool {
        self.inner.leases.shared
    }

    /// Holds an instance's lease, taking it if this node does not hold it yet.
    pub(super) async fn hold(&self, id: &InstanceId) -> Result<Holding, StoreError> {
        if !self.shared() {
            return Ok(Holding::Held(None));
        }
        if let Some(epoch) = self.inner.leases.held().get(id) {
            return Ok(Holding::Held(Some(*epoch)));
        }
        Ok(match self.inner.store.claim(id.clone()).await? {
            Claim::Held(epoch) => {
                self.took(id, epoch);
                Holding::Held(Some(epoch))
            }
            Claim::Elsewhere(node) => Holding::Elsewhere(node),
            Claim::Missing => Holding::Missing,
        })
    }

    /// Notes a lease this node took (on a shared store).
    pub(super) fn took(&self, id: &InstanceId, epoch: u64) {
        if self.shared() {
            self.inner.leases.held().insert(id.clone(), epoch);
        }
    }

    /// Forgets the lease of an instance that ended or was taken over.
    pub(super) fn forget_lease(&self, id: &InstanceId) {
        if self.shared() {
            self.inner.leases.held().remove(id);
        }
    }

    /// Lets go of an instance that left memory.
    pub(super) async fn let_go(&self, id: &InstanceId) {
        if !self.shared() {
            return;
        }
        let Some(epoch) = self.inner.leases.held().remove(id) else {
            return;
        };
        if let Err(e) = self.inner.store.release(id.clone(), epoch).await {
            // It stays held here until this node's lease runs out.
            tracing::warn!(instance = %id, "cannot let go of the lease: {e}");
        }
    }

    /// How many of `n` activities this node can run now (all, on a single-node store).
    pub(super) fn room_for_activities(&self, n: usize) -> usize {
        if !self.shared() {
            return n;
        }
        let busy = self.inner.leases.in_flight().len();
        n.min(self.inner.settings.max_activities.saturating_sub(busy))
    }

    /// Whether an activity may start here: it is not running here already. Noted as running.
    pub(super) fn starts_here(&self, work: &ActivityWork) -> bool {
        !self.shared()
            || self
                .inner
                .leases
                .in_flight()
                .insert((work.instance.clone(), work.pos))
    }

    /// An activity that ran here has finished: room for another.
    pub(super) fn finished_here(&self, work: &ActivityWork) {
        if !self.shared() {
            return;
        }
        let key = (work.instance.clone(), work.pos);
        self.inner.leases.in_flight().remove(&key);
        if self.inner.leases.backlog.load(Ordering::Relaxed) {
            self.inner.leases.work.notify_one();
        }
    }

    /// Activities were left for any node to claim (this one too, once it has room).
    pub(super) fn work_for_others(&self) {
        self.inner.leases.backlog.store(true, Ordering::Relaxed);
        self.announce(Notice::Work);
    }

    /// An activity whose retry came due: on a shared store, any node with room claims it.
    pub(super) fn retry_activity(&self, work: ActivityWork) {
        if !self.shared() {
            return self.dispatch_activity(work);
        }
        self.inner.leases.work_waits();
        self.announce(Notice::Work);
    }

    /// Claims and runs activities while this node has room and work waits: when told there
    /// is work, when room frees up while work may wait, and at each sweep.
    async fn claim_service(&self) {
        loop {
            self.inner.leases.work.notified().await;
            loop {
                let room = self.room_for_activities(usize::MAX);
                if room == 0 {
                    break;
                }
                let claimed = match self.inner.store.claim_activities(false, room).await {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        tracing::warn!("cannot claim activities: {e}");
                        break;
                    }
                };
                let n = claimed.len();
                for work in claimed {
                    self.dispatch_activity(work);
                }
                if n < room {
                    self.inner.leases.backlog.store(false, Ordering::Relaxed);
                    break;
                }
            }
        }
    }

    /// Tells node `to` something, in the background (a lost notice is made up for by the
    /// sweeps).
    pub(super) fn forward(&self, to: &str, notice: Notice) {
        self.send(Some(to.to_string()), notice);
    }

    /// Tells every other node something, in the background.
    pub(super) fn announce(&self, notice: Notice) {
        if self.shared() {
            self.send(None, notice);
        }
    }

    fn send(&self, to: Option<String>, notice: Notice) {
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.notify(to.as_deref(), notice).await {
                tracing::warn!("cannot notify other nodes: {e}");
            }
        });
    }

    /// Looks at an instance another node recorded something for: wakes it, if this node holds
    /// it or can take it. (If a third node took it meanwhile, that node read everything
    /// recorded before it did.)
    async fn attend(&self, id: &InstanceId) {
        match self.hold(id).await {
            Ok(Holding::Held(_)) => self.wake(id),
            Ok(Holding::Elsewhere(node)) => tracing::debug!(instance = %id, "held by {node}"),
            Ok(Holding::Missing) => {}
            Err(e) => tracing::warn!(instance = %id, "cannot take the lease: {e}"),
        }
    }

    /// On a shared store, before serving: renews this node's lease, and takes back the
    /// instances and activities it held before it (re)started; then keeps its lease, sweeps,
    /// claims activities and listens for notices.
    pub(super) async fn join_cluster(&self) -> Result<(), StoreError> {
        if !self.shared() {
            return Ok(());
        }
        let lease = self.inner.settings.lease;
        self.inner.store.renew(lease).await?;
        for (id, epoch) in self.inner.store.claim_orphans(true, usize::MAX).await? {
            self.took(&id, epoch);
            self.wake(&id);
        }
        for work in self.inner.store.claim_activities(true, usize::MAX).await? {
            self.dispatch_activity(work);
        }
        let rt = self.clone();
        tokio::spawn(async move { rt.claim_service().await });
        self.sweep().await;
        let rt = self.clone();
        tokio::spawn(async move { rt.lease_service().await });
        if let Some(notices) = self.inner.store.notices() {
            let rt = self.clone();
            tokio::spawn(async move { rt.notice_service(notices).await });
        }
        Ok(())
    }

    /// When the node stops (SIGTERM, Ctrl-C): its lease ends now, so the other nodes take over
    /// what it held (instances and activity claims) at once rather than after `--lease`; they
    /// are told.
    pub async fn leave_cluster(&self) {
        if !self.shared() {
            return;
        }
        if let Err(e) = self.inner.store.renew(Duration::ZERO).await {
            tracing::warn!("cannot end this node's lease: {e}");
            return;
        }
        if let Err(e) = self.inner.store.notify(None, Notice::Left).await {
            tracing::warn!("cannot tell the other nodes this node stops: {e}");
        }
        tracing::info!("this node's lease ended: the other nodes take over what it held");
    }

    /// How often a node renews its lease and sweeps: three times per lease.
    pub(super) fn sweep_interval(&self) -> Duration {
        self.inner.settings.lease / 3
    }

    /// Renews this node's lease, sweeps; if the node could not renew in time (it was paused,
    /// or cut off from the database), it holds nothing any more: its instances in memory
    /// replay, taking their leases again or telling their new holder.
    #[allow(
        clippy::disallowed_methods,
        reason = "a lease runs on wall time, not on the workflows' clock"
    )]
    async fn lease_service(&self) {
        let lease = self.inner.settings.lease;
        let mut renewed = std::time::Instant::now();
        loop {
            tokio::time::sleep(self.sweep_interval()).await;
            match self.inner.store.renew(lease).await {
                Ok(()) => {
                    if renewed.elapsed() >= lease {
                        tracing::warn!(
                            "this node's lease ran out ({:?} since it was renewed): dropping its leases",
                            renewed.elapsed()
                        );
                        self.lost_leases();
                    }
                    renewed = std::time::Instant::now();
                }
                Err(e) => tracing::warn!("cannot renew this node's lease: {e}"),
            }
            self.sweep().await;
        }
    }

    /// Takes over the instances of nodes whose lease ran out, has the claim service look for
    /// activities (theirs too), and looks at entities with operations waiting (their sender
    /// may have died before applying them).
    async fn sweep(&self) {
        self.inner.leases.work_waits();
        loop {
            match self.inner.store.claim_orphans(false, ORPHAN_BATCH).await {
                Ok(taken) => {
                    let n = taken.len();
                    for (id, epoch) in taken {
                        tracing::info!(instance = %id, "taking over from a node that stopped");
                        self.took(&id, epoch);
                        self.wake(&id);
                    }
                    if n < ORPHAN_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!("cannot look for orphaned instances: {e}");
                    break;
                }
            }
        }
        match self.inner.store.entities_with_work().await {
            Ok(entities) => {
                for entity in entities {
                    self.wake_entity(&entity);
                }
            }
            Err(e) => tracing::warn!("cannot look for entity work: {e}"),
        }
    }

    /// Drops every lease; instances in memory replay at their next wake (now).
    fn lost_leases(&self) {
        let held: Vec<InstanceId> = self.inner.leases.held().drain().map(|(id, _)| id).collect();
        for id in held {
            self.mark_moved(&id);
            self.wake(&id);
        }
    }

    async fn notice_service(&self, mut notices: tokio::sync::mpsc::UnboundedReceiver<Notice>) {
        while let Some(notice) = notices.recv().await {
            match notice {
                Notice::Attend(id) => {
                    let rt = self.clone();
                    tokio::spawn(async move { rt.attend(&id).await });
                }
                Notice::Work => self.inner.leases.work_waits(),
                Notice::Left => {
                    let rt = self.clone();
                    tokio::spawn(async move { rt.sweep().await });
                }
                Notice::Moved(id) => {
                    if self.is_hot(&id) {
                        self.mark_moved(&id);
                        self.wake(&id);
                    }
                }
                Notice::Deployed => {
                    if let Err(e) = self.publish_stored().await {
                        tracing::warn!("cannot load the deployed components: {e}");
                    }
                }
                Notice::Clock(at) => {
                    self.inner.clock.advance_to(at);
                }
                Notice::Ended(id, status) => {
                    let _ = self.inner.finished.send((id, status));
                }
                Notice::Missed => {
                    let held: Vec<InstanceId> = self.inner.leases.held().keys().cloned().collect();
                    for id in held {
                        let rt = self.clone();
                        tokio::spawn(async move { rt.attend(&id).await });
                    }
                    self.inner.leases.work_waits();
                    if let Err(e) = self.publish_stored().await {
                        tracing::warn!("cannot load the deployed components: {e}");
                    }
                }
            }
        }
    }
}
