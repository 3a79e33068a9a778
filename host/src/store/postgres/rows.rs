//! The rows every part of the store reads and writes: running a cached statement in a
//! transaction, locking an instance's row, appending to a history, dropping an ended
//! instance's work, and reading an instance row.

use super::PgError;
use crate::clock::Millis;
use crate::history::{HistoryEvent, InstanceId, RuntimeStatus, Seq};
use crate::store::{InstanceRow, StoreError};
use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// A statement's parameters.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Runs a statement, prepared once per connection; how many rows it changed.
pub(super) async fn exec(
    tx: &Transaction<'_>,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, PgError> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&stmt, params).await?)
}

/// The rows a statement answers.
pub(super) async fn query(
    tx: &Transaction<'_>,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, PgError> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.query(&stmt, params).await?)
}

/// The row a statement answers, if any.
pub(super) async fn query_opt(
    tx: &Transaction<'_>,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, PgError> {
    let stmt = tx.prepare_cached(sql).await?;
    Ok(tx.query_opt(&stmt, params).await?)
}

pub(super) fn parse_status(s: &str) -> Result<RuntimeStatus, StoreError> {
    RuntimeStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown status '{s}'")))
}

/// Locks an instance's row for the rest of the transaction; its status, if it exists.
pub(super) async fn lock_instance(
    tx: &Transaction<'_>,
    id: &InstanceId,
) -> Result<Option<RuntimeStatus>, PgError> {
    let row = query_opt(
        tx,
        "SELECT status FROM instances WHERE id = $1 FOR UPDATE",
        &[&id.as_str()],
    )
    .await?;
    Ok(row.map(|r| parse_status(r.get(0))).transpose()?)
}

/// Locks an instance's row like [`lock_instance`], for a commit by `node` holding lease
/// `epoch` (if given): refused ([`StoreError::Fenced`]) when the instance runs on and `node`
/// does not hold it with that epoch.
pub(super) async fn lock_held(
    tx: &Transaction<'_>,
    id: &InstanceId,
    node: &str,
    epoch: Option<u64>,
) -> Result<Option<RuntimeStatus>, PgError> {
    let row = query_opt(
        tx,
        "SELECT status, owner, lease_epoch FROM instances WHERE id = $1 FOR UPDATE",
        &[&id.as_str()],
    )
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status = parse_status(row.get(0))?;
    if let Some(epoch) = epoch
        && !status.is_terminal()
    {
        let held = row.get::<_, Option<&str>>(1) == Some(node);
        if !held || row.get::<_, i64>(2) != epoch as i64 {
            return Err(StoreError::Fenced(id.clone()).into());
        }
    }
    Ok(Some(status))
}

/// Appends events to an instance's history, numbering them; returns their positions.
pub(super) async fn append_events(
    tx: &Transaction<'_>,
    id: &InstanceId,
    events: &[HistoryEvent],
    now: Millis,
) -> Result<Vec<Seq>, PgError> {
    let count = events.len() as i64;
    let first: i64 = query_opt(
        tx,
        "UPDATE instances SET next_seq = next_seq + $2, updated_at = $3 WHERE id = $1
         RETURNING next_seq - $2",
        &[&id.as_str(), &count, &(now as i64)],
    )
    .await?
    .ok_or_else(|| StoreError::Corrupt(format!("no instance row for {id}")))?
    .get(0);
    let seqs: Vec<i64> = (first..first + count).collect();
    let json = events
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    exec(
        tx,
        "INSERT INTO history (instance_id, seq, recorded_at, event)
         SELECT $1, s, $3, e FROM unnest($2::BIGINT[], $4::TEXT[]) AS t(s, e)",
        &[&id.as_str(), &seqs, &(now as i64), &json],
    )
    .await?;
    Ok(seqs.into_iter().map(|s| s as Seq).collect())
}

/// Drops the pending work of an instance that has ended.
pub(super) async fn drop_pending_work(
    tx: &Transaction<'_>,
    id: &InstanceId,
) -> Result<(), PgError> {
    exec(
        tx,
        "DELETE FROM timers WHERE instance_id = $1",
        &[&id.as_str()],
    )
    .await?;
    exec(
        tx,
        "DELETE FROM activities WHERE instance_id = $1",
        &[&id.as_str()],
    )
    .await?;
    Ok(())
}

pub(super) fn corrupt(e: crate::history::InvalidId) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// An instance id read from a column.
pub(super) fn instance_id(row: &Row, column: usize) -> Result<InstanceId, StoreError> {
    row.get::<_, &str>(column).parse().map_err(corrupt)
}

/// The columns [`instance_row`] reads, in order.
pub(super) const INSTANCE_COLUMNS: &str = "id, name, digest, status, input, output, failure,
    custom_status, created_at, updated_at";

/// An instance row from the columns [`INSTANCE_COLUMNS`] names.
pub(super) fn instance_row(r: &Row) -> Result<InstanceRow, StoreError> {
    Ok(InstanceRow {
        id: instance_id(r, 0)?,
        name: r.get(1),
        digest: r.get::<_, &str>(2).parse().map_err(corrupt)?,
        status: parse_status(r.get(3))?,
        input: r.get(4),
        output: r.get(5),
        failure: r.get(6),
        custom_status: r.get(7),
        created_at: r.get::<_, i64>(8) as Millis,
        updated_at: r.get::<_, i64>(9) as Millis,
    })
}

/// A history event read from its JSON column.
pub(super) fn event(json: &str, seq: i64) -> Result<HistoryEvent, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("history event {seq}: {e}")))
}
