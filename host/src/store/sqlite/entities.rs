//! Entities: their state, the inbox of operations sent and not yet applied, and the log of
//! operations applied.
//!
//! Sending an operation inserts it into the inbox (in the sender's own transaction, for an
//! orchestration). Applying one deletes it from the inbox, stores the entity's new state,
//! appends the log entry and, for a call, records the output in the caller's history, all in
//! one transaction: an operation is applied once, and none is lost, whenever the host dies.

use super::SqliteStore;
use super::rows::{append_events, corrupt, exec, parse_status};
use crate::clock::Millis;
use crate::history::{InstanceId, Pos, ending};
use crate::store::{AppliedOp, EntityKey, EntityOp, EntityRow, LoggedOp, NextOp};
use crate::store::{EntityStore, StoreError};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

/// Puts an operation into the inbox of its entity; `source` is the sending instance and its
/// run (generation).
pub(super) fn enqueue(
    c: &Connection,
    op: &EntityOp,
    source: Option<(&InstanceId, u32)>,
    now: Millis,
) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO entity_inbox (name, key, operation, input, source_id, source_generation,
                                   reply_pos, sent_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            op.entity.name,
            op.entity.key,
            op.operation,
            op.input,
            source.map(|(id, _)| id.as_str()),
            source.map(|(_, g)| g),
            op.reply,
            now as i64
        ],
    )?;
    Ok(())
}

/// Records an entity call's result in the caller's history, if the caller's run that made the
/// call is still going; the caller to wake.
fn reply(
    c: &Connection,
    caller: &str,
    generation: u32,
    handle: Pos,
    result: Result<String, String>,
    now: Millis,
) -> Result<Option<InstanceId>, StoreError> {
    let row: Option<(String, u32)> = c
        .prepare_cached("SELECT status, generation FROM instances WHERE id = ?1")?
        .query_row([caller], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let caller_now = row
        .map(|(status, generation)| {
            Ok::<_, StoreError>(ending::Caller {
                status: parse_status(&status)?,
                generation,
            })
        })
        .transpose()?;
    let Some(event) = ending::entity_reply(caller_now, generation, handle, result) else {
        return Ok(None);
    };
    let id: InstanceId = caller.parse().map_err(corrupt)?;
    append_events(c, &id, &[event], now)?;
    Ok(Some(id))
}

#[async_trait]
impl EntityStore for SqliteStore {
    /// Sends an operation to an entity from outside any instance (durable on return).
    async fn signal_entity(&self, op: EntityOp, now: Millis) -> Result<(), StoreError> {
        self.write(move |c| enqueue(c, &op, None, now)).await
    }

    /// The oldest operation waiting for `entity`, if any, with the entity's current state.
    async fn next_entity_op(&self, entity: EntityKey) -> Result<Option<NextOp>, StoreError> {
        self.read(move |c| {
            let op = c
                .prepare_cached(
                    "SELECT id, operation, input FROM entity_inbox
                     WHERE name = ?1 AND key = ?2 ORDER BY id LIMIT 1",
                )?
                .query_row(params![entity.name, entity.key], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            let Some((id, operation, input)) = op else {
                return Ok(None);
            };
            let (state, version) = c
                .prepare_cached(
                    "SELECT state, operations FROM entities WHERE name = ?1 AND key = ?2",
                )?
                .query_row(params![entity.name, entity.key], |r| {
                    Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()?
                .unwrap_or((None, 0));
            Ok(Some(NextOp {
                id,
                operation,
                input,
                state,
                version: version as u64,
            }))
        })
        .await
    }

    /// Stores what applying inbox operation `id` of `entity` to the state of `version`
    /// produced, and takes it out of the inbox, in one transaction; for a call, the caller to
    /// wake. Nothing is written if the operation is no longer in the inbox (it was applied
    /// already) or the entity moved on from `version`.
    async fn finish_entity_op(
        &self,
        entity: EntityKey,
        id: i64,
        version: u64,
        applied: AppliedOp,
        now: Millis,
    ) -> Result<Option<InstanceId>, StoreError> {
        self.write(move |c| {
            let now_at: i64 = c
                .prepare_cached("SELECT operations FROM entities WHERE name = ?1 AND key = ?2")?
                .query_row(params![entity.name, entity.key], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            if now_at as u64 != version {
                return Ok(None);
            }
            type Inbox = (String, String, Option<String>, Option<u32>, Option<Pos>);
            let row: Option<Inbox> = c
                .prepare_cached(
                    "SELECT operation, input, source_id, source_generation, reply_pos
                     FROM entity_inbox WHERE id = ?1",
                )?
                .query_row([id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()?;
            let Some((operation, input, source, generation, reply_pos)) = row else {
                return Ok(None);
            };
            exec(c, "DELETE FROM entity_inbox WHERE id = ?1", [id])?;
            let result = match applied {
                AppliedOp::Unknown(error) => Err(error),
                AppliedOp::Done { state, output } => {
                    log_op(
                        c,
                        &entity,
                        Some(state),
                        &operation,
                        &input,
                        Ok(&output),
                        source.as_deref(),
                        now,
                    )?;
                    Ok(output)
                }
                AppliedOp::Failed(error) => {
                    log_op(
                        c,
                        &entity,
                        None,
                        &operation,
                        &input,
                        Err(&error),
                        source.as_deref(),
                        now,
                    )?;
                    Err(error)
                }
            };
            match (source, generation, reply_pos) {
                (Some(caller), Some(generation), Some(handle)) => {
                    reply(c, &caller, generation, handle, result, now)
                }
                _ => Ok(None),
            }
        })
        .await
    }

    /// An entity: its state and counts. `None` if it has neither state nor waiting operations.
    async fn entity(&self, entity: EntityKey) -> Result<Option<EntityRow>, StoreError> {
        self.read(move |c| {
            let row: Option<(Option<String>, i64, i64, i64)> = c
                .prepare_cached(
                    "SELECT state, operations, created_at, updated_at FROM entities
                     WHERE name = ?1 AND key = ?2",
                )?
                .query_row(params![entity.name, entity.key], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()?;
            let pending: i64 = c
                .prepare_cached("SELECT count(*) FROM entity_inbox WHERE name = ?1 AND key = ?2")?
                .query_row(params![entity.name, entity.key], |r| r.get(0))?;
            if row.is_none() && pending == 0 {
                return Ok(None);
            }
            let (state, operations, created, updated) = match row {
                Some((s, o, c, u)) => (s, o as u64, Some(c as Millis), Some(u as Millis)),
                None => (None, 0, None, None),
            };
            Ok(Some(EntityRow {
                entity,
                state,
                operations,
                pending: pending as u64,
                created_at: created,
                updated_at: updated,
            }))
        })
        .await
    }

    /// An entity's applied operations from `from` on, oldest first, at most `limit`.
    async fn entity_log(
        &self,
        entity: EntityKey,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LoggedOp>, StoreError> {
        self.read(move |c| {
            let mut q = c.prepare_cached(
                "SELECT seq, applied_at, operation, input, output, error, source_id
                 FROM entity_log WHERE name = ?1 AND key = ?2 AND seq >= ?3
                 ORDER BY seq LIMIT ?4",
            )?;
            let rows = q
                .query_map(
                    params![entity.name, entity.key, from as i64, limit as i64],
                    |r| {
                        Ok(LoggedOp {
                            seq: r.get::<_, i64>(0)? as u64,
                            applied_at: r.get::<_, i64>(1)? as Millis,
                            operation: r.get(2)?,
                            input: r.get(3)?,
                            output: r.get(4)?,
                            error: r.get(5)?,
                            source: r.get(6)?,
                        })
                    },
                )?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Entities with state or waiting operations (of one name, if given) in (name, key) order,
    /// after `after`, at most `limit`.
    async fn list_entities(
        &self,
        name: Option<String>,
        after: Option<EntityKey>,
        limit: usize,
    ) -> Result<Vec<EntityRow>, StoreError> {
        self.read(move |c| {
            let (after_name, after_key) = after.map(|k| (k.name, k.key)).unzip();
            let mut q = c.prepare_cached(
                "WITH keys AS (
                     SELECT name, key FROM entities
                     WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR (name, key) > (?2, ?3))
                     UNION
                     SELECT name, key FROM entity_inbox
                     WHERE (?1 IS NULL OR name = ?1) AND (?2 IS NULL OR (name, key) > (?2, ?3)))
                 SELECT k.name, k.key, e.state, coalesce(e.operations, 0), e.created_at,
                        e.updated_at,
                        (SELECT count(*) FROM entity_inbox i WHERE i.name = k.name AND i.key = k.key)
                 FROM keys k LEFT JOIN entities e ON e.name = k.name AND e.key = k.key
                 ORDER BY k.name, k.key LIMIT ?4",
            )?;
            let rows = q
                .query_map(params![name, after_name, after_key, limit as i64], |r| {
                    Ok(EntityRow {
                        entity: EntityKey {
                            name: r.get(0)?,
                            key: r.get(1)?,
                        },
                        state: r.get(2)?,
                        operations: r.get::<_, i64>(3)? as u64,
                        created_at: r.get::<_, Option<i64>>(4)?.map(|t| t as Millis),
                        updated_at: r.get::<_, Option<i64>>(5)?.map(|t| t as Millis),
                        pending: r.get::<_, i64>(6)? as u64,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Deletes an entity's state and log. Operations still waiting apply afterwards, to a new
    /// entity. How many entities (0 or 1) and log entries were deleted.
    async fn purge_entity(&self, entity: EntityKey) -> Result<(usize, usize), StoreError> {
        self.write(move |c| {
            let log = exec(
                c,
                "DELETE FROM entity_log WHERE name = ?1 AND key = ?2",
                params![entity.name, entity.key],
            )?;
            let state = exec(
                c,
                "DELETE FROM entities WHERE name = ?1 AND key = ?2",
                params![entity.name, entity.key],
            )?;
            Ok((state, log))
        })
        .await
    }

    /// The entities that have operations waiting (to resume after a restart).
    async fn entities_with_work(&self) -> Result<Vec<EntityKey>, StoreError> {
        self.read(|c| {
            let mut q =
                c.prepare("SELECT DISTINCT name, key FROM entity_inbox ORDER BY name, key")?;
            let rows = q
                .query_map([], |r| {
                    Ok(EntityKey {
                        name: r.get(0)?,
                        key: r.get(1)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }
}

/// Stores an applied operation: the entity's new state (`None`: unchanged, for a failure) and
/// the log entry.
#[allow(clippy::too_many_arguments, reason = "one row's columns")]
fn log_op(
    c: &Connection,
    entity: &EntityKey,
    new_state: Option<Option<String>>,
    operation: &str,
    input: &str,
    result: Result<&str, &str>,
    source: Option<&str>,
    now: Millis,
) -> Result<(), StoreError> {
    let current: Option<(Option<String>, i64)> = c
        .prepare_cached("SELECT state, operations FROM entities WHERE name = ?1 AND key = ?2")?
        .query_row(params![entity.name, entity.key], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (old_state, seq) = current.unwrap_or((None, 0));
    let state = new_state.unwrap_or(old_state);
    exec(
        c,
        "INSERT INTO entities (name, key, state, operations, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (name, key) DO UPDATE SET state = ?3, operations = ?4, updated_at = ?5",
        params![entity.name, entity.key, state, seq + 1, now as i64],
    )?;
    let (output, error) = match result {
        Ok(o) => (Some(o), None),
        Err(e) => (None, Some(e)),
    };
    exec(
        c,
        "INSERT INTO entity_log (name, key, seq, applied_at, operation, input, output, error,
                                 source_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            entity.name,
            entity.key,
            seq,
            now as i64,
            operation,
            input,
            output,
            error,
            source
        ],
    )?;
    Ok(())
}
