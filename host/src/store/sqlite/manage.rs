//! Operator operations: suspend and resume, listing with filters and paging, purging by
//! filter, and server secrets.

use super::SqliteStore;
use super::rows::{RawInstance, finish_instance, read_instance};
use crate::clock::Millis;
use crate::history::{HistoryEvent, InstanceId, RuntimeStatus};
use crate::store::{ChangeOutcome, Filter, InstanceCount, InstanceRow, PageToken};
use crate::store::{ManageStore, StoreError};
use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, params, params_from_iter};

/// The WHERE clause of a filter (starting with `WHERE 1`) and its parameters.
fn where_clause(filter: &Filter) -> (String, Vec<SqlValue>) {
    let mut sql = String::from("WHERE 1");
    let mut params = Vec::new();
    if !filter.statuses.is_empty() {
        let marks = vec!["?"; filter.statuses.len()].join(", ");
        sql.push_str(&format!(" AND status IN ({marks})"));
        params.extend(
            filter
                .statuses
                .iter()
                .map(|s| SqlValue::Text(s.as_str().into())),
        );
    }
    if let Some(name) = &filter.name {
        sql.push_str(" AND name = ?");
        params.push(SqlValue::Text(name.clone()));
    }
    if let Some(from) = filter.created_from {
        sql.push_str(" AND created_at >= ?");
        params.push(SqlValue::Integer(from as i64));
    }
    if let Some(to) = filter.created_to {
        sql.push_str(" AND created_at < ?");
        params.push(SqlValue::Integer(to as i64));
    }
    (sql, params)
}

#[async_trait]
impl ManageStore for SqliteStore {
    /// Suspends (`true`) or resumes (`false`) an instance.
    async fn set_suspended(
        &self,
        id: InstanceId,
        suspend: bool,
        reason: String,
        now: Millis,
    ) -> Result<ChangeOutcome, StoreError> {
        self.write(move |c| {
            let status: Option<String> = c
                .query_row(
                    "SELECT status FROM instances WHERE id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(status) = status else {
                return Ok(ChangeOutcome::NotFound);
            };
            let status = RuntimeStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown status '{status}'")))?;
            if status.is_terminal() {
                return Ok(ChangeOutcome::Finished(status));
            }
            if (status == RuntimeStatus::Suspended) == suspend {
                return Ok(ChangeOutcome::Unchanged);
            }
            let (event, new_status) = if suspend {
                (HistoryEvent::Suspended { reason }, RuntimeStatus::Suspended)
            } else {
                (HistoryEvent::Resumed { reason }, RuntimeStatus::Running)
            };
            super::rows::append_events(c, &id, &[event], now)?;
            c.execute(
                "UPDATE instances SET status = ?2 WHERE id = ?1",
                params![id.as_str(), new_status.as_str()],
            )?;
            Ok(ChangeOutcome::Changed)
        })
        .await
    }

    /// Instances matching `filter`, oldest first, at most `limit`, starting after `after`;
    /// and the token of the next page if there may be one.
    async fn list(
        &self,
        filter: Filter,
        after: Option<PageToken>,
        limit: usize,
    ) -> Result<(Vec<InstanceRow>, Option<PageToken>), StoreError> {
        self.read(move |c| {
            let (mut sql, mut params) = where_clause(&filter);
            if let Some(after) = &after {
                sql.push_str(" AND (created_at, id) > (?, ?)");
                params.push(SqlValue::Integer(after.created_at as i64));
                params.push(SqlValue::Text(after.id.to_string()));
            }
            let query = format!(
                "SELECT id, name, digest, status, input, output, failure, custom_status,
                        created_at, updated_at
                 FROM instances {sql} ORDER BY created_at, id LIMIT {}",
                limit + 1
            );
            let mut q = c.prepare(&query)?;
            let raw: Vec<RawInstance> = q
                .query_map(params_from_iter(params), read_instance)?
                .collect::<Result<_, _>>()?;
            let rows = raw
                .into_iter()
                .map(finish_instance)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(PageToken::page(rows, limit))
        })
        .await
    }

    /// Deletes the ended instances matching `filter`, with their histories and their ended
    /// sub-orchestrations; how many instances in all.
    async fn purge_where(&self, filter: Filter) -> Result<usize, StoreError> {
        self.write(move |c| {
            let (sql, params) = where_clause(&filter);
            let ended = "AND status IN ('Completed', 'Failed', 'Terminated', 'ContinuedAsNew')";
            let ids: Vec<String> = {
                let mut q = c.prepare(&format!("SELECT id FROM instances {sql} {ended}"))?;
                q.query_map(params_from_iter(params), |r| r.get(0))?
                    .collect::<Result<_, _>>()?
            };
            let mut deleted = 0;
            for id in ids {
                let id: InstanceId = id
                    .parse()
                    .map_err(|e: crate::history::InvalidId| StoreError::Corrupt(e.to_string()))?;
                // Purged already as another match's sub-orchestration, or not.
                deleted += super::instances::purge_with_children(c, &id)?;
            }
            Ok(deleted)
        })
        .await
    }

    async fn instance_counts(&self, filter: Filter) -> Result<Vec<InstanceCount>, StoreError> {
        self.read(move |c| {
            let (sql, params) = where_clause(&filter);
            let mut q = c.prepare(&format!(
                "SELECT status, digest, COUNT(*) FROM instances {sql}
                 GROUP BY status, digest ORDER BY status, digest"
            ))?;
            let raw: Vec<(String, String, i64)> = q
                .query_map(params_from_iter(params), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            raw.into_iter()
                .map(|(status, digest, n)| {
                    Ok(InstanceCount {
                        status: RuntimeStatus::parse(&status).ok_or_else(|| {
                            StoreError::Corrupt(format!("unknown status '{status}'"))
                        })?,
                        digest: digest.parse().map_err(|e: crate::history::InvalidId| {
                            StoreError::Corrupt(e.to_string())
                        })?,
                        count: n as u64,
                    })
                })
                .collect()
        })
        .await
    }

    /// The manual clock's time: the stored one, moved forward to `at_least` if that is later
    /// (a first start stores `at_least`). The clock never moves back, also across restarts.
    async fn manual_clock(&self, at_least: Millis) -> Result<Millis, StoreError> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO manual_clock (id, now) VALUES (0, ?1)
                 ON CONFLICT (id) DO UPDATE SET now = max(now, excluded.now)",
                [at_least as i64],
            )?;
            let now: i64 = c.query_row("SELECT now FROM manual_clock WHERE id = 0", [], |r| {
                r.get(0)
            })?;
            Ok(now as Millis)
        })
        .await
    }

    /// Moves the stored manual clock forward by `by` milliseconds from the later of its stored
    /// time and `from`; the new time, durable when this returns.
    async fn advance_manual_clock(&self, from: Millis, by: Millis) -> Result<Millis, StoreError> {
        self.write(move |c| {
            let now: i64 = c.query_row(
                "INSERT INTO manual_clock (id, now) VALUES (0, ?1 + ?2)
                 ON CONFLICT (id) DO UPDATE SET now = max(now, ?1) + ?2
                 RETURNING now",
                [from as i64, by as i64],
                |r| r.get(0),
            )?;
            Ok(now as Millis)
        })
        .await
    }

    /// A server secret by name: created (from `fresh`) on first use, the same ever after.
    async fn secret(&self, name: &str, fresh: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let name = name.to_string();
        self.write(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO secrets (name, value) VALUES (?1, ?2)",
                params![name, fresh],
            )?;
            Ok(
                c.query_row("SELECT value FROM secrets WHERE name = ?1", [&name], |r| {
                    r.get(0)
                })?,
            )
        })
        .await
    }

    /// The readiness probe: a read, then a write through the writer (one row of its own in
    /// `secrets`, rewritten each time) that must commit.
    async fn probe(&self) -> Result<(), StoreError> {
        self.read(|c| Ok(c.query_row("SELECT count(*) FROM secrets", [], |r| r.get::<_, i64>(0))?))
            .await?;
        self.write(|c| {
            c.execute(
                "INSERT INTO secrets (name, value) VALUES ('readiness-probe', randomblob(8))
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [],
            )?;
            Ok(())
        })
        .await
    }
}
