//! Durable storage behind one trait. [`Store`] is what the runtime holds (`Arc<dyn Store>`):
//! it persists what the domain (`weft-core`) decided and answers queries, and takes no
//! decision of its own. It is made of one trait per concern so that a backend implements each
//! in a file of its own: instances and their histories, work (activities and timers),
//! components, entities, management (suspend, listing, purging, the manual clock, secrets),
//! and leases between the nodes sharing a store.
//!
//! A backend is a folder here ([`sqlite`] is the embedded default, [`postgres`] the shared
//! one); adding one means implementing the six traits (a single-node backend takes
//! [`LeaseStore`]'s defaults), instantiating the [`conformance`] suite for it, and naming it in
//! [`Location`].

#[cfg(test)]
#[macro_use]
pub mod conformance;
pub mod postgres;
mod records;
pub mod sqlite;

pub use postgres::PostgresStore;
pub use records::*;
pub use sqlite::{SqliteStore, Synchronous};

use crate::clock::Millis;
use crate::history::{ComponentDigest, HistoryEvent, InstanceId, Pos, Recorded, Seq};
use async_trait::async_trait;

/// What can go wrong with the store, said by what the caller can do about it. No backend's
/// error type shows here: a backend says what happened in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend could not make the write or answer the read now (an I/O error, a lock, a
    /// lost connection); nothing of the write was kept. Retriable.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The disk (or the store's size limit) is full; nothing of the write was kept.
    #[error("the store is full: {0}")]
    Full(String),
    /// The disk failed a write or an fsync: the write is not acknowledged and may not be
    /// durable, and the store does not go on as if it were (SQLite writes the next
    /// transaction over it). Retriable once the disk is sound.
    #[error("the disk failed a write or an fsync: {0}")]
    Io(String),
    /// The write conflicts with what is stored (a uniqueness rule); nothing of it was kept.
    #[error("the write conflicts with stored data: {0}")]
    Conflict(String),
    /// Stored data that cannot be read back: a bug or a tampered file.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The store has stopped (the host is shutting down). Retriable elsewhere.
    #[error("the store is closed")]
    Closed,
    /// This node no longer holds the instance's lease (another node took it over): nothing
    /// was written; the holder goes on with the instance.
    #[error("the lease on instance '{0}' is held by another node")]
    Fenced(InstanceId),
}

impl StoreError {
    /// Whether the write failed because the disk (or the database's size limit) is full.
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }
}

/// Where the store is: a SQLite file (a path, or `sqlite://PATH`) or a PostgreSQL database
/// (`postgres://USER[:PASS]@HOST:PORT/DB`, also `postgresql://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl std::str::FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_string()));
        }
        let path = s.strip_prefix("sqlite://").unwrap_or(s);
        if path.is_empty() {
            return Err("the database location is empty".into());
        }
        if let Some((scheme, _)) = s.split_once("://")
            && path == s
        {
            return Err(format!(
                "unknown database scheme '{scheme}://': use a path, sqlite://PATH or postgres://..."
            ));
        }
        Ok(Self::Sqlite(path.into()))
    }
}

impl std::fmt::Display for Location {
    /// The location without a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => match url.split_once("://").zip(url.rsplit_once('@')) {
                Some(((scheme, _), (_, host))) => write!(f, "{scheme}://…@{host}"),
                None => f.write_str(url),
            },
        }
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Sqlite(#[from] sqlite::OpenError),
    #[error(transparent)]
    Postgres(#[from] postgres::OpenError),
    #[error("{0}")]
    Unsupported(&'static str),
}

/// Opens the store at `location`: `sync` is how durable a commit is when it returns;
/// `max_size` (SQLite only) the most bytes the file may grow to; `node` this node's name
/// among those sharing the store and `lease` how long its leases last (PostgreSQL only).
pub async fn open(
    location: &Location,
    sync: Synchronous,
    max_size: Option<u64>,
    node: &str,
    lease: std::time::Duration,
) -> Result<std::sync::Arc<dyn Store>, OpenError> {
    Ok(match location {
        Location::Sqlite(path) => {
            std::sync::Arc::new(SqliteStore::open_limited(path, sync, max_size)?)
        }
        Location::Postgres(url) => {
            if max_size.is_some() {
                return Err(OpenError::Unsupported(
                    "--max-db-size applies to SQLite only; limit a PostgreSQL database on the server",
                ));
            }
            std::sync::Arc::new(PostgresStore::open(url, sync, node, lease).await?)
        }
    })
}

/// The whole store: every concern's trait. Any type implementing the six is one.
pub trait Store:
    InstanceStore
    + WorkStore
    + ComponentStore
    + EntityStore
    + ManageStore
    + LeaseStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: InstanceStore
        + WorkStore
        + ComponentStore
        + EntityStore
        + ManageStore
        + LeaseStore
        + Send
        + Sync
        + 'static
{
}

/// Instances: creating one, committing an activation, continue-as-new, raising events,
/// terminating and purging, and reading rows and histories back.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Creates an instance with its `started` event, unless one with that id exists.
    async fn create_instance(
        &self,
        id: InstanceId,
        started: HistoryEvent,
        now: Millis,
    ) -> Result<CreateOutcome, StoreError>;

    /// Commits an activation: its events, the work it starts, its children, the operations it
    /// sends, perhaps its end (a parent is told). Refused (`Ok(None)`) if the instance has ended
    /// meanwhile; then nothing is written.
    async fn commit(
        &self,
        id: InstanceId,
        commit: Commit,
        now: Millis,
    ) -> Result<Option<Committed>, StoreError>;

    /// Ends the current run by continuing as new: commits the run's last events and a
    /// `continued_as_new`, archives the history as a generation, and starts the next run with
    /// the events [`weft_core::continuing`] carries over (also those that arrived while the run
    /// was ending); sub-orchestrations the run started are created and operations it sent to
    /// entities are sent (what to wake). Refused (`Ok(None)`) if the instance has ended
    /// meanwhile.
    async fn continue_as_new(
        &self,
        id: InstanceId,
        next: ContinueAsNew,
        now: Millis,
    ) -> Result<Option<Committed>, StoreError>;

    /// The archived histories of an instance's earlier runs, oldest first.
    async fn archived_history(&self, id: InstanceId) -> Result<Vec<(u32, Recorded)>, StoreError>;

    /// Records an event raised to an instance (durable on return).
    async fn raise_event(
        &self,
        id: InstanceId,
        name: String,
        payload: String,
        now: Millis,
    ) -> Result<RaiseOutcome, StoreError>;

    /// Ends a running instance as terminated; for a child, also returns the parent to wake.
    /// With `recursive`, its running sub-orchestrations (and theirs) end terminated too, with a
    /// reason that names their parent: [`Terminated::children`].
    async fn terminate(
        &self,
        id: InstanceId,
        reason: String,
        recursive: bool,
        now: Millis,
    ) -> Result<(RaiseOutcome, Terminated), StoreError>;

    /// Deletes an ended instance with its history, and its ended sub-orchestrations (and
    /// theirs); a running one is left as it is.
    async fn purge(&self, id: InstanceId) -> Result<PurgeOutcome, StoreError>;

    /// An instance's row.
    async fn instance(&self, id: InstanceId) -> Result<Option<InstanceRow>, StoreError>;

    /// Instances that have not ended.
    async fn unfinished_instances(&self) -> Result<Vec<InstanceId>, StoreError>;

    /// An instance's history from position `from` on.
    async fn history(&self, id: InstanceId, from: Seq) -> Result<Vec<Recorded>, StoreError>;
}

/// Work: activities to run and their results, and timers that fire.
#[async_trait]
pub trait WorkStore: Send + Sync {
    /// Records an activity's result, once, as [`weft_core::attempts::settle`] decides: the
    /// result, or a failed attempt and a retry timer.
    /// A shared store refuses ([`StoreError::Fenced`]) the result of a node that no longer
    /// holds the activity's claim (another node claimed it after this node's lease ran out).
    async fn complete_activity(
        &self,
        id: InstanceId,
        pos: Pos,
        result: Result<String, String>,
        now: Millis,
    ) -> Result<CompleteOutcome, StoreError>;

    /// Fires every timer due at `now`: an orchestration's timer gets `timer_fired`; an
    /// activity's retry timer hands the activity back to run again. Each fires once.
    async fn fire_due_timers(&self, now: Millis) -> Result<Fired, StoreError>;

    /// Activities scheduled, not recorded as completed and not waiting for a retry (to run
    /// again after a restart).
    async fn pending_activities(&self) -> Result<Vec<ActivityWork>, StoreError>;

    /// When the next timer is due, if any is armed.
    async fn next_timer_due(&self) -> Result<Option<Millis>, StoreError>;
}

/// Components: their bytes by digest, the order they were deployed in, and the component an
/// instance is pinned to.
#[async_trait]
pub trait ComponentStore: Send + Sync {
    /// Stores a component's bytes (once per digest) as the newest deployed; with `again`, a
    /// component stored before becomes the newest too (else it keeps its place).
    async fn put_component(
        &self,
        digest: ComponentDigest,
        bytes: Vec<u8>,
        again: bool,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// The stored components' digests and deploy times, oldest deploy first.
    async fn component_list(&self) -> Result<Vec<(ComponentDigest, Millis)>, StoreError>;

    /// Whether a component is stored (deployed).
    async fn has_component(&self, digest: ComponentDigest) -> Result<bool, StoreError>;

    /// Every stored component, in the order they were deployed.
    async fn stored_components(&self) -> Result<Vec<(ComponentDigest, Vec<u8>)>, StoreError>;

    /// Moves an unfinished instance to component `digest`, if its history still ends before
    /// `next_seq` (nothing was recorded since it was checked): a compare-and-set. Whether it
    /// moved.
    async fn set_digest(
        &self,
        id: InstanceId,
        digest: ComponentDigest,
        next_seq: Seq,
    ) -> Result<bool, StoreError>;

    /// A stored component's bytes.
    async fn component_bytes(&self, digest: ComponentDigest)
    -> Result<Option<Vec<u8>>, StoreError>;
}

/// Entities: their state, the inbox of operations sent and not yet applied, and the log of
/// operations applied. Applying an operation takes it out of the inbox, stores the new state,
/// logs it and, for a call, records the reply in the caller's history, all at once: an
/// operation is applied once, and none is lost.
#[async_trait]
pub trait EntityStore: Send + Sync {
    /// Sends an operation to an entity from outside any instance (durable on return).
    async fn signal_entity(&self, op: EntityOp, now: Millis) -> Result<(), StoreError>;

    /// The oldest operation waiting for `entity`, if any, with the entity's current state.
    async fn next_entity_op(&self, entity: EntityKey) -> Result<Option<NextOp>, StoreError>;

    /// Stores what applying inbox operation `id` of `entity` to the state of `version` (see
    /// [`NextOp::version`]) produced and takes it out of the inbox, at once; for a call whose
    /// caller [`weft_core::ending::entity_reply`] still answers, the caller to wake. Nothing
    /// is written if the operation is no longer in the inbox (it was applied already) or the
    /// entity is no longer at `version` (another worker, on another node of a shared store,
    /// applied an operation since): the caller reads the next operation again.
    async fn finish_entity_op(
        &self,
        entity: EntityKey,
        id: i64,
        version: u64,
        applied: AppliedOp,
        now: Millis,
    ) -> Result<Option<InstanceId>, StoreError>;

    /// An entity: its state and counts. `None` if it has neither state nor waiting operations.
    async fn entity(&self, entity: EntityKey) -> Result<Option<EntityRow>, StoreError>;

    /// An entity's applied operations from log position `from` on, at most `limit`.
    async fn entity_log(
        &self,
        entity: EntityKey,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LoggedOp>, StoreError>;

    /// Entities (with state or waiting operations), ordered by name and key, after `after`,
    /// at most `limit`; only those named `name` if given.
    async fn list_entities(
        &self,
        name: Option<String>,
        after: Option<EntityKey>,
        limit: usize,
    ) -> Result<Vec<EntityRow>, StoreError>;

    /// Deletes an entity's state and log: how many entities (0 or 1) and log entries. Operations
    /// still waiting stay and apply afterwards, to a new entity (a caller still gets its reply).
    async fn purge_entity(&self, entity: EntityKey) -> Result<(usize, usize), StoreError>;

    /// Entities with operations waiting.
    async fn entities_with_work(&self) -> Result<Vec<EntityKey>, StoreError>;
}

/// Management: suspend and resume, listing with filters and paging, purging by filter, the
/// manual clock, server secrets and the readiness probe.
#[async_trait]
pub trait ManageStore: Send + Sync {
    /// Suspends (`true`) or resumes (`false`) an instance.
    async fn set_suspended(
        &self,
        id: InstanceId,
        suspend: bool,
        reason: String,
        now: Millis,
    ) -> Result<ChangeOutcome, StoreError>;

    /// Instances matching `filter`, oldest first, at most `limit`, starting after `after`;
    /// and the token of the next page if there may be one.
    async fn list(
        &self,
        filter: Filter,
        after: Option<PageToken>,
        limit: usize,
    ) -> Result<(Vec<InstanceRow>, Option<PageToken>), StoreError>;

    /// Purges every ended instance matching `filter` (with its ended sub-orchestrations): how
    /// many were deleted.
    async fn purge_where(&self, filter: Filter) -> Result<usize, StoreError>;

    /// How many instances match `filter`, by status and component, ordered by both.
    async fn instance_counts(&self, filter: Filter) -> Result<Vec<InstanceCount>, StoreError>;

    /// The manual clock's time: the stored one, moved forward to `at_least` if that is later
    /// (a first start stores `at_least`). The clock never moves back, also across restarts.
    async fn manual_clock(&self, at_least: Millis) -> Result<Millis, StoreError>;

    /// Moves the stored manual clock forward by `by` milliseconds from the later of its stored
    /// time and `from`; the new time, durable when this returns.
    async fn advance_manual_clock(&self, from: Millis, by: Millis) -> Result<Millis, StoreError>;

    /// A server secret by name: created (from `fresh`) on first use, the same ever after.
    async fn secret(&self, name: &str, fresh: Vec<u8>) -> Result<Vec<u8>, StoreError>;

    /// The readiness probe: a read and a write that must commit.
    async fn probe(&self) -> Result<(), StoreError>;
}

/// How a node stands with an instance's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node holds it now, with this epoch.
    Held(u64),
    /// Another live node holds it.
    Elsewhere(String),
    /// There is no such instance.
    Missing,
}

/// What one node tells another (or all) through a shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Look at this instance: something was recorded for it (an event, a result, a fired
    /// timer) that its holder must act on.
    Attend(InstanceId),
    /// Activities wait for a node to claim them.
    Work,
    /// This instance was moved to another component: its holder replays it there.
    Moved(InstanceId),
    /// A component was deployed: load the stored ones again.
    Deployed,
    /// The manual clock was moved forward to this time.
    Clock(Millis),
    /// This instance ended so (for those waiting for its end on other nodes).
    Ended(InstanceId, crate::history::RuntimeStatus),
    /// The sending node stopped and let go of everything: take it over now.
    Left,
    /// Notices may have been missed (the store's listening connection was lost): look at
    /// everything held again.
    Missed,
}

/// Leases: on a store several nodes share, which node executes an instance, and which runs an
/// activity. An unfinished instance in memory somewhere is held by that node, with an epoch
/// that grows at each change of holder; commits carry it and are refused once it has changed
/// (fencing). An activity is claimed by the node that runs it, and its result is refused from
/// a node that lost the claim. A node keeps its leases and claims by renewing its own lease,
/// in one write for all; a node that stops renewing for the lease's length loses them to
/// whoever claims. Single-node backends (SQLite) hold everything themselves: these defaults.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Whether several nodes may share this store.
    fn shared(&self) -> bool {
        false
    }

    /// Renews this node's lease for `lease` from now (the database's time).
    async fn renew(&self, _lease: std::time::Duration) -> Result<(), StoreError> {
        Ok(())
    }

    /// Takes the lease of an instance for this node, unless another live node holds it.
    async fn claim(&self, _id: InstanceId) -> Result<Claim, StoreError> {
        Ok(Claim::Held(0))
    }

    /// Lets go of an instance's lease (it left memory), if this node still holds it with
    /// `epoch`.
    async fn release(&self, _id: InstanceId, _epoch: u64) -> Result<(), StoreError> {
        Ok(())
    }

    /// Takes over at most `limit` unfinished instances held by nodes whose lease ran out and,
    /// with `mine`, those this node's name held before it (re)started: with their new epochs.
    async fn claim_orphans(
        &self,
        _mine: bool,
        _limit: usize,
    ) -> Result<Vec<(InstanceId, u64)>, StoreError> {
        Ok(Vec::new())
    }

    /// Claims at most `limit` activities to run on this node: those nobody claimed and those
    /// claimed by nodes whose lease ran out, not waiting for a retry; with `mine`, instead,
    /// those this node's name claimed before it (re)started.
    async fn claim_activities(
        &self,
        _mine: bool,
        _limit: usize,
    ) -> Result<Vec<ActivityWork>, StoreError> {
        Ok(Vec::new())
    }

    /// Sends a notice to node `to`, or to every other node.
    async fn notify(&self, _to: Option<&str>, _notice: Notice) -> Result<(), StoreError> {
        Ok(())
    }

    /// The notices sent to this node, once (later calls get `None`).
    fn notices(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Notice>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::Location;

    #[test]
    fn a_location_is_a_path_a_sqlite_url_or_a_postgres_url_and_shows_no_password() {
        assert_eq!(
            "weft.db".parse::<Location>(),
            Ok(Location::Sqlite("weft.db".into()))
        );
        assert_eq!(
            "sqlite:///var/weft.db".parse::<Location>(),
            Ok(Location::Sqlite("/var/weft.db".into()))
        );
        let url = "postgres://weft:secret@db:5432/weft";
        let pg: Location = url.parse().unwrap();
        assert_eq!(pg, Location::Postgres(url.into()));
        assert_eq!(pg.to_string(), "postgres://…@db:5432/weft");
        assert!(
            "postgresql://db/weft"
                .parse::<Location>()
                .is_ok_and(|l| matches!(l, Location::Postgres(_)))
        );
        let err = "mysql://db/weft".parse::<Location>().unwrap_err();
        assert!(err.contains("unknown database scheme 'mysql://'"), "{err}");
        assert!("sqlite://".parse::<Location>().is_err());
    }
}
