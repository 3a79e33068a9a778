//! Work: activities to run and their results (with retries), and timers that fire.

use super::SqliteStore;
use super::rows::{append_events, corrupt, exec, instance_status};
use crate::clock::Millis;
use crate::history::attempts::{self, Settled};
use crate::history::{HistoryEvent, InstanceId, Pos, RetryPolicy};
use crate::store::{ActivityWork, CompleteOutcome, Fired};
use crate::store::{StoreError, WorkStore};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

/// What an activity `a` of instance `i` is run from, in the order [`activity`] reads it; the
/// trace context is its run's `started` event's.
const ACTIVITY: &str = "a.instance_id, a.pos, a.name, a.input, a.attempt, i.digest,
    (SELECT json_extract(h.event, '$.trace') FROM history h
     WHERE h.instance_id = a.instance_id AND h.seq = 0), i.name";

/// An activity row, selected as [`ACTIVITY`].
fn activity(r: &rusqlite::Row) -> Result<ActivityWork, StoreError> {
    Ok(ActivityWork {
        instance: r.get::<_, String>(0)?.parse().map_err(corrupt)?,
        pos: r.get(1)?,
        name: r.get(2)?,
        input: r.get(3)?,
        attempt: r.get(4)?,
        digest: r.get::<_, String>(5)?.parse().map_err(corrupt)?,
        trace: r.get(6)?,
        orchestration: r.get(7)?,
    })
}

#[async_trait]
impl WorkStore for SqliteStore {
    /// Records an activity's result, once. A failed attempt of an activity with a retry policy
    /// is recorded as such and a retry timer armed instead, while the policy allows.
    async fn complete_activity(
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
            let policy: Option<RetryPolicy> = retry
                .map(|r| serde_json::from_str(&r))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("retry policy: {e}")))?;
            match attempts::settle(pos, attempt, policy.as_ref(), result, now) {
                Settled::Retry { at, event } => {
                    exec(c,
                        "UPDATE activities SET attempt = attempt + 1 WHERE instance_id = ?1 AND pos = ?2",
                        params![id.as_str(), pos],
                    )?;
                    exec(c,
                        "INSERT OR REPLACE INTO timers (instance_id, pos, fire_at, kind)
                         VALUES (?1, ?2, ?3, 'retry')",
                        params![id.as_str(), pos, at as i64],
                    )?;
                    append_events(c, &id, &[event], now)?;
                    Ok(CompleteOutcome::Retrying(at))
                }
                Settled::Record(event) => {
                    exec(c,
                        "DELETE FROM activities WHERE instance_id = ?1 AND pos = ?2",
                        params![id.as_str(), pos],
                    )?;
                    append_events(c, &id, &[event], now)?;
                    Ok(CompleteOutcome::Recorded)
                }
            }
        })
        .await
    }

    /// Fires every timer due at `now`: an orchestration's timer gets `timer_fired`; an
    /// activity's retry timer hands the activity back to run again. Each fires once.
    async fn fire_due_timers(&self, now: Millis) -> Result<Fired, StoreError> {
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
            let mut woken = std::collections::HashSet::new();
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
                            &format!(
                                "SELECT {ACTIVITY}
                                 FROM activities a JOIN instances i ON i.id = a.instance_id
                                 WHERE a.instance_id = ?1 AND a.pos = ?2"
                            ),
                            params![id.as_str(), pos],
                            |r| Ok(activity(r)),
                        )
                        .optional()?
                        .transpose()?;
                    fired.retries.extend(work);
                    continue;
                }
                append_events(c, &id, &[HistoryEvent::TimerFired { handle: pos }], now)?;
                if woken.insert(id.clone()) {
                    fired.woken.push(id);
                }
            }
            Ok(fired)
        })
        .await
    }

    /// Activities scheduled, not recorded as completed and not waiting for a retry (to run
    /// again after a restart).
    async fn pending_activities(&self) -> Result<Vec<ActivityWork>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare(&format!(
                "SELECT {ACTIVITY}
                 FROM activities a JOIN instances i ON i.id = a.instance_id
                 WHERE NOT EXISTS (SELECT 1 FROM timers t
                                   WHERE t.instance_id = a.instance_id AND t.pos = a.pos)"
            ))?;
            let mut rows = q.query([])?;
            let mut pending = Vec::new();
            while let Some(r) = rows.next()? {
                pending.push(activity(r)?);
            }
            Ok(pending)
        })
        .await
    }

    /// When the next timer is due, if any is armed.
    async fn next_timer_due(&self) -> Result<Option<Millis>, StoreError> {
        self.read(|c| {
            let at: Option<i64> =
                c.query_row("SELECT min(fire_at) FROM timers", [], |r| r.get(0))?;
            Ok(at.map(|a| a as Millis))
        })
        .await
    }
}
