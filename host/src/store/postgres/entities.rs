//! Entities: their state, the inbox of operations sent and not yet applied, and the log of
//! operations applied.
//!
//! Sending an operation inserts it into the inbox (in the sender's own transaction, for an
//! orchestration). Applying one deletes it from the inbox (`DELETE … RETURNING`: of two
//! workers applying it, one gets it), stores the entity's new state, appends the log entry
//! and, for a call, records the output in the caller's history, all in one transaction.

use super::rows::{Params, append_events, exec, lock_instance, query_opt};
use super::{PgError, PostgresStore, transaction};
use crate::clock::Millis;
use crate::history::{InstanceId, Pos, ending};
use crate::store::{AppliedOp, EntityKey, EntityOp, EntityRow, LoggedOp, NextOp};
use crate::store::{EntityStore, StoreError};
use async_trait::async_trait;
use deadpool_postgres::Transaction;

/// Puts an operation into the inbox of its entity; `source` is the sending instance and its
/// run (generation).
pub(super) async fn enqueue(
    tx: &Transaction<'_>,
    op: &EntityOp,
    source: Option<(&InstanceId, i64)>,
    now: Millis,
) -> Result<(), PgError> {
    exec(
        tx,
        "INSERT INTO entity_inbox (name, key, operation, input, source_id, source_generation,
                                   reply_pos, sent_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &op.entity.name,
            &op.entity.key,
            &op.operation,
            &op.input,
            &source.map(|(id, _)| id.as_str()),
            &source.map(|(_, g)| g),
            &op.reply.map(|p| p as i64),
            &(now as i64),
        ],
    )
    .await?;
    Ok(())
}

/// Records an entity call's result in the caller's history, if the caller's run that made the
/// call is still going; the caller to wake.
async fn reply(
    tx: &Transaction<'_>,
    caller: &str,
    generation: i64,
    handle: Pos,
    result: Result<String, String>,
    now: Millis,
) -> Result<Option<InstanceId>, PgError> {
    let id: InstanceId = caller.parse().map_err(super::rows::corrupt)?;
    let caller_now = match lock_instance(tx, &id).await? {
        None => None,
        Some(status) => {
            let row = query_opt(
                tx,
                "SELECT generation FROM instances WHERE id = $1",
                &[&id.as_str()],
            )
            .await?;
            row.map(|r| ending::Caller {
                status,
                generation: r.get::<_, i64>(0) as u32,
            })
        }
    };
    let Some(event) = ending::entity_reply(caller_now, generation as u32, handle, result) else {
        return Ok(None);
    };
    append_events(tx, &id, &[event], now).await?;
    Ok(Some(id))
}

/// Waits until no other transaction writes `entity`'s state, and keeps others from it until
/// this one ends.
async fn lock_entity(tx: &Transaction<'_>, entity: &EntityKey) -> Result<(), PgError> {
    exec(
        tx,
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))",
        &key(entity),
    )
    .await?;
    Ok(())
}

/// The (name, key) parameters of an entity.
fn key(entity: &EntityKey) -> [&(dyn tokio_postgres::types::ToSql + Sync); 2] {
    [&entity.name, &entity.key]
}

#[async_trait]
impl EntityStore for PostgresStore {
    async fn signal_entity(&self, op: EntityOp, now: Millis) -> Result<(), StoreError> {
        transaction!(self, |tx| { enqueue(&tx, &op, None, now).await })
    }

    async fn next_entity_op(&self, entity: EntityKey) -> Result<Option<NextOp>, StoreError> {
        let op = self
            .row(
                "SELECT i.id, i.operation, i.input, e.state, coalesce(e.operations, 0)
                 FROM entity_inbox i LEFT JOIN entities e ON e.name = i.name AND e.key = i.key
                 WHERE i.name = $1 AND i.key = $2 ORDER BY i.id LIMIT 1",
                &key(&entity),
            )
            .await?;
        Ok(op.map(|r| NextOp {
            id: r.get(0),
            operation: r.get(1),
            input: r.get(2),
            state: r.get(3),
            version: r.get::<_, i64>(4) as u64,
        }))
    }

    async fn finish_entity_op(
        &self,
        entity: EntityKey,
        id: i64,
        version: u64,
        applied: AppliedOp,
        now: Millis,
    ) -> Result<Option<InstanceId>, StoreError> {
        transaction!(self, |tx| {
            // One finisher per entity at a time, cluster-wide, and only on the state the
            // operation was applied to: two nodes may each have read the oldest operation
            // they saw (one sent in a transaction that committed late has a lower id).
            lock_entity(&tx, &entity).await?;
            let (name, key) = (&entity.name, &entity.key);
            let at = query_opt(
                &tx,
                "SELECT operations FROM entities WHERE name = $1 AND key = $2",
                &[name, key],
            )
            .await?
            .map_or(0, |r| r.get::<_, i64>(0));
            if at as u64 != version {
                return Ok(None);
            }
            let row = query_opt(
                &tx,
                "DELETE FROM entity_inbox WHERE id = $1
                 RETURNING operation, input, source_id, source_generation, reply_pos",
                &[&id],
            )
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let (operation, input): (String, String) = (row.get(0), row.get(1));
            let source: Option<String> = row.get(2);
            let (generation, reply_pos): (Option<i64>, Option<i64>) = (row.get(3), row.get(4));
            let logged = Logged {
                entity: &entity,
                operation: &operation,
                input: &input,
                source: source.as_deref(),
                now,
            };
            let result = match &applied {
                AppliedOp::Unknown(error) => Err(error.clone()),
                AppliedOp::Done { state, output } => {
                    log_op(&tx, &logged, Some(state.as_deref()), Ok(output)).await?;
                    Ok(output.clone())
                }
                AppliedOp::Failed(error) => {
                    log_op(&tx, &logged, None, Err(error)).await?;
                    Err(error.clone())
                }
            };
            match (source.as_deref(), generation, reply_pos) {
                (Some(caller), Some(generation), Some(handle)) => {
                    reply(&tx, caller, generation, handle as Pos, result, now).await
                }
                _ => Ok(None),
            }
        })
    }

    async fn entity(&self, entity: EntityKey) -> Result<Option<EntityRow>, StoreError> {
        let row = self
            .row(
                "SELECT e.state, e.operations, e.created_at, e.updated_at,
                        (SELECT count(*) FROM entity_inbox i WHERE i.name = $1 AND i.key = $2)
                 FROM (SELECT 1) AS one
                 LEFT JOIN entities e ON e.name = $1 AND e.key = $2",
                &key(&entity),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("no row for an entity lookup".into()))?;
        let pending: i64 = row.get(4);
        let operations: Option<i64> = row.get(1);
        if operations.is_none() && pending == 0 {
            return Ok(None);
        }
        Ok(Some(EntityRow {
            entity,
            state: row.get(0),
            operations: operations.unwrap_or(0) as u64,
            pending: pending as u64,
            created_at: row.get::<_, Option<i64>>(2).map(|t| t as Millis),
            updated_at: row.get::<_, Option<i64>>(3).map(|t| t as Millis),
        }))
    }

    async fn entity_log(
        &self,
        entity: EntityKey,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LoggedOp>, StoreError> {
        let rows = self
            .rows(
                "SELECT seq, applied_at, operation, input, output, error, source_id
                 FROM entity_log WHERE name = $1 AND key = $2 AND seq >= $3
                 ORDER BY seq LIMIT $4",
                &[&entity.name, &entity.key, &(from as i64), &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| LoggedOp {
                seq: r.get::<_, i64>(0) as u64,
                applied_at: r.get::<_, i64>(1) as Millis,
                operation: r.get(2),
                input: r.get(3),
                output: r.get(4),
                error: r.get(5),
                source: r.get(6),
            })
            .collect())
    }

    async fn list_entities(
        &self,
        name: Option<String>,
        after: Option<EntityKey>,
        limit: usize,
    ) -> Result<Vec<EntityRow>, StoreError> {
        let (after_name, after_key) = after.map(|k| (k.name, k.key)).unzip();
        let params: Params<'_> = &[&name, &after_name, &after_key, &(limit as i64)];
        let rows = self
            .rows(
                "WITH keys AS (
                     SELECT name, key FROM entities
                     WHERE ($1::TEXT IS NULL OR name = $1)
                       AND ($2::TEXT IS NULL OR (name, key) > ($2, $3::TEXT))
                     UNION
                     SELECT name, key FROM entity_inbox
                     WHERE ($1::TEXT IS NULL OR name = $1)
                       AND ($2::TEXT IS NULL OR (name, key) > ($2, $3::TEXT)))
                 SELECT k.name, k.key, e.state, coalesce(e.operations, 0), e.created_at,
                        e.updated_at,
                        (SELECT count(*) FROM entity_inbox i WHERE i.name = k.name AND i.key = k.key)
                 FROM keys k LEFT JOIN entities e ON e.name = k.name AND e.key = k.key
                 ORDER BY k.name, k.key LIMIT $4",
                params,
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| EntityRow {
                entity: EntityKey {
                    name: r.get(0),
                    key: r.get(1),
                },
                state: r.get(2),
                operations: r.get::<_, i64>(3) as u64,
                created_at: r.get::<_, Option<i64>>(4).map(|t| t as Millis),
                updated_at: r.get::<_, Option<i64>>(5).map(|t| t as Millis),
                pending: r.get::<_, i64>(6) as u64,
            })
            .collect())
    }

    async fn purge_entity(&self, entity: EntityKey) -> Result<(usize, usize), StoreError> {
        transaction!(self, |tx| {
            lock_entity(&tx, &entity).await?;
            let log = exec(
                &tx,
                "DELETE FROM entity_log WHERE name = $1 AND key = $2",
                &key(&entity),
            )
            .await?;
            let state = exec(
                &tx,
                "DELETE FROM entities WHERE name = $1 AND key = $2",
                &key(&entity),
            )
            .await?;
            Ok((state as usize, log as usize))
        })
    }

    async fn entities_with_work(&self) -> Result<Vec<EntityKey>, StoreError> {
        let rows = self
            .rows(
                "SELECT DISTINCT name, key FROM entity_inbox ORDER BY name, key",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| EntityKey {
                name: r.get(0),
                key: r.get(1),
            })
            .collect())
    }
}

/// An applied operation, for its log entry.
struct Logged<'a> {
    entity: &'a EntityKey,
    operation: &'a str,
    input: &'a str,
    source: Option<&'a str>,
    now: Millis,
}

/// Stores an applied operation: the entity's new state (`None`: unchanged, for a failure) and
/// the log entry, numbered by the entity's operation count.
async fn log_op(
    tx: &Transaction<'_>,
    op: &Logged<'_>,
    new_state: Option<Option<&str>>,
    result: Result<&String, &String>,
) -> Result<(), PgError> {
    let (name, key) = (&op.entity.name, &op.entity.key);
    let now = op.now as i64;
    let seq: i64 = match new_state {
        Some(state) => {
            query_opt(
                tx,
                "INSERT INTO entities (name, key, state, operations, created_at, updated_at)
             VALUES ($1, $2, $3, 1, $4, $4)
             ON CONFLICT (name, key) DO UPDATE
             SET state = $3, operations = entities.operations + 1, updated_at = $4
             RETURNING operations - 1",
                &[name, key, &state, &now],
            )
            .await?
        }
        None => {
            query_opt(
                tx,
                "INSERT INTO entities (name, key, state, operations, created_at, updated_at)
             VALUES ($1, $2, NULL, 1, $3, $3)
             ON CONFLICT (name, key) DO UPDATE
             SET operations = entities.operations + 1, updated_at = $3
             RETURNING operations - 1",
                &[name, key, &now],
            )
            .await?
        }
    }
    .map(|r| r.get(0))
    .unwrap_or_default();
    let (output, error) = match result {
        Ok(o) => (Some(o), None),
        Err(e) => (None, Some(e)),
    };
    exec(
        tx,
        "INSERT INTO entity_log (name, key, seq, applied_at, operation, input, output, error,
                                 source_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            name,
            key,
            &seq,
            &now,
            &op.operation,
            &op.input,
            &output,
            &error,
            &op.source,
        ],
    )
    .await?;
    Ok(())
}
