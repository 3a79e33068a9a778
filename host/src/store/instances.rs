//! Instances: creating one, committing an activation (its calls, the work they start, its
//! end), continue-as-new, raising events, terminating and purging, and reading rows and
//! histories back.

use super::rows::{
    InstanceRow, append_events, corrupt, drop_pending_work, exec, finish_instance, instance_status,
    read_instance,
};
use super::{Store, StoreError};
use crate::clock::Millis;
use crate::history::{
    HistoryEvent, InstanceId, Pos, Recorded, RetryPolicy, RuntimeStatus, Seq, ending,
};
use rusqlite::{Connection, OptionalExtension, params};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created,
    /// An instance with this id exists; `same_input` tells whether it was started the same way.
    Exists {
        same_input: bool,
    },
}

/// What a run that continues as new commits: its last recorded calls and entity operations,
/// the custom status it set last, and the next run's input and seed.
#[derive(Debug)]
pub struct ContinueAsNew {
    pub events: Vec<HistoryEvent>,
    pub entity_ops: Vec<super::EntityOp>,
    pub custom_status: Option<String>,
    pub input: String,
    pub seed: u64,
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

/// Creates a child instance; the reason it cannot be, if so.
pub(super) fn start_child(
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
pub(super) fn tell_parent(
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
    let event = ending::event_for_parent(pos, result);
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

impl Store {
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
        next: ContinueAsNew,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let ContinueAsNew {
            events,
            entity_ops,
            custom_status,
            input,
            seed,
        } = next;
        self.write(move |c| {
            let suspended = match instance_status(c, &id)? {
                Some(s) if !s.is_terminal() => s == RuntimeStatus::Suspended,
                _ => return Ok(false),
            };
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
            // A suspend that came while the run ended holds the next run too; the custom
            // status the run set last stays shown.
            exec(
                c,
                "UPDATE instances SET input = ?2, generation = generation + 1, next_seq = 0,
                        status = ?3, output = NULL, failure = NULL,
                        custom_status = coalesce(?4, custom_status)
                 WHERE id = ?1",
                params![
                    id.as_str(),
                    input,
                    if suspended { "Suspended" } else { "Running" },
                    custom_status
                ],
            )?;
            let mut next = vec![HistoryEvent::Started {
                name,
                input,
                digest: digest.parse().map_err(corrupt)?,
                seed,
                at: now,
            }];
            if suspended {
                next.push(HistoryEvent::Suspended {
                    reason: "suspended while the previous run continued as new".into(),
                });
            }
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
                    done.parent =
                        tell_parent(c, &id, Err(ending::terminated_failure(&reason)), now)?;
                    if recursive {
                        let mut parents = vec![id.clone()];
                        while let Some(parent) = parents.pop() {
                            let why = ending::terminated_with_parent(&parent);
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
}
