//! Work: activities to run and their results (with retries), and timers that fire. Due
//! timers are taken with `FOR UPDATE SKIP LOCKED` and deleted in the transaction that fires
//! them: each fires once, whoever else is firing at the same time.

use super::rows::{append_events, corrupt, exec, instance_id, lock_instance, query, query_opt};
use super::{PgError, PostgresStore, transaction};
use crate::clock::Millis;
use crate::history::attempts::{self, Settled};
use crate::history::{HistoryEvent, InstanceId, Pos, RetryPolicy};
use crate::store::{ActivityWork, CompleteOutcome, Fired};
use crate::store::{StoreError, WorkStore};
use async_trait::async_trait;

/// The trace context of an activity `a`'s instance: its run's `started` event's.
pub(super) const TRACE: &str = "(SELECT h.event::jsonb ->> 'trace' FROM history h WHERE h.instance_id = a.instance_id AND h.seq = 0)";

/// An activity row (`instance_id, pos, name, input, attempt, digest, trace, orchestration`).
pub(super) fn activity(r: &tokio_postgres::Row) -> Result<ActivityWork, StoreError> {
    Ok(ActivityWork {
        instance: instance_id(r, 0)?,
        pos: r.get::<_, i64>(1) as Pos,
        name: r.get(2),
        input: r.get(3),
        attempt: r.get::<_, i64>(4) as u32,
        digest: r.get::<_, &str>(5).parse().map_err(corrupt)?,
        trace: r.get(6),
        orchestration: r.get(7),
    })
}

#[async_trait]
impl WorkStore for PostgresStore {
    async fn complete_activity(
        &self,
        id: InstanceId,
        pos: Pos,
        result: Result<String, String>,
        now: Millis,
    ) -> Result<CompleteOutcome, StoreError> {
        let p = pos as i64;
        transaction!(self, |tx| {
            match lock_instance(&tx, &id).await? {
                Some(s) if !s.is_terminal() => {}
                _ => return Ok(CompleteOutcome::Ignored),
            }
            let row = query_opt(
                &tx,
                "SELECT attempt, retry, claimed_by FROM activities
                 WHERE instance_id = $1 AND pos = $2",
                &[&id.as_str(), &p],
            )
            .await?;
            let Some(row) = row else {
                return Ok(CompleteOutcome::Ignored);
            };
            // Claimed by another node since (this node's lease ran out): its result counts.
            if row
                .get::<_, Option<&str>>(2)
                .is_some_and(|n| n != self.node)
            {
                return Err(StoreError::Fenced(id.clone()).into());
            }
            let attempt = row.get::<_, i64>(0) as u32;
            let policy: Option<RetryPolicy> = row
                .get::<_, Option<&str>>(1)
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("retry policy: {e}")))?;
            match attempts::settle(pos, attempt, policy.as_ref(), result.clone(), now) {
                Settled::Retry { at, event } => {
                    exec(
                        &tx,
                        "UPDATE activities SET attempt = attempt + 1
                         WHERE instance_id = $1 AND pos = $2",
                        &[&id.as_str(), &p],
                    )
                    .await?;
                    exec(
                        &tx,
                        "INSERT INTO timers (instance_id, pos, fire_at, kind)
                         VALUES ($1, $2, $3, 'retry')
                         ON CONFLICT (instance_id, pos)
                         DO UPDATE SET fire_at = excluded.fire_at, kind = excluded.kind",
                        &[&id.as_str(), &p, &(at as i64)],
                    )
                    .await?;
                    append_events(&tx, &id, &[event], now).await?;
                    Ok(CompleteOutcome::Retrying(at))
                }
                Settled::Record(event) => {
                    exec(
                        &tx,
                        "DELETE FROM activities WHERE instance_id = $1 AND pos = $2",
                        &[&id.as_str(), &p],
                    )
                    .await?;
                    append_events(&tx, &id, &[event], now).await?;
                    Ok(CompleteOutcome::Recorded)
                }
            }
        })
    }

    async fn fire_due_timers(&self, now: Millis) -> Result<Fired, StoreError> {
        transaction!(self, |tx| {
            let mut due = query(
                &tx,
                "DELETE FROM timers WHERE (instance_id, pos) IN (
                     SELECT instance_id, pos FROM timers WHERE fire_at <= $1
                     FOR UPDATE SKIP LOCKED)
                 RETURNING instance_id, pos, kind, fire_at",
                &[&(now as i64)],
            )
            .await?
            .iter()
            .map(|r| {
                let id = instance_id(r, 0)?;
                let at: i64 = r.get(3);
                Ok((at, id, r.get::<_, i64>(1), r.get::<_, String>(2)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            due.sort_by(|a, b| (a.0, a.1.as_str(), a.2).cmp(&(b.0, b.1.as_str(), b.2)));
            let mut fired = Fired::default();
            let mut woken = std::collections::HashSet::new();
            for (_, id, pos, kind) in due {
                if kind == "retry" {
                    // The next attempt runs on whichever node claims it.
                    exec(
                        &tx,
                        "UPDATE activities SET claimed_by = NULL WHERE instance_id = $1 AND pos = $2",
                        &[&id.as_str(), &pos],
                    )
                    .await?;
                    let work = query_opt(
                        &tx,
                        &format!(
                            "SELECT a.instance_id, a.pos, a.name, a.input, a.attempt, i.digest, {TRACE}, i.name
                             FROM activities a JOIN instances i ON i.id = a.instance_id
                             WHERE a.instance_id = $1 AND a.pos = $2"
                        ),
                        &[&id.as_str(), &pos],
                    )
                    .await?;
                    if let Some(work) = work {
                        fired.retries.push(activity(&work)?);
                    }
                    continue;
                }
                match lock_instance(&tx, &id).await? {
                    Some(s) if !s.is_terminal() => {}
                    _ => continue,
                }
                let event = HistoryEvent::TimerFired { handle: pos as Pos };
                append_events(&tx, &id, &[event], now).await?;
                if woken.insert(id.clone()) {
                    fired.woken.push(id);
                }
            }
            Ok(fired)
        })
    }

    async fn pending_activities(&self) -> Result<Vec<ActivityWork>, StoreError> {
        let rows = self
            .rows(
                &format!(
                    "SELECT a.instance_id, a.pos, a.name, a.input, a.attempt, i.digest, {TRACE}, i.name
                     FROM activities a JOIN instances i ON i.id = a.instance_id
                     WHERE NOT EXISTS (SELECT 1 FROM timers t
                                       WHERE t.instance_id = a.instance_id AND t.pos = a.pos)
                     ORDER BY a.instance_id, a.pos"
                ),
                &[],
            )
            .await?;
        rows.iter().map(activity).collect()
    }

    async fn next_timer_due(&self) -> Result<Option<Millis>, StoreError> {
        let row = self.row("SELECT min(fire_at) FROM timers", &[]).await?;
        Ok(row
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .map(|at| at as Millis))
    }
}
