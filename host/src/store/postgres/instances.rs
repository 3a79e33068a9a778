//! Instances: creating one, committing an activation (its calls, the work they start, its
//! end), continue-as-new, raising events, terminating and purging, and reading rows and
//! histories back.

use super::rows::{
    INSTANCE_COLUMNS, append_events, corrupt, drop_pending_work, event, exec, instance_id,
    instance_row, lock_held, lock_instance, query, query_opt,
};
use super::{PgError, PostgresStore, transaction};
use crate::clock::Millis;
use crate::history::ending::{self, ChildRefused};
use crate::history::{
    ComponentDigest, HistoryEvent, InstanceId, Recorded, RuntimeStatus, Seq, continuing,
};
use crate::store::{
    ChildStart, Commit, Committed, ContinueAsNew, CreateOutcome, InstanceRow, InstanceStore,
    PurgeOutcome, RaiseOutcome, StoreError, Terminated,
};
use async_trait::async_trait;
use deadpool_postgres::Transaction;

/// Creates a child instance of run `generation` of `parent`; why it cannot be, if so.
pub(super) async fn start_child(
    tx: &Transaction<'_>,
    parent: &InstanceId,
    generation: i64,
    child: &ChildStart,
    node: &str,
    now: Millis,
) -> Result<Option<ChildRefused>, PgError> {
    let started = match child.started() {
        Ok(started) => started,
        Err(why) => return Ok(Some(why)),
    };
    let (name, input, digest) = (started.name, started.input, started.digest);
    let inserted = exec(
        tx,
        "INSERT INTO instances (id, name, digest, status, input, created_at, updated_at, next_seq,
                                parent_id, parent_pos, parent_generation, owner, lease_epoch)
         VALUES ($1, $2, $3, 'Pending', $4, $5, $5, 0, $6, $7, $8, $9, 1)
         ON CONFLICT (id) DO NOTHING",
        &[
            &child.id.as_str(),
            &name,
            &digest.as_str(),
            &input,
            &(now as i64),
            &parent.as_str(),
            &(child.pos as i64),
            &generation,
            &node,
        ],
    )
    .await?;
    if inserted == 0 {
        return Ok(Some(ChildRefused::IdInUse(child.id.clone())));
    }
    append_events(tx, &child.id, std::slice::from_ref(started.event), now).await?;
    Ok(None)
}

/// Records a child's end in its parent's history, if the parent's run that started it is
/// still going; the parent.
pub(super) async fn tell_parent(
    tx: &Transaction<'_>,
    child: &InstanceId,
    result: Result<String, String>,
    now: Millis,
) -> Result<Option<InstanceId>, PgError> {
    let link = query_opt(
        tx,
        "SELECT parent_id, parent_pos, parent_generation FROM instances WHERE id = $1",
        &[&child.as_str()],
    )
    .await?;
    let Some(link) = link else { return Ok(None) };
    let (Some(parent), Some(pos)) = (
        link.get::<_, Option<&str>>(0),
        link.get::<_, Option<i64>>(1),
    ) else {
        return Ok(None);
    };
    let started_by: Option<i64> = link.get(2);
    let parent: InstanceId = parent.parse().map_err(corrupt)?;
    match lock_instance(tx, &parent).await? {
        Some(s) if !s.is_terminal() => {}
        _ => return Ok(None),
    }
    if let Some(started_by) = started_by
        && generation_of(tx, &parent).await? != started_by
    {
        return Ok(None);
    }
    let event = ending::event_for_parent(pos as u32, result);
    append_events(tx, &parent, &[event], now).await?;
    Ok(Some(parent))
}

/// The current run of an instance.
async fn generation_of(tx: &Transaction<'_>, id: &InstanceId) -> Result<i64, PgError> {
    Ok(query_opt(
        tx,
        "SELECT generation FROM instances WHERE id = $1",
        &[&id.as_str()],
    )
    .await?
    .map(|r| r.get(0))
    .unwrap_or_default())
}

/// Ends a running instance as terminated: the event, the status, its work dropped.
async fn terminate_one(
    tx: &Transaction<'_>,
    id: &InstanceId,
    reason: &str,
    now: Millis,
) -> Result<Seq, PgError> {
    let event = HistoryEvent::Terminated {
        reason: reason.to_string(),
    };
    let seqs = append_events(tx, id, &[event], now).await?;
    exec(
        tx,
        "UPDATE instances SET status = 'Terminated', failure = $2 WHERE id = $1",
        &[&id.as_str(), &reason],
    )
    .await?;
    drop_pending_work(tx, id).await?;
    Ok(seqs[0])
}

/// The sub-orchestrations of `parent` that have not ended, locked.
async fn running_children(
    tx: &Transaction<'_>,
    parent: &InstanceId,
) -> Result<Vec<InstanceId>, PgError> {
    let rows = query(
        tx,
        "SELECT id FROM instances
         WHERE parent_id = $1 AND status IN ('Pending', 'Running', 'Suspended')
         ORDER BY id FOR UPDATE",
        &[&parent.as_str()],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| instance_id(r, 0))
        .collect::<Result<_, _>>()?)
}

/// Deletes an instance with its history and pending work, and its ended sub-orchestrations
/// (and theirs); how many instances.
pub(super) async fn purge_with_children(
    tx: &Transaction<'_>,
    id: &InstanceId,
) -> Result<usize, PgError> {
    let mut doomed = vec![id.clone()];
    let mut i = 0;
    while i < doomed.len() {
        let children = query(
            tx,
            "SELECT id FROM instances WHERE parent_id = $1
             AND status IN ('Completed', 'Failed', 'Terminated', 'ContinuedAsNew')",
            &[&doomed[i].as_str()],
        )
        .await?;
        for child in &children {
            doomed.push(instance_id(child, 0)?);
        }
        i += 1;
    }
    let mut deleted = 0;
    for id in &doomed {
        drop_pending_work(tx, id).await?;
        exec(
            tx,
            "DELETE FROM history WHERE instance_id = $1",
            &[&id.as_str()],
        )
        .await?;
        exec(
            tx,
            "DELETE FROM history_archive WHERE instance_id = $1",
            &[&id.as_str()],
        )
        .await?;
        deleted += exec(tx, "DELETE FROM instances WHERE id = $1", &[&id.as_str()]).await?;
    }
    Ok(deleted as usize)
}

/// Commits an activation to a locked, running instance.
async fn commit_activation(
    tx: &Transaction<'_>,
    id: &InstanceId,
    commit: &Commit,
    node: &str,
    now: Millis,
) -> Result<Committed, PgError> {
    append_events(tx, id, &commit.events, now).await?;
    let mut committed = Committed::default();
    let generation = if commit.children.is_empty() && commit.entity_ops.is_empty() {
        0
    } else {
        generation_of(tx, id).await?
    };
    for child in &commit.children {
        if let Some(why) = start_child(tx, id, generation, child, node, now).await? {
            let event = ending::child_cannot_start(child.pos, why);
            append_events(tx, id, &[event], now).await?;
            committed.wake.push(id.clone());
        } else {
            committed.wake.push(child.id.clone());
        }
    }
    if !commit.entity_ops.is_empty() {
        for op in &commit.entity_ops {
            super::entities::enqueue(tx, op, Some((id, generation)), now).await?;
            if !committed.entities.contains(&op.entity) {
                committed.entities.push(op.entity.clone());
            }
        }
    }
    for (i, a) in commit.activities.iter().enumerate() {
        let claimed = (i < commit.run_here).then_some(node);
        let retry = a
            .retry
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        exec(
            tx,
            "INSERT INTO activities (instance_id, pos, name, input, attempt, retry, claimed_by)
             VALUES ($1, $2, $3, $4, 1, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &id.as_str(),
                &(a.pos as i64),
                &a.name,
                &a.input,
                &retry,
                &claimed,
            ],
        )
        .await?;
    }
    for (pos, at) in &commit.timers {
        exec(
            tx,
            "INSERT INTO timers (instance_id, pos, fire_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&id.as_str(), &(*pos as i64), &(*at as i64)],
        )
        .await?;
    }
    for pos in &commit.cancel_timers {
        exec(
            tx,
            "DELETE FROM timers WHERE instance_id = $1 AND pos = $2",
            &[&id.as_str(), &(*pos as i64)],
        )
        .await?;
    }
    if let Some(cs) = &commit.custom_status {
        exec(
            tx,
            "UPDATE instances SET custom_status = $2 WHERE id = $1",
            &[&id.as_str(), cs],
        )
        .await?;
    }
    match &commit.end {
        Some((status, output, failure)) => {
            exec(
                tx,
                "UPDATE instances SET status = $2, output = $3, failure = $4 WHERE id = $1",
                &[&id.as_str(), &status.as_str(), output, failure],
            )
            .await?;
            drop_pending_work(tx, id).await?;
            let result = match output {
                Some(o) => Ok(o.clone()),
                None => Err(failure.clone().unwrap_or_default()),
            };
            if let Some(parent) = tell_parent(tx, id, result, now).await? {
                committed.wake.push(parent);
            }
        }
        None => {
            exec(
                tx,
                "UPDATE instances SET status = 'Running' WHERE id = $1 AND status = 'Pending'",
                &[&id.as_str()],
            )
            .await?;
        }
    }
    Ok(committed)
}

/// Ends the run of a locked, running instance by continuing as new; what to wake.
async fn continue_run(
    tx: &Transaction<'_>,
    id: &InstanceId,
    next: &ContinueAsNew,
    suspended: bool,
    node: &str,
    now: Millis,
) -> Result<Committed, PgError> {
    let row = query_opt(
        tx,
        "SELECT generation, name, digest FROM instances WHERE id = $1",
        &[&id.as_str()],
    )
    .await?
    .ok_or_else(|| StoreError::Corrupt(format!("no instance row for {id}")))?;
    let (generation, name, digest): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
    let mut events = next.events.clone();
    events.push(continuing::closing(&next.input, generation as u32));
    append_events(tx, id, &events, now).await?;
    let mut committed = Committed::default();
    for child in &next.children {
        // A child that cannot start has no run left to tell.
        if start_child(tx, id, generation, child, node, now)
            .await?
            .is_none()
        {
            committed.wake.push(child.id.clone());
        }
    }
    for op in &next.entity_ops {
        super::entities::enqueue(tx, op, Some((id, generation)), now).await?;
        if !committed.entities.contains(&op.entity) {
            committed.entities.push(op.entity.clone());
        }
    }
    let ending = read_history(tx, id, 0).await?;
    exec(
        tx,
        "INSERT INTO history_archive (instance_id, generation, seq, recorded_at, event)
         SELECT instance_id, $2, seq, recorded_at, event FROM history WHERE instance_id = $1",
        &[&id.as_str(), &generation],
    )
    .await?;
    exec(
        tx,
        "DELETE FROM history WHERE instance_id = $1",
        &[&id.as_str()],
    )
    .await?;
    drop_pending_work(tx, id).await?;
    // A suspend that came while the run ended holds the next run too; the custom status the
    // run set last stays shown.
    let status = if suspended { "Suspended" } else { "Running" };
    exec(
        tx,
        "UPDATE instances SET input = $2, generation = generation + 1, next_seq = 0,
                status = $3, output = NULL, failure = NULL,
                custom_status = coalesce($4, custom_status)
         WHERE id = $1",
        &[&id.as_str(), &next.input, &status, &next.custom_status],
    )
    .await?;
    let digest: ComponentDigest = digest.parse().map_err(corrupt)?;
    let events = continuing::next_run(
        &ending,
        continuing::NextRun {
            name: &name,
            input: &next.input,
            digest: &digest,
            seed: next.seed,
            now,
            suspended,
        },
    );
    append_events(tx, id, &events, now).await?;
    Ok(committed)
}

#[async_trait]
impl InstanceStore for PostgresStore {
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
        transaction!(self, |tx| {
            let inserted = exec(
                &tx,
                "INSERT INTO instances (id, name, digest, status, input, created_at, updated_at,
                                        next_seq, owner, lease_epoch)
                 VALUES ($1, $2, $3, 'Pending', $4, $5, $5, 0, $6, 1)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &id.as_str(),
                    name,
                    &digest.as_str(),
                    input,
                    &(now as i64),
                    &self.node,
                ],
            )
            .await?;
            if inserted == 0 {
                let old = query_opt(
                    &tx,
                    "SELECT name, input FROM instances WHERE id = $1",
                    &[&id.as_str()],
                )
                .await?
                .ok_or_else(|| StoreError::Unavailable(format!("{id} was purged meanwhile")))?;
                let same = old.get::<_, &str>(0) == name && old.get::<_, &str>(1) == input;
                return Ok(CreateOutcome::Exists { same_input: same });
            }
            append_events(&tx, &id, std::slice::from_ref(&started), now).await?;
            Ok(CreateOutcome::Created)
        })
    }

    async fn commit(
        &self,
        id: InstanceId,
        commit: Commit,
        now: Millis,
    ) -> Result<Option<Committed>, StoreError> {
        transaction!(self, |tx| {
            match lock_held(&tx, &id, &self.node, commit.lease).await? {
                Some(s) if !s.is_terminal() => {}
                _ => return Ok(None),
            }
            Ok(Some(
                commit_activation(&tx, &id, &commit, &self.node, now).await?,
            ))
        })
    }

    async fn continue_as_new(
        &self,
        id: InstanceId,
        next: ContinueAsNew,
        now: Millis,
    ) -> Result<Option<Committed>, StoreError> {
        transaction!(self, |tx| {
            let suspended = match lock_held(&tx, &id, &self.node, next.lease).await? {
                Some(s) if !s.is_terminal() => s == RuntimeStatus::Suspended,
                _ => return Ok(None),
            };
            Ok(Some(
                continue_run(&tx, &id, &next, suspended, &self.node, now).await?,
            ))
        })
    }

    async fn archived_history(&self, id: InstanceId) -> Result<Vec<(u32, Recorded)>, StoreError> {
        let rows = self
            .rows(
                "SELECT generation, seq, recorded_at, event FROM history_archive
                 WHERE instance_id = $1 ORDER BY generation, seq",
                &[&id.as_str()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.get(1);
                Ok((
                    r.get::<_, i64>(0) as u32,
                    Recorded {
                        seq: seq as Seq,
                        recorded_at: r.get::<_, i64>(2) as Millis,
                        event: event(r.get(3), seq)?,
                    },
                ))
            })
            .collect()
    }

    async fn raise_event(
        &self,
        id: InstanceId,
        name: String,
        payload: String,
        now: Millis,
    ) -> Result<RaiseOutcome, StoreError> {
        transaction!(self, |tx| {
            match lock_instance(&tx, &id).await? {
                None => Ok(RaiseOutcome::NotFound),
                Some(s) if s.is_terminal() => Ok(RaiseOutcome::Finished(s)),
                Some(_) => {
                    let event = HistoryEvent::EventRaised {
                        name: name.clone(),
                        payload: payload.clone(),
                    };
                    let seqs = append_events(&tx, &id, &[event], now).await?;
                    Ok(RaiseOutcome::Raised(seqs[0]))
                }
            }
        })
    }

    async fn terminate(
        &self,
        id: InstanceId,
        reason: String,
        recursive: bool,
        now: Millis,
    ) -> Result<(RaiseOutcome, Terminated), StoreError> {
        transaction!(self, |tx| {
            let mut done = Terminated::default();
            let outcome = match lock_instance(&tx, &id).await? {
                None => RaiseOutcome::NotFound,
                Some(s) if s.is_terminal() => RaiseOutcome::Finished(s),
                Some(_) => {
                    let seq = terminate_one(&tx, &id, &reason, now).await?;
                    let failure = Err(ending::terminated_failure(&reason));
                    done.parent = tell_parent(&tx, &id, failure, now).await?;
                    if recursive {
                        let mut parents = vec![id.clone()];
                        while let Some(parent) = parents.pop() {
                            let why = ending::terminated_with_parent(&parent);
                            for child in running_children(&tx, &parent).await? {
                                terminate_one(&tx, &child, &why, now).await?;
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
    }

    async fn purge(&self, id: InstanceId) -> Result<PurgeOutcome, StoreError> {
        transaction!(self, |tx| {
            match lock_instance(&tx, &id).await? {
                None => Ok(PurgeOutcome::NotFound),
                Some(s) if !s.is_terminal() => Ok(PurgeOutcome::Running(s)),
                Some(_) => Ok(PurgeOutcome::Purged(purge_with_children(&tx, &id).await?)),
            }
        })
    }

    async fn instance(&self, id: InstanceId) -> Result<Option<InstanceRow>, StoreError> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = $1");
        self.row(&sql, &[&id.as_str()])
            .await?
            .map(|r| instance_row(&r))
            .transpose()
    }

    async fn unfinished_instances(&self) -> Result<Vec<InstanceId>, StoreError> {
        let rows = self
            .rows(
                "SELECT id FROM instances WHERE status IN ('Pending', 'Running', 'Suspended')
                 ORDER BY id",
                &[],
            )
            .await?;
        rows.iter().map(|r| instance_id(r, 0)).collect()
    }

    async fn history(&self, id: InstanceId, from: Seq) -> Result<Vec<Recorded>, StoreError> {
        let rows = self
            .rows(
                "SELECT seq, recorded_at, event FROM history
                 WHERE instance_id = $1 AND seq >= $2 ORDER BY seq",
                &[&id.as_str(), &(from as i64)],
            )
            .await?;
        rows.iter().map(recorded).collect()
    }
}

/// A history row (`seq, recorded_at, event`).
fn recorded(r: &tokio_postgres::Row) -> Result<Recorded, StoreError> {
    let seq: i64 = r.get(0);
    Ok(Recorded {
        seq: seq as Seq,
        recorded_at: r.get::<_, i64>(1) as Millis,
        event: event(r.get(2), seq)?,
    })
}

/// An instance's history from position `from` on, inside a transaction.
async fn read_history(
    tx: &Transaction<'_>,
    id: &InstanceId,
    from: Seq,
) -> Result<Vec<Recorded>, PgError> {
    let rows = query(
        tx,
        "SELECT seq, recorded_at, event FROM history
         WHERE instance_id = $1 AND seq >= $2 ORDER BY seq",
        &[&id.as_str(), &(from as i64)],
    )
    .await?;
    Ok(rows.iter().map(recorded).collect::<Result<_, _>>()?)
}
