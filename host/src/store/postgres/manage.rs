//! Operator operations: suspend and resume, listing with filters and paging, purging by
//! filter, the manual clock, server secrets and the readiness probe.

use super::rows::{INSTANCE_COLUMNS, append_events, exec, instance_id, instance_row};
use super::rows::{corrupt, lock_instance, parse_status, query, query_opt};
use super::{PgError, PostgresStore, transaction};
use crate::clock::Millis;
use crate::history::{HistoryEvent, InstanceId, RuntimeStatus};
use crate::store::{ChangeOutcome, Filter, InstanceCount, InstanceRow, PageToken};
use crate::store::{ManageStore, StoreError};
use async_trait::async_trait;
use tokio_postgres::types::ToSql;

/// A filter's parameters, in the order [`WHERE`] numbers them.
struct FilterParams {
    statuses: Option<Vec<String>>,
    name: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
}

/// The WHERE clause of a filter: `$1..$4` are [`FilterParams`]; NULL matches everything.
const WHERE: &str = "WHERE ($1::TEXT[] IS NULL OR status = ANY($1))
      AND ($2::TEXT IS NULL OR name = $2)
      AND ($3::BIGINT IS NULL OR created_at >= $3)
      AND ($4::BIGINT IS NULL OR created_at < $4)";

impl FilterParams {
    fn of(filter: &Filter) -> Self {
        Self {
            statuses: (!filter.statuses.is_empty())
                .then(|| filter.statuses.iter().map(|s| s.as_str().into()).collect()),
            name: filter.name.clone(),
            from: filter.created_from.map(|t| t as i64),
            to: filter.created_to.map(|t| t as i64),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 4] {
        [&self.statuses, &self.name, &self.from, &self.to]
    }
}

#[async_trait]
impl ManageStore for PostgresStore {
    async fn set_suspended(
        &self,
        id: InstanceId,
        suspend: bool,
        reason: String,
        now: Millis,
    ) -> Result<ChangeOutcome, StoreError> {
        transaction!(self, |tx| {
            let Some(status) = lock_instance(&tx, &id).await? else {
                return Ok(ChangeOutcome::NotFound);
            };
            if status.is_terminal() {
                return Ok(ChangeOutcome::Finished(status));
            }
            if (status == RuntimeStatus::Suspended) == suspend {
                return Ok(ChangeOutcome::Unchanged);
            }
            let reason = reason.clone();
            let (event, new_status) = if suspend {
                (HistoryEvent::Suspended { reason }, RuntimeStatus::Suspended)
            } else {
                (HistoryEvent::Resumed { reason }, RuntimeStatus::Running)
            };
            append_events(&tx, &id, &[event], now).await?;
            exec(
                &tx,
                "UPDATE instances SET status = $2 WHERE id = $1",
                &[&id.as_str(), &new_status.as_str()],
            )
            .await?;
            Ok(ChangeOutcome::Changed)
        })
    }

    async fn list(
        &self,
        filter: Filter,
        after: Option<PageToken>,
        limit: usize,
    ) -> Result<(Vec<InstanceRow>, Option<PageToken>), StoreError> {
        let f = FilterParams::of(&filter);
        let (after_at, after_id) = after
            .map(|a| (a.created_at as i64, a.id.to_string()))
            .unzip();
        let [statuses, name, from, to] = f.params();
        let params: [&(dyn ToSql + Sync); 7] = [
            statuses,
            name,
            from,
            to,
            &after_at,
            &after_id,
            &(limit as i64 + 1),
        ];
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances {WHERE}
               AND ($5::BIGINT IS NULL OR (created_at, id) > ($5, $6::TEXT))
             ORDER BY created_at, id LIMIT $7"
        );
        let rows = self
            .rows(&sql, &params)
            .await?
            .iter()
            .map(instance_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PageToken::page(rows, limit))
    }

    async fn purge_where(&self, filter: Filter) -> Result<usize, StoreError> {
        let f = FilterParams::of(&filter);
        let sql = format!(
            "SELECT id FROM instances {WHERE}
               AND status IN ('Completed', 'Failed', 'Terminated', 'ContinuedAsNew')
             ORDER BY id FOR UPDATE"
        );
        transaction!(self, |tx| {
            let ids = query(&tx, &sql, &f.params()).await?;
            let mut deleted = 0;
            for row in &ids {
                // Purged already as another match's sub-orchestration, or not.
                let id = instance_id(row, 0)?;
                deleted += super::instances::purge_with_children(&tx, &id).await?;
            }
            Ok(deleted)
        })
    }

    async fn instance_counts(&self, filter: Filter) -> Result<Vec<InstanceCount>, StoreError> {
        let f = FilterParams::of(&filter);
        let sql = format!(
            "SELECT status, digest, COUNT(*) FROM instances {WHERE}
             GROUP BY status, digest ORDER BY status, digest"
        );
        self.rows(&sql, &f.params())
            .await?
            .iter()
            .map(|r| {
                Ok(InstanceCount {
                    status: parse_status(r.get(0))?,
                    digest: r.get::<_, &str>(1).parse().map_err(corrupt)?,
                    count: r.get::<_, i64>(2) as u64,
                })
            })
            .collect()
    }

    async fn manual_clock(&self, at_least: Millis) -> Result<Millis, StoreError> {
        transaction!(self, |tx| {
            let row = query_opt(
                &tx,
                "INSERT INTO manual_clock (id, now) VALUES (0, $1)
                 ON CONFLICT (id) DO UPDATE SET now = greatest(manual_clock.now, excluded.now)
                 RETURNING now",
                &[&(at_least as i64)],
            )
            .await?;
            Ok(row
                .map(|r| r.get::<_, i64>(0) as Millis)
                .unwrap_or(at_least))
        })
    }

    async fn advance_manual_clock(&self, from: Millis, by: Millis) -> Result<Millis, StoreError> {
        transaction!(self, |tx| {
            let row = query_opt(
                &tx,
                "INSERT INTO manual_clock (id, now) VALUES (0, $1::BIGINT + $2::BIGINT)
                 ON CONFLICT (id) DO UPDATE SET now = greatest(manual_clock.now, $1::BIGINT) + $2::BIGINT
                 RETURNING now",
                &[&(from as i64), &(by as i64)],
            )
            .await?;
            Ok(row
                .map(|r| r.get::<_, i64>(0) as Millis)
                .unwrap_or(from + by))
        })
    }

    async fn secret(&self, name: &str, fresh: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        transaction!(self, |tx| {
            exec(
                &tx,
                "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &fresh],
            )
            .await?;
            let row = query_opt(&tx, "SELECT value FROM secrets WHERE name = $1", &[&name])
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("secret {name} is missing")))?;
            Ok(row.get::<_, Vec<u8>>(0))
        })
    }

    async fn probe(&self) -> Result<(), StoreError> {
        self.row("SELECT count(*) FROM secrets", &[]).await?;
        transaction!(self, |tx| {
            exec(
                &tx,
                "INSERT INTO secrets (name, value) VALUES ('readiness-probe', convert_to(gen_random_uuid()::TEXT, 'UTF8'))
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[],
            )
            .await?;
            Ok(())
        })
    }
}
