//! Instances: creating one, committing an activation (its calls, the work they start, its
//! end), continue-as-new, raising events, terminating and purging, and reading rows and
//! histories back.

use super::SqliteStore;
use super::rows::{
    append_events, corrupt, drop_pending_work, exec, finish_instance, instance_status,
    read_instance,
};
use crate::clock::Millis;
use crate::history::ending::{self, ChildRefused};
use crate::history::{
    ComponentDigest, HistoryEvent, InstanceId, Pos, Recorded, RuntimeStatus, Seq, continuing,
};
use crate::store::{
    ChildStart, Commit, Committed, ContinueAsNew, CreateOutcome, InstanceRow, InstanceStore,
    PurgeOutcome, RaiseOutcome, StoreError, Terminated,
};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

/// Creates a child instance of run `generation` of `parent`; why it cannot be, if so.
pub(super) fn start_child(
    c: &Connection,
    parent: &InstanceId,
    generation: u32,
    child: &ChildStart,
    now: Millis,
) -> Result<Option<ChildRefused>, StoreError> {
    let started = match child.started() {
        Ok(started) => started,
        Err(why) => return Ok(Some(why)),
    };
    let (name, input, digest) = (started.name, started.input, started.digest);
    let taken: Option<String> = c
        .prepare_cached("SELECT id FROM instances WHERE id = ?1")?
        .query_row([child.id.as_str()], |r| r.get(0))
        .optional()?;
    if taken.is_some() {
        return Ok(Some(ChildRefused::IdInUse(child.id.clone())));
    }
    exec(
        c,
        "INSERT INTO instances (id, name, digest, status, input, created_at, updated_at, next_seq,
                                parent_id, parent_pos, parent_generation)
         VALUES (?1, ?2, ?3, 'Pending', ?4, ?5, ?5, 0, ?6, ?7, ?8)",
        params![
            child.id.as_str(),
            name,
            digest.as_str(),
            input,
            now as i64,
            parent.as_str(),
            child.pos,
            generation
        ],
    )?;
    append_events(c, &child.id, std::slice::from_ref(started.event), now)?;
    Ok(None)
}

/// Records a child's end in its parent's history, if the parent's run that started it is
/// still going; the parent.
pub(super) fn tell_parent(
    c: &Connection,
    child: &InstanceId,
    result: Result<String, String>,
    now: Millis,
) -> Result<Option<InstanceId>, StoreError> {
    let link: Option<(Option<String>, Option<Pos>, Option<u32>)> = c
        .prepare_cached(
            "SELECT parent_id, parent_pos, parent_generation FROM instances WHERE id = ?1",
        )?
        .query_row([child.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((Some(parent), Some(pos), started_by)) = link else {
        return Ok(None);
    };
    let parent: InstanceId = parent.parse().map_err(corrupt)?;
    let run: Option<(String, u32)> = c
        .prepare_cached("SELECT status, generation FROM instances WHERE id = ?1")?
        .query_row([parent.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match run {
        Some((status, generation))
            if !super::rows::parse_status(&status)?.is_terminal()
                && started_by.is_none_or(|g| g == generation) => {}
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

#[async_trait]
impl InstanceStore for SqliteStore {
    /// Creates an instance with its `started` event, unless one with that id exists.
    async fn create_instance(
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
    async fn commit(
        &self,
        id: InstanceId,
        commit: Commit,
        now: Millis,
    ) -> Result<Option<Committed>, StoreError> {
        self.write(move |c| {
            match instance_status(c, &id)? {
                None => return Ok(None),
                Some(s) if s.is_terminal() => return Ok(None),
                Some(_) => {}
            }
            append_events(c, &id, &commit.events, now)?;
            let mut committed = Committed::default();
            let generation = if commit.children.is_empty() && commit.entity_ops.is_empty() {
                0
            } else {
                c.prepare_cached("SELECT generation FROM instances WHERE id = ?1")?
                    .query_row([id.as_str()], |r| r.get(0))?
            };
            for child in &commit.children {
                if let Some(why) = start_child(c, &id, generation, child, now)? {
                    let event = ending::child_cannot_start(child.pos, why);
                    append_events(c, &id, &[event], now)?;
                    committed.wake.push(id.clone());
                } else {
                    committed.wake.push(child.id.clone());
                }
            }
            if !commit.entity_ops.is_empty() {
                for op in &commit.entity_ops {
                    super::entities::enqueue(c, op, Some((&id, generation)), now)?;
                    if !committed.entities.contains(&op.entity) {
                        committed.entities.push(op.entity.clone());
                    }
                }
            }
            {
                let mut ins = c.prepare_cached(
                    "INSERT OR IGNORE INTO activities (instance_id, pos, name, input, attempt, retry)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5)",
                )?;
                for a in &commit.activities {
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
                for (pos, at) in &commit.timers {
                    ins.execute(params![id.as_str(), pos, *at as i64])?;
                }
                let mut del =
                    c.prepare_cached("DELETE FROM timers WHERE instance_id = ?1 AND pos = ?2")?;
                for pos in &commit.cancel_timers {
                    del.execute(params![id.as_str(), pos])?;
                }
            }
            if let Some(cs) = &commit.custom_status {
                exec(c,
                    "UPDATE instances SET custom_status = ?2 WHERE id = ?1",
                    params![id.as_str(), cs],
                )?;
            }
            match &commit.end {
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
                        committed.wake.push(parent);
                    }
                }
                None => {
                    exec(c,
                        "UPDATE instances SET status = 'Running' WHERE id = ?1 AND status = 'Pending'",
                        [id.as_str()],
                    )?;
                }
            }
            Ok(Some(committed))
        })
        .await
    }

    /// Ends the current run by continuing as new: commits the run's last `events` and a
    /// `continued_as_new`, archives the history as a generation, and starts the next run with a
    /// `started` event (input `input`) followed by the events no wait took, in the order they
    /// arrived (also those that arrived while the run was ending); operations the run sent to
    /// entities are sent. Refused (`Ok(false)`) if
    /// the instance has ended meanwhile.
    async fn continue_as_new(
        &self,
        id: InstanceId,
        next: ContinueAsNew,
        now: Millis,
    ) -> Result<Option<Committed>, StoreError> {
        let ContinueAsNew {
            events,
            children,
            entity_ops,
            custom_status,
            input,
            seed,
            // One node serves a SQLite file: it holds every lease.
            lease: _,
        } = next;
        self.write(move |c| {
            let suspended = match instance_status(c, &id)? {
                Some(s) if !s.is_terminal() => s == RuntimeStatus::Suspended,
                _ => return Ok(None),
            };
            let (generation, name, digest): (u32, String, String) = c
                .prepare_cached("SELECT generation, name, digest FROM instances WHERE id = ?1")?
                .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let mut events = events;
            events.push(continuing::closing(&input, generation));
            append_events(c, &id, &events, now)?;
            let mut committed = Committed::default();
            for child in &children {
                // A child that cannot start has no run left to tell.
                if start_child(c, &id, generation, child, now)?.is_none() {
                    committed.wake.push(child.id.clone());
                }
            }
            for op in &entity_ops {
                super::entities::enqueue(c, op, Some((&id, generation)), now)?;
                if !committed.entities.contains(&op.entity) {
                    committed.entities.push(op.entity.clone());
                }
            }
            let ending = read_history(c, &id, 0)?;
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
            let digest: ComponentDigest = digest.parse().map_err(corrupt)?;
            let next = continuing::next_run(
                &ending,
                continuing::NextRun {
                    name: &name,
                    input: &input,
                    digest: &digest,
                    seed,
                    now,
                    suspended,
                },
            );
            append_events(c, &id, &next, now)?;
            Ok(Some(committed))
        })
        .await
    }

    /// The archived histories of an instance's earlier runs, oldest first.
    async fn archived_history(&self, id: InstanceId) -> Result<Vec<(u32, Recorded)>, StoreError> {
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
    async fn raise_event(
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
    async fn terminate(
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
    async fn purge(&self, id: InstanceId) -> Result<PurgeOutcome, StoreError> {
        self.write(move |c| match instance_status(c, &id)? {
            None => Ok(PurgeOutcome::NotFound),
            Some(s) if !s.is_terminal() => Ok(PurgeOutcome::Running(s)),
            Some(_) => Ok(PurgeOutcome::Purged(purge_with_children(c, &id)?)),
        })
        .await
    }

    /// An instance's row.
    async fn instance(&self, id: InstanceId) -> Result<Option<InstanceRow>, StoreError> {
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
    async fn unfinished_instances(&self) -> Result<Vec<InstanceId>, StoreError> {
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
    async fn history(&self, id: InstanceId, from: Seq) -> Result<Vec<Recorded>, StoreError> {
        self.read(move |c| read_history(c, &id, from)).await
    }
}

/// An instance's history from position `from` on.
fn read_history(c: &Connection, id: &InstanceId, from: Seq) -> Result<Vec<Recorded>, StoreError> {
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
}
