//! The records the store speaks in: what a caller commits, what a commit or a query answers.
//! They belong to no backend.

use crate::clock::Millis;
use crate::history::{
    ComponentDigest, HistoryEvent, InstanceId, Pos, RetryPolicy, RuntimeStatus, Seq,
};
use std::fmt;

/// What an activation commits: its recorded calls, the work they start, and perhaps its end.
#[derive(Debug, Default)]
pub struct Commit {
    pub events: Vec<HistoryEvent>,
    /// Activities scheduled.
    pub activities: Vec<ScheduledActivity>,
    /// How many of `activities`, from the first, the committing node runs itself: a shared
    /// store notes them as claimed by it, and the others wait for any node to claim them. A
    /// single-node store has them all run here.
    pub run_here: usize,
    /// Timers armed: (position, fire at).
    pub timers: Vec<(Pos, Millis)>,
    /// Timers disarmed.
    pub cancel_timers: Vec<Pos>,
    pub custom_status: Option<String>,
    /// Child orchestrations to start.
    pub children: Vec<ChildStart>,
    /// Operations sent to entities.
    pub entity_ops: Vec<EntityOp>,
    /// The run's end: status plus output or failure. Pending work is dropped with it.
    pub end: Option<(RuntimeStatus, Option<String>, Option<String>)>,
    /// The lease (its epoch) the committing node holds on the instance; a shared store refuses
    /// the commit ([`super::StoreError::Fenced`]) if the node no longer holds it. `None`: unfenced.
    pub lease: Option<u64>,
}

/// An activity an activation scheduled.
#[derive(Debug, Clone)]
pub struct ScheduledActivity {
    pub pos: Pos,
    pub name: String,
    pub input: String,
    pub retry: Option<RetryPolicy>,
}

/// A child orchestration an activation starts: its id and its `started` event (`None` when
/// no orchestration of the requested name is deployed: the handle fails at once).
#[derive(Debug, Clone)]
pub struct ChildStart {
    pub pos: Pos,
    pub id: InstanceId,
    pub name: String,
    pub started: Option<HistoryEvent>,
}

/// A child's orchestration name, input, digest and `started` event.
pub struct ChildStarted<'a> {
    pub name: &'a str,
    pub input: &'a str,
    pub digest: &'a ComponentDigest,
    pub event: &'a HistoryEvent,
}

impl ChildStart {
    /// What the child starts with, or why it cannot start (no orchestration of its name is
    /// deployed).
    pub fn started(&self) -> Result<ChildStarted<'_>, crate::history::ending::ChildRefused> {
        match &self.started {
            Some(
                event @ HistoryEvent::Started {
                    name,
                    input,
                    digest,
                    ..
                },
            ) => Ok(ChildStarted {
                name,
                input,
                digest,
                event,
            }),
            _ => Err(crate::history::ending::ChildRefused::NotDeployed(
                self.name.clone(),
            )),
        }
    }
}

/// What a committed activation changed for other instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// Instances to wake: children started, a parent told that its child ended, or the
    /// instance itself when a child could not start (its handle failed in this commit).
    pub wake: Vec<InstanceId>,
    /// Entities that were sent operations.
    pub entities: Vec<EntityKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// An instance with this id exists; `same_input` tells whether it was started the same way.
    Exists {
        same_input: bool,
    },
}

/// What a run that continues as new commits: its last recorded calls, the sub-orchestrations
/// and entity operations they start, the custom status it set last, and the next run's input
/// and seed. Children started so run on their own: their end is told to no later run.
#[derive(Debug)]
pub struct ContinueAsNew {
    pub events: Vec<HistoryEvent>,
    pub children: Vec<ChildStart>,
    pub entity_ops: Vec<EntityOp>,
    pub custom_status: Option<String>,
    pub input: String,
    pub seed: u64,
    /// As [`Commit::lease`].
    pub lease: Option<u64>,
}

/// What a purge of one instance did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeOutcome {
    /// This many instances were deleted: the instance and its ended sub-orchestrations.
    Purged(usize),
    NotFound,
    /// It has not ended; nothing was deleted.
    Running(RuntimeStatus),
}

/// Who else a terminate changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terminated {
    /// The running parent told that its child ended.
    pub parent: Option<InstanceId>,
    /// Sub-orchestrations terminated with it (recursive terminate), parents before children.
    pub children: Vec<InstanceId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaiseOutcome {
    Raised(Seq),
    NotFound,
    Finished(RuntimeStatus),
}

/// An activity to run.
#[derive(Debug, Clone)]
pub struct ActivityWork {
    pub instance: InstanceId,
    pub pos: Pos,
    pub name: String,
    pub input: String,
    pub attempt: u32,
    pub digest: ComponentDigest,
    /// The instance's orchestration.
    pub orchestration: String,
    /// The instance's trace context: its run's `started` event's `trace`.
    pub trace: Option<String>,
}

/// What recording an activity's result did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompleteOutcome {
    /// The result is in the history.
    Recorded,
    /// The attempt failed and the policy retries it at this time.
    Retrying(Millis),
    /// Recorded before, or the instance has ended: nothing was written.
    Ignored,
}

/// What firing due timers did.
#[derive(Debug, Default)]
pub struct Fired {
    /// Instances that got a `timer_fired`, each once.
    pub woken: Vec<InstanceId>,
    /// Activities whose retry delay is over.
    pub retries: Vec<ActivityWork>,
}

/// Names one entity: the entity's name (its kind, exported by a component) and its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey {
    pub name: String,
    pub key: String,
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.name, self.key)
    }
}

/// An operation sent to an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityOp {
    pub entity: EntityKey,
    pub operation: String,
    pub input: String,
    /// For a call: the caller's handle that the output completes.
    pub reply: Option<Pos>,
}

/// The oldest operation waiting for an entity, with the entity's state.
#[derive(Debug, Clone)]
pub struct NextOp {
    /// Its place in the inbox.
    pub id: i64,
    pub operation: String,
    pub input: String,
    pub state: Option<String>,
    /// How many operations the entity had applied when this was read: the version of
    /// `state`, which [`super::EntityStore::finish_entity_op`] checks.
    pub version: u64,
}

/// What applying an operation produced.
#[derive(Debug, Clone)]
pub enum AppliedOp {
    /// The new state (`None`: deleted) and the output.
    Done {
        state: Option<String>,
        output: String,
    },
    /// The operation failed; the state stays as it was.
    Failed(String),
    /// No deployed component exports the entity: the operation is dropped (a call fails)
    /// and no entity is created.
    Unknown(String),
}

/// An entity as the API shows it.
#[derive(Debug, Clone)]
pub struct EntityRow {
    pub entity: EntityKey,
    pub state: Option<String>,
    /// Operations applied so far.
    pub operations: u64,
    /// Operations sent and not yet applied.
    pub pending: u64,
    pub created_at: Option<Millis>,
    pub updated_at: Option<Millis>,
}

/// One applied operation, from the log.
#[derive(Debug, Clone)]
pub struct LoggedOp {
    pub seq: u64,
    pub applied_at: Millis,
    pub operation: String,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    /// The sending instance; `None` when sent over HTTP.
    pub source: Option<String>,
}

/// Which instances a list or a purge is about. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub statuses: Vec<RuntimeStatus>,
    pub name: Option<String>,
    pub created_from: Option<Millis>,
    pub created_to: Option<Millis>,
}

/// How many instances of one status run on one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceCount {
    pub status: RuntimeStatus,
    pub digest: ComponentDigest,
    pub count: u64,
}

/// Where a page of a listing starts: after this (created time, id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub created_at: Millis,
    pub id: InstanceId,
}

impl PageToken {
    /// A page of a listing fetched with one row more than `limit`: cut to `limit`, with the
    /// token of the next page if that row was there.
    pub fn page(mut rows: Vec<InstanceRow>, limit: usize) -> (Vec<InstanceRow>, Option<Self>) {
        if rows.len() <= limit {
            return (rows, None);
        }
        rows.truncate(limit);
        let next = rows.last().map(|r| Self {
            created_at: r.created_at,
            id: r.id.clone(),
        });
        (rows, next)
    }

    /// An opaque text form.
    pub fn encode(&self) -> String {
        hex::encode(format!("{}:{}", self.created_at, self.id))
    }

    pub fn decode(s: &str) -> Option<Self> {
        let text = String::from_utf8(hex::decode(s).ok()?).ok()?;
        let (at, id) = text.split_once(':')?;
        Some(Self {
            created_at: at.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

/// What a suspend or resume did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    Changed,
    /// It was so already.
    Unchanged,
    NotFound,
    Finished(RuntimeStatus),
}

/// An instance's row.
#[derive(Debug, Clone)]
pub struct InstanceRow {
    pub id: InstanceId,
    pub name: String,
    pub digest: ComponentDigest,
    pub status: RuntimeStatus,
    pub input: String,
    pub output: Option<String>,
    pub failure: Option<String>,
    pub custom_status: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        let t = PageToken {
            created_at: 42,
            id: "a:b".parse().unwrap(),
        };
        assert_eq!(PageToken::decode(&t.encode()), Some(t));
        assert_eq!(PageToken::decode("zz"), None);
        assert_eq!(PageToken::decode(&hex::encode("x:y")), None);
    }
}
