//! The store's operations: each write is one function run inside the writer's transaction.

use super::{Store, StoreError};
use crate::clock::Millis;
use crate::history::{
    ComponentDigest, HistoryEvent, InstanceId, Pos, Recorded, RetryPolicy, RuntimeStatus, Seq,
};
use rusqlite::{Connection, OptionalExtension, params};

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

/// An activity to run.
#[derive(Debug, Clone)]
pub struct ActivityWork {
    pub instance: InstanceId,
    pub pos: Pos,
    pub name: String,
    pub input: String,
    pub attempt: u32,
    pub digest: ComponentDigest,
}

/// What an activation commits: its recorded calls, the work they start, and perhaps its end.
#[derive(Debug, Default)]
pub struct Append {
    pub events: Vec<HistoryEvent>,
    /// Activities scheduled.
    pub activities: Vec<ScheduledActivity>,
    /// Timers armed: (position, fire at).
    pub timers: Vec<(Pos, Millis)>,
    /// Timers disarmed.
    pub cancel_timers: Vec<Pos>,
    pub custom_status: Option<String>,
    /// Child orchestrations to start.
    pub children: Vec<ChildStart>,
    /// Operations sent to entities.
    pub entity_ops: Vec<super::EntityOp>,
    /// The run's end: status plus output or failure. Pending work is dropped with it.
    pub end: Option<(RuntimeStatus, Option<String>, Option<String>)>,
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

/// What a committed activation changed for other instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    /// Instances to wake: children started, a parent told that its child ended, or the
    /// instance itself when a child could not start (its handle failed in this commit).
    pub wake: Vec<InstanceId>,
    /// Entities that were sent operations.
    pub entities: Vec<super::EntityKey>,
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
    /// Instances that got a `timer_fired`.
    pub woken: Vec<InstanceId>,
    /// Activities whose retry delay is over.
    pub retries: Vec<ActivityWork>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// An instance with this id exists; `same_input` tells whether it was started the same way.
    Exists {
        same_input: bool,
    },
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

/// Runs a statement, prepared once per connection.
pub(super) fn exec(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

fn instance_status(
    conn: &Connection,
    id: &InstanceId,
) -> Result<Option<RuntimeStatus>, StoreError> {
    let s: Option<String> = conn
        .prepare_cached("SELECT status FROM instances WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?;
    s.map(|s| parse_status(&s)).transpose()
}

fn parse_status(s: &str) -> Result<RuntimeStatus, StoreError> {
    RuntimeStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown status '{s}'")))
}

/// Appends events to an instance's history, numbering them; returns their positions.
pub(super) fn append_events(
    conn: &Connection,
    id: &InstanceId,
    events: &[HistoryEvent],
    now: Millis,
) -> Result<Vec<Seq>, StoreError> {
    let next: i64 = conn
        .prepare_cached("SELECT next_seq FROM instances WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO history (instance_id, seq, recorded_at, event) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut seqs = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let seq = next + i as i64;
        let json = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        stmt.execute(params![id.as_str(), seq, now as i64, json])?;
        seqs.push(seq as Seq);
    }
    exec(
        conn,
        "UPDATE instances SET next_seq = ?2, updated_at = ?3 WHERE id = ?1",
        params![id.as_str(), next + events.len() as i64, now as i64],
    )?;
    Ok(seqs)
}

/// Creates a child instance; the reason it cannot be, if so.
fn start_child(
    c: &Connection,
    parent: &InstanceId,
    child: &ChildStart,
    now: Millis,
) -> Result<Option<String>, StoreError> {
    let Some(
        started @ HistoryEvent::Started {
            name,
            input,
            digest,
            ..
        },
    ) = &child.started
    else {
        return Ok(Some(format!(
            "no orchestration named '{}' is deployed",
            child.name
        )));
    };
    let taken: Option<String> = c
        .prepare_cached("SELECT id FROM instances WHERE id = ?1")?
        .query_row([child.id.as_str()], |r| r.get(0))
        .optional()?;
    if taken.is_some() {
        return Ok(Some(format!(
            "instance id '{}' is already in use",
            child.id
        )));
    }
    exec(
        c,
        "INSERT INTO instances (id, name, digest, status, input, created_at, updated_at, next_seq,
                                parent_id, parent_pos)
         VALUES (?1, ?2, ?3, 'Pending', ?4, ?5, ?5, 0, ?6, ?7)",
        params![
            child.id.as_str(),
            name,
            digest.as_str(),
            input,
            now as i64,
            parent.as_str(),
            child.pos
        ],
    )?;
    append_events(c, &child.id, std::slice::from_ref(started), now)?;
    Ok(None)
}

/// Records a child's end in its parent's history (if it has a running parent); the parent.
fn tell_parent(
    c: &Connection,
    child: &InstanceId,
    result: Result<String, String>,
    now: Millis,
) -> Result<Option<InstanceId>, StoreError> {
    let link: Option<(Option<String>, Option<Pos>)> = c
        .prepare_cached("SELECT parent_id, parent_pos FROM instances WHERE id = ?1")?
        .query_row([child.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((Some(parent), Some(pos))) = link else {
        return Ok(None);
    };
    let parent: InstanceId = parent.parse().map_err(corrupt)?;
    match instance_status(c, &parent)? {
        Some(s) if !s.is_terminal() => {}
        _ => return Ok(None),
    }
    let event = match result {
        Ok(output) => HistoryEvent::SubOrchestrationCompleted {
            handle: pos,
            output,
        },
        Err(error) => HistoryEvent::SubOrchestrationFailed { handle: pos, error },
    };
    append_events(c, &parent, &[event], now)?;
    Ok(Some(parent))
}

/// Ends a running instance as terminated: the event, the status, its work dropped.
fn terminate_one(
    c: &Connection,
    id: &InstanceId,
    reason: &str,
    now: Millis,
) -> Result<Seq, StoreError> {
    let seqs = append_events(
        c,
        id,
        &[HistoryEvent::Terminated {
            reason: reason.to_string(),
        }],
        now,
    )?;
    exec(
        c,
        "UPDATE instances SET status = 'Terminated', failure = ?2 WHERE id = ?1",
        params![id.as_str(), reason],
    )?;
    drop_pending_work(c, id)?;
    Ok(seqs[0])
}

/// The sub-orchestrations of `parent` that have not ended.
fn running_children(c: &Connection, parent: &InstanceId) -> Result<Vec<InstanceId>, StoreError> {
    let ids: Vec<String> = c
        .prepare_cached(
            "SELECT id FROM instances
             WHERE parent_id = ?1 AND status IN ('Pending', 'Running', 'Suspended')",
        )?
        .query_map([parent.as_str()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    ids.into_iter()
        .map(|s| s.parse().map_err(corrupt))
        .collect()
}

/// Deletes an instance with its history and pending work, and its ended sub-orchestrations
/// (and theirs); how many instances.
pub(super) fn purge_with_children(c: &Connection, id: &InstanceId) -> Result<usize, StoreError> {
    let mut doomed = vec![id.clone()];
    let mut i = 0;
    while i < doomed.len() {
        let children: Vec<String> = c
            .prepare_cached(
                "SELECT id FROM instances WHERE parent_id = ?1
                 AND status IN ('Completed', 'Failed', 'Terminated', 'ContinuedAsNew')",
            )?
            .query_map([doomed[i].as_str()], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for child in children {
            doomed.push(child.parse().map_err(corrupt)?);
        }
        i += 1;
    }
    let mut deleted = 0;
    for id in &doomed {
        drop_pending_work(c, id)?;
        exec(
            c,
            "DELETE FROM history WHERE instance_id = ?1",
            [id.as_str()],
        )?;
        exec(
            c,
            "DELETE FROM history_archive WHERE instance_id = ?1",
            [id.as_str()],
        )?;
        deleted += exec(c, "DELETE FROM instances WHERE id = ?1", [id.as_str()])?;
    }
    Ok(deleted)
}

/// Drops the pending work of an instance that has ended.
fn drop_pending_work(conn: &Connection, id: &InstanceId) -> Result<(), StoreError> {
    exec(
        conn,
        "DELETE FROM timers WHERE instance_id = ?1",
        [id.as_str()],
    )?;
    exec(
        conn,
        "DELETE FROM activities WHERE instance_id = ?1",
        [id.as_str()],
    )?;
    Ok(())
}

/// The columns of an instance row, before parsing.
pub(super) type RawInstance = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

pub(super) fn read_instance(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawInstance> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

impl Store {
    /// Stores a component's bytes (once per digest) as the newest deployed; with `again`, a
    /// component stored before becomes the newest too (else it keeps its place).
    pub async fn put_component(
        &self,
        digest: ComponentDigest,
        bytes: Vec<u8>,
        again: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            let next = "(SELECT coalesce(max(deploy_seq), 0) + 1 FROM components)";
            exec(
                c,
                &format!(
                    "INSERT OR IGNORE INTO components (digest, bytes, added_at, deploy_seq)
                     VALUES (?1, ?2, ?3, {next})"
                ),
                params![digest.as_str(), bytes, now as i64],
            )?;
            if again && c.changes() == 0 {
                exec(
                    c,
                    &format!(
                        "UPDATE components SET deploy_seq = {next}, added_at = ?2 WHERE digest = ?1"
                    ),
                    params![digest.as_str(), now as i64],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// The stored components' digests and deploy times, oldest deploy first.
    pub async fn component_list(&self) -> Result<Vec<(ComponentDigest, Millis)>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare("SELECT digest, added_at FROM components ORDER BY deploy_seq")?;
            let rows: Vec<(String, i64)> = q
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(d, at)| Ok((d.parse().map_err(corrupt)?, at as Millis)))
                .collect()
        })
        .await
    }

    /// Whether a component is stored (deployed).
    pub async fn has_component(&self, digest: ComponentDigest) -> Result<bool, StoreError> {
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT 1 FROM components WHERE digest = ?1")?
                    .exists([digest.as_str()])?,
            )
        })
        .await
    }

    /// Every stored component, in the order they were deployed.
    pub async fn stored_components(&self) -> Result<Vec<(ComponentDigest, Vec<u8>)>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare("SELECT digest, bytes FROM components ORDER BY deploy_seq")?;
            let rows: Vec<(String, Vec<u8>)> = q
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(d, b)| Ok((d.parse().map_err(corrupt)?, b)))
                .collect()
        })
        .await
    }

    /// Moves a running instance to component `digest`, if its history still ends before
    /// `next_seq` (nothing was recorded since it was checked). Whether it moved.
    pub async fn set_digest(
        &self,
        id: InstanceId,
        digest: ComponentDigest,
        next_seq: Seq,
    ) -> Result<bool, StoreError> {
        self.write(move |c| {
            let moved = exec(
                c,
                "UPDATE instances SET digest = ?2
                 WHERE id = ?1 AND next_seq = ?3 AND status IN ('Pending', 'Running', 'Suspended')",
                params![id.as_str(), digest.as_str(), next_seq as i64],
            )?;
            Ok(moved == 1)
        })
        .await
    }

    /// A stored component's bytes.
    pub async fn component_bytes(
        &self,
        digest: ComponentDigest,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT bytes FROM components WHERE digest = ?1",
                [digest.as_str()],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    /// Creates an instance with its `started` event, unless one with that id exists.
    pub async fn create_instance(
        &self,
        id: InstanceId,
        started: HistoryEvent,
        now: Millis,
    ) -> Result<CreateOutcome, StoreError> {
        let HistoryEvent::Started {
            name,
            input,
            digest,
            ..
        } = &started
        else {
            return Err(StoreError::Corrupt(
                "an instance starts with `started`".into(),
            ));
        };
        let (name, input, digest) = (name.clone(), input.clone(), digest.clone());
        self.write(move |c| {
            let existing: Option<(String, String)> = c
                .query_row(
                    "SELECT name, input FROM instances WHERE id = ?1",
                    [id.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((old_name, old_input)) = existing {
                return Ok(CreateOutcome::Exists {
                    same_input: old_name == name && old_input == input,
                });
            }
            exec(c,
                "INSERT INTO instances (id, name, digest, status, input, created_at, updated_at, next_seq)
                 VALUES (?1, ?2, ?3, 'Pending', ?4, ?5, ?5, 0)",
                params![id.as_str(), name, digest.as_str(), input, now as i64],
            )?;
            append_events(c, &id, &[started], now)?;
            Ok(CreateOutcome::Created)
        })
        .await
    }

    /// Commits an activation. Refused (`Ok(None)`) if the instance has ended meanwhile.
    pub async fn append(
        &self,
        id: InstanceId,
        append: Append,
        now: Millis,
    ) -> Result<Option<Appended>, StoreError> {
        self.write(move |c| {
            match instance_status(c, &id)? {
                None => return Ok(None),
                Some(s) if s.is_terminal() => return Ok(None),
                Some(_) => {}
            }
            append_events(c, &id, &append.events, now)?;
            let mut appended = Appended::default();
            for child in &append.children {
                if let Some(error) = start_child(c, &id, child, now)? {
                    let event = HistoryEvent::SubOrchestrationFailed {
                        handle: child.pos,
                        error,
                    };
                    append_events(c, &id, &[event], now)?;
                    appended.wake.push(id.clone());
                } else {
                    appended.wake.push(child.id.clone());
                }
            }
            if !append.entity_ops.is_empty() {
                let generation: u32 = c
                    .prepare_cached("SELECT generation FROM instances WHERE id = ?1")?
                    .query_row([id.as_str()], |r| r.get(0))?;
                for op in &append.entity_ops {
                    super::entities::enqueue(c, op, Some((&id, generation)), now)?;
                    if !appended.entities.contains(&op.entity) {
                        appended.entities.push(op.entity.clone());
                    }
                }
            }
            {
                let mut ins = c.prepare_cached(
                    "INSERT OR IGNORE INTO activities (instance_id, pos, name, input, attempt, retry)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5)",
                )?;
                for a in &append.activities {
                    let retry = a
                        .retry
                        .as_ref()
                        .map(|r| serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string())))
                        .transpose()?;
                    ins.execute(params![id.as_str(), a.pos, a.name, a.input, retry])?;
                }
                let mut ins = c.prepare_cached(
                    "INSERT OR IGNORE INTO timers (instance_id, pos, fire_at) VALUES (?1, ?2, ?3)",
                )?;
                for (pos, at) in &append.timers {
                    ins.execute(params![id.as_str(), pos, *at as i64])?;
                }
                let mut del =
                    c.prepare_cached("DELETE FROM timers WHERE instance_id = ?1 AND pos = ?2")?;
                for pos in &append.cancel_timers {
                    del.execute(params![id.as_str(), pos])?;
                }
            }
            if let Some(cs) = &append.custom_status {
                exec(c,
                    "UPDATE instances SET custom_status = ?2 WHERE id = ?1",
                    params![id.as_str(), cs],
                )?;
            }
            match &append.end {
                Some((status, output, failure)) => {
                    exec(c,
                        "UPDATE instances SET status = ?2, output = ?3, failure = ?4 WHERE id = ?1",
                        params![id.as_str(), status.as_str(), output, failure],
                    )?;
                    drop_pending_work(c, &id)?;
                    let result = match output {
                        Some(o) => Ok(o.clone()),
                        None => Err(failure.clone().unwrap_or_default()),
                    };
                    if let Some(parent) = tell_parent(c, &id, result, now)? {
                        appended.wake.push(parent);
                    }
                }
                None => {
                    exec(c,
                        "UPDATE instances SET status = 'Running' WHERE id = ?1 AND status = 'Pending'",
                        [id.as_str()],
                    )?;
                }
            }
            Ok(Some(appended))
        })
        .await
    }

    /// Ends the current run by continuing as new: commits the run's last `events` and a
    /// `continued_as_new`, archives the history as a generation, and starts the next run with a
    /// `started` event (input `input`) followed by the events no wait took, in the order they
    /// arrived (also those that arrived while the run was ending); operations the run sent to
    /// entities are sent. Refused (`Ok(false)`) if
    /// the instance has ended meanwhile.
    pub async fn continue_as_new(
        &self,
        id: InstanceId,
        events: Vec<HistoryEvent>,
        entity_ops: Vec<super::EntityOp>,
        input: String,
        seed: u64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.write(move |c| {
            match instance_status(c, &id)? {
                Some(s) if !s.is_terminal() => {}
                _ => return Ok(false),
            }
            let (generation, name, digest): (u32, String, String) = c
                .prepare_cached("SELECT generation, name, digest FROM instances WHERE id = ?1")?
                .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let mut events = events;
            events.push(HistoryEvent::ContinuedAsNew {
                input: input.clone(),
                generation,
            });
            append_events(c, &id, &events, now)?;
            for op in &entity_ops {
                super::entities::enqueue(c, op, Some((&id, generation)), now)?;
            }
            let carried = {
                let mut q = c.prepare_cached(
                    "SELECT seq, recorded_at, event FROM history WHERE instance_id = ?1 ORDER BY seq",
                )?;
                let rows: Vec<(i64, i64, String)> = q
                    .query_map([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                let mut history = Vec::with_capacity(rows.len());
                for (seq, at, json) in rows {
                    history.push(Recorded {
                        seq: seq as Seq,
                        recorded_at: at as Millis,
                        event: serde_json::from_str(&json).map_err(|e| {
                            StoreError::Corrupt(format!("history event {seq}: {e}"))
                        })?,
                    });
                }
                crate::history::RunState::from_history(&history).unconsumed_events()
            };
            exec(
                c,
                "INSERT INTO history_archive (instance_id, generation, seq, recorded_at, event)
                 SELECT instance_id, ?2, seq, recorded_at, event FROM history WHERE instance_id = ?1",
                params![id.as_str(), generation],
            )?;
            exec(c, "DELETE FROM history WHERE instance_id = ?1", [id.as_str()])?;
            drop_pending_work(c, &id)?;
            exec(
                c,
                "UPDATE instances SET input = ?2, generation = generation + 1, next_seq = 0,
                        status = 'Running', output = NULL, failure = NULL WHERE id = ?1",
                params![id.as_str(), input],
            )?;
            let mut next = vec![HistoryEvent::Started {
                name,
                input,
                digest: digest.parse().map_err(corrupt)?,
                seed,
                at: now,
            }];
            next.extend(
                carried
                    .into_iter()
                    .map(|(name, payload)| HistoryEvent::EventRaised { name, payload }),
            );
            append_events(c, &id, &next, now)?;
            Ok(true)
        })
        .await
    }

    /// The archived histories of an instance's earlier runs, oldest first.
    pub async fn archived_history(
        &self,
        id: InstanceId,
    ) -> Result<Vec<(u32, Recorded)>, StoreError> {
        self.read(move |c| {
            let mut q = c.prepare_cached(
                "SELECT generation, seq, recorded_at, event FROM history_archive
                 WHERE instance_id = ?1 ORDER BY generation, seq",
            )?;
            let rows: Vec<(u32, i64, i64, String)> = q
                .query_map([id.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(generation, seq, at, json)| {
                    let event = serde_json::from_str(&json)
                        .map_err(|e| StoreError::Corrupt(format!("archived event {seq}: {e}")))?;
                    Ok((
                        generation,
                        Recorded {
                            seq: seq as Seq,
                            recorded_at: at as Millis,
                            event,
                        },
                    ))
                })
                .collect()
        })
        .await
    }

    /// Records an event raised to an instance (durable on return).
    pub async fn raise_event(
        &self,
        id: InstanceId,
        name: String,
        payload: String,
        now: Millis,
    ) -> Result<RaiseOutcome, StoreError> {
        self.write(move |c| match instance_status(c, &id)? {
            None => Ok(RaiseOutcome::NotFound),
            Some(s) if s.is_terminal() => Ok(RaiseOutcome::Finished(s)),
            Some(_) => {
                let seqs =
                    append_events(c, &id, &[HistoryEvent::EventRaised { name, payload }], now)?;
                Ok(RaiseOutcome::Raised(seqs[0]))
            }
        })
        .await
    }

    /// Records an activity's result, once. A failed attempt of an activity with a retry policy
    /// is recorded as such and a retry timer armed instead, while the policy allows.
    pub async fn complete_activity(
        &self,
        id: InstanceId,
        pos: Pos,
        result: Result<String, String>,
        now: Millis,
    ) -> Result<CompleteOutcome, StoreError> {
        self.write(move |c| {
            let row: Option<(u32, Option<String>)> = c
                .query_row(
                    "SELECT attempt, retry FROM activities WHERE instance_id = ?1 AND pos = ?2",
                    params![id.as_str(), pos],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((attempt, retry)) = row else {
                return Ok(CompleteOutcome::Ignored);
            };
            match instance_status(c, &id)? {
                Some(s) if !s.is_terminal() => {}
                _ => return Ok(CompleteOutcome::Ignored),
            }
            if let (Err(error), Some(retry)) = (&result, retry) {
                let policy: RetryPolicy = serde_json::from_str(&retry)
                    .map_err(|e| StoreError::Corrupt(format!("retry policy: {e}")))?;
                if let Some(delay) = policy.retry_delay(attempt, error) {
                    let retry_at = now.saturating_add(delay);
                    exec(c,
                        "UPDATE activities SET attempt = attempt + 1 WHERE instance_id = ?1 AND pos = ?2",
                        params![id.as_str(), pos],
                    )?;
                    exec(c,
                        "INSERT OR REPLACE INTO timers (instance_id, pos, fire_at, kind)
                         VALUES (?1, ?2, ?3, 'retry')",
                        params![id.as_str(), pos, retry_at as i64],
                    )?;
                    let event = HistoryEvent::ActivityAttemptFailed {
                        handle: pos,
                        attempt,
                        error: error.clone(),
                        retry_at,
                    };
                    append_events(c, &id, &[event], now)?;
                    return Ok(CompleteOutcome::Retrying(retry_at));
                }
            }
            exec(c,
                "DELETE FROM activities WHERE instance_id = ?1 AND pos = ?2",
                params![id.as_str(), pos],
            )?;
            let event = match result {
                Ok(output) => HistoryEvent::ActivityCompleted {
                    handle: pos,
                    output,
                },
                Err(error) => HistoryEvent::ActivityFailed { handle: pos, error },
            };
            append_events(c, &id, &[event], now)?;
            Ok(CompleteOutcome::Recorded)
        })
        .await
    }

    /// Fires every timer due at `now`: an orchestration's timer gets `timer_fired`; an
    /// activity's retry timer hands the activity back to run again. Each fires once.
    pub async fn fire_due_timers(&self, now: Millis) -> Result<Fired, StoreError> {
        self.write(move |c| {
            let due: Vec<(String, Pos, String)> = {
                let mut q = c.prepare_cached(
                    "SELECT instance_id, pos, kind FROM timers WHERE fire_at <= ?1
                     ORDER BY fire_at, instance_id, pos",
                )?;
                q.query_map([now as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?
            };
            let mut fired = Fired::default();
            for (instance, pos, kind) in due {
                let id: InstanceId = instance.parse().map_err(corrupt)?;
                exec(
                    c,
                    "DELETE FROM timers WHERE instance_id = ?1 AND pos = ?2",
                    params![id.as_str(), pos],
                )?;
                if kind == "retry" {
                    let work = c
                        .query_row(
                            "SELECT a.name, a.input, a.attempt, i.digest
                             FROM activities a JOIN instances i ON i.id = a.instance_id
                             WHERE a.instance_id = ?1 AND a.pos = ?2",
                            params![id.as_str(), pos],
                            |r| {
                                Ok((
                                    r.get::<_, String>(0)?,
                                    r.get::<_, String>(1)?,
                                    r.get::<_, u32>(2)?,
                                    r.get::<_, String>(3)?,
                                ))
                            },
                        )
                        .optional()?;
                    if let Some((name, input, attempt, digest)) = work {
                        fired.retries.push(ActivityWork {
                            instance: id,
                            pos,
                            name,
                            input,
                            attempt,
                            digest: digest.parse().map_err(corrupt)?,
                        });
                    }
                    continue;
                }
                append_events(c, &id, &[HistoryEvent::TimerFired { handle: pos }], now)?;
                if fired.woken.last() != Some(&id) {
                    fired.woken.push(id);
                }
            }
            Ok(fired)
        })
        .await
    }

    /// Ends a running instance as terminated; for a child, also returns the parent to wake.
    /// With `recursive`, its running sub-orchestrations (and theirs) end terminated too, with a
    /// reason that names their parent: [`Terminated::children`].
    pub async fn terminate(
        &self,
        id: InstanceId,
        reason: String,
        recursive: bool,
        now: Millis,
    ) -> Result<(RaiseOutcome, Terminated), StoreError> {
        self.write(move |c| {
            let mut done = Terminated::default();
            let outcome = match instance_status(c, &id)? {
                None => RaiseOutcome::NotFound,
                Some(s) if s.is_terminal() => RaiseOutcome::Finished(s),
                Some(_) => {
                    let seq = terminate_one(c, &id, &reason, now)?;
                    done.parent = tell_parent(c, &id, Err(format!("terminated: {reason}")), now)?;
                    if recursive {
                        let mut parents = vec![id.clone()];
                        while let Some(parent) = parents.pop() {
                            let why = format!("parent instance '{parent}' was terminated");
                            for child in running_children(c, &parent)? {
                                terminate_one(c, &child, &why, now)?;
                                done.children.push(child.clone());
                                parents.push(child);
                            }
                        }
                    }
                    RaiseOutcome::Raised(seq)
                }
            };
            Ok((outcome, done))
        })
        .await
    }

    /// Deletes an ended instance with its history, and its ended sub-orchestrations (and
    /// theirs); a running one is left as it is.
    pub async fn purge(&self, id: InstanceId) -> Result<PurgeOutcome, StoreError> {
        self.write(move |c| match instance_status(c, &id)? {
            None => Ok(PurgeOutcome::NotFound),
            Some(s) if !s.is_terminal() => Ok(PurgeOutcome::Running(s)),
            Some(_) => Ok(PurgeOutcome::Purged(purge_with_children(c, &id)?)),
        })
        .await
    }

    /// An instance's row.
    pub async fn instance(&self, id: InstanceId) -> Result<Option<InstanceRow>, StoreError> {
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT id, name, digest, status, input, output, failure, custom_status,
                            created_at, updated_at
                     FROM instances WHERE id = ?1",
                    [id.as_str()],
                    read_instance,
                )
                .optional()?;
            row.map(finish_instance).transpose()
        })
        .await
    }

    /// Instances that have not ended.
    pub async fn unfinished_instances(&self) -> Result<Vec<InstanceId>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare(
                "SELECT id FROM instances WHERE status IN ('Pending', 'Running', 'Suspended')",
            )?;
            let ids: Vec<String> = q.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            ids.into_iter()
                .map(|s| {
                    s.parse()
                        .map_err(|e: crate::history::InvalidId| StoreError::Corrupt(e.to_string()))
                })
                .collect()
        })
        .await
    }

    /// An instance's history from position `from` on.
    pub async fn history(&self, id: InstanceId, from: Seq) -> Result<Vec<Recorded>, StoreError> {
        self.read(move |c| {
            let mut q = c.prepare_cached(
                "SELECT seq, recorded_at, event FROM history
                 WHERE instance_id = ?1 AND seq >= ?2 ORDER BY seq",
            )?;
            let rows: Vec<(i64, i64, String)> = q
                .query_map(params![id.as_str(), from as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(seq, at, json)| {
                    let event = serde_json::from_str(&json)
                        .map_err(|e| StoreError::Corrupt(format!("history event {seq}: {e}")))?;
                    Ok(Recorded {
                        seq: seq as Seq,
                        recorded_at: at as Millis,
                        event,
                    })
                })
                .collect()
        })
        .await
    }

    /// Activities scheduled, not recorded as completed and not waiting for a retry (to run
    /// again after a restart).
    pub async fn pending_activities(&self) -> Result<Vec<ActivityWork>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare(
                "SELECT a.instance_id, a.pos, a.name, a.input, a.attempt, i.digest
                 FROM activities a JOIN instances i ON i.id = a.instance_id
                 WHERE NOT EXISTS (SELECT 1 FROM timers t
                                   WHERE t.instance_id = a.instance_id AND t.pos = a.pos)",
            )?;
            let rows: Vec<(String, Pos, String, String, u32, String)> = q
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(instance, pos, name, input, attempt, digest)| {
                    Ok(ActivityWork {
                        instance: instance.parse().map_err(corrupt)?,
                        pos,
                        name,
                        input,
                        attempt,
                        digest: digest.parse().map_err(corrupt)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// When the next timer is due, if any is armed.
    pub async fn next_timer_due(&self) -> Result<Option<Millis>, StoreError> {
        self.read(|c| {
            let at: Option<i64> =
                c.query_row("SELECT min(fire_at) FROM timers", [], |r| r.get(0))?;
            Ok(at.map(|a| a as Millis))
        })
        .await
    }
}

fn corrupt(e: crate::history::InvalidId) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(super) fn finish_instance(raw: RawInstance) -> Result<InstanceRow, StoreError> {
    let (id, name, digest, status, input, output, failure, custom_status, created, updated) = raw;
    Ok(InstanceRow {
        id: id.parse().map_err(corrupt)?,
        name,
        digest: digest.parse().map_err(corrupt)?,
        status: parse_status(&status)?,
        input,
        output,
        failure,
        custom_status,
        created_at: created as Millis,
        updated_at: updated as Millis,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Synchronous;

    fn started() -> HistoryEvent {
        HistoryEvent::Started {
            name: "o".into(),
            input: "1".into(),
            digest: ComponentDigest::of(b"c"),
            seed: 7,
            at: 0,
        }
    }

    async fn store() -> (tempfile::TempDir, Store, InstanceId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Synchronous::Full).unwrap();
        store
            .put_component(ComponentDigest::of(b"c"), b"c".to_vec(), false, 0)
            .await
            .unwrap();
        let id: InstanceId = "i".parse().unwrap();
        let created = store
            .create_instance(id.clone(), started(), 0)
            .await
            .unwrap();
        assert_eq!(created, CreateOutcome::Created);
        (dir, store, id)
    }

    #[tokio::test]
    async fn starting_twice_is_idempotent_for_the_same_input_only() {
        let (_d, store, id) = store().await;
        let again = store
            .create_instance(id.clone(), started(), 1)
            .await
            .unwrap();
        assert_eq!(again, CreateOutcome::Exists { same_input: true });
        let HistoryEvent::Started {
            digest,
            seed,
            at,
            name,
            ..
        } = started()
        else {
            unreachable!()
        };
        let other = HistoryEvent::Started {
            name,
            input: "2".into(),
            digest,
            seed,
            at,
        };
        let again = store.create_instance(id, other, 1).await.unwrap();
        assert_eq!(again, CreateOutcome::Exists { same_input: false });
    }

    #[tokio::test]
    async fn an_activity_result_is_recorded_once() {
        let (_d, store, id) = store().await;
        let append = Append {
            events: vec![HistoryEvent::ActivityScheduled {
                pos: 0,
                name: "a".into(),
                input: "null".into(),
                retry: None,
            }],
            activities: vec![ScheduledActivity {
                pos: 0,
                name: "a".into(),
                input: "null".into(),
                retry: None,
            }],
            ..Append::default()
        };
        store.append(id.clone(), append, 1).await.unwrap().unwrap();
        assert_eq!(store.pending_activities().await.unwrap().len(), 1);
        let first = store
            .complete_activity(id.clone(), 0, Ok("1".into()), 2)
            .await
            .unwrap();
        let second = store
            .complete_activity(id.clone(), 0, Ok("2".into()), 3)
            .await
            .unwrap();
        assert_eq!(
            (first, second),
            (CompleteOutcome::Recorded, CompleteOutcome::Ignored)
        );
        assert!(store.pending_activities().await.unwrap().is_empty());
        let history = store.history(id, 0).await.unwrap();
        let results: Vec<_> = history
            .iter()
            .filter(|r| matches!(r.event, HistoryEvent::ActivityCompleted { .. }))
            .collect();
        assert_eq!(results.len(), 1);
        assert_eq!(
            history.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }

    #[tokio::test]
    async fn timers_fire_once_when_due_and_die_with_the_instance() {
        let (_d, store, id) = store().await;
        let append = Append {
            events: vec![
                HistoryEvent::TimerCreated {
                    pos: 0,
                    fire_at: 10,
                },
                HistoryEvent::TimerCreated {
                    pos: 1,
                    fire_at: 20,
                },
            ],
            timers: vec![(0, 10), (1, 20)],
            ..Append::default()
        };
        store.append(id.clone(), append, 1).await.unwrap().unwrap();
        assert_eq!(store.next_timer_due().await.unwrap(), Some(10));
        assert!(store.fire_due_timers(9).await.unwrap().woken.is_empty());
        assert_eq!(
            store.fire_due_timers(10).await.unwrap().woken,
            vec![id.clone()]
        );
        assert!(
            store.fire_due_timers(10).await.unwrap().woken.is_empty(),
            "fired once"
        );
        let end = Append {
            events: vec![HistoryEvent::Completed {
                output: "true".into(),
            }],
            end: Some((RuntimeStatus::Completed, Some("true".into()), None)),
            ..Append::default()
        };
        store.append(id.clone(), end, 11).await.unwrap().unwrap();
        assert_eq!(
            store.next_timer_due().await.unwrap(),
            None,
            "pending timer dropped"
        );
        assert_eq!(
            store
                .raise_event(id.clone(), "e".into(), "1".into(), 12)
                .await
                .unwrap(),
            RaiseOutcome::Finished(RuntimeStatus::Completed)
        );
        let late = Append {
            events: vec![HistoryEvent::Now { pos: 2, value: 0 }],
            ..Append::default()
        };
        assert_eq!(
            store.append(id, late, 13).await.unwrap(),
            None,
            "nothing after the end"
        );
    }

    #[tokio::test]
    async fn an_entity_operation_is_applied_once_and_answers_its_caller() {
        use crate::store::{AppliedOp, EntityKey, EntityOp};
        let (_d, store, id) = store().await;
        let entity = EntityKey {
            name: "counter".into(),
            key: "k".into(),
        };
        let call = EntityOp {
            entity: entity.clone(),
            operation: "add".into(),
            input: "2".into(),
            reply: Some(0),
        };
        let append = Append {
            events: vec![HistoryEvent::EntityCalled {
                pos: 0,
                name: "counter".into(),
                key: "k".into(),
                operation: "add".into(),
                input: "2".into(),
            }],
            entity_ops: vec![call],
            ..Append::default()
        };
        let appended = store.append(id.clone(), append, 1).await.unwrap().unwrap();
        assert_eq!(appended.entities, vec![entity.clone()]);
        let op = store.next_entity_op(entity.clone()).await.unwrap().unwrap();
        assert_eq!((op.operation.as_str(), op.state), ("add", None));
        let done = AppliedOp::Done {
            state: Some("2".into()),
            output: "2".into(),
        };
        let caller = store
            .finish_entity_op(entity.clone(), op.id, done.clone(), 2)
            .await
            .unwrap();
        assert_eq!(caller, Some(id.clone()));
        // Stored again (say, by a second worker): nothing changes.
        let again = store
            .finish_entity_op(entity.clone(), op.id, done, 3)
            .await
            .unwrap();
        assert_eq!(again, None);
        assert!(
            store
                .next_entity_op(entity.clone())
                .await
                .unwrap()
                .is_none()
        );
        let row = store.entity(entity.clone()).await.unwrap().unwrap();
        assert_eq!((row.state.as_deref(), row.operations), (Some("2"), 1));
        assert_eq!(store.entity_log(entity, 0, 10).await.unwrap().len(), 1);
        let history = store.history(id, 0).await.unwrap();
        assert_eq!(
            history.last().unwrap().event,
            HistoryEvent::EntityCallCompleted {
                handle: 0,
                output: "2".into()
            }
        );
    }

    #[tokio::test]
    async fn events_to_unknown_instances_are_refused() {
        let (_d, store, _id) = store().await;
        let nobody: InstanceId = "nobody".parse().unwrap();
        assert_eq!(
            store
                .raise_event(nobody, "e".into(), "1".into(), 1)
                .await
                .unwrap(),
            RaiseOutcome::NotFound
        );
    }
}
