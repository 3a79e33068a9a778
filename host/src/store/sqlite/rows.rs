//! The rows every part of the store reads and writes: the instance row, appending to a
//! history, running a cached statement, dropping an ended instance's work.

use crate::clock::Millis;
use crate::history::{HistoryEvent, InstanceId, RuntimeStatus, Seq};
use crate::store::{InstanceRow, StoreError};
use rusqlite::{Connection, OptionalExtension, params};

/// Runs a statement, prepared once per connection.
pub(super) fn exec(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

pub(super) fn instance_status(
    conn: &Connection,
    id: &InstanceId,
) -> Result<Option<RuntimeStatus>, StoreError> {
    let s: Option<String> = conn
        .prepare_cached("SELECT status FROM instances WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?;
    s.map(|s| parse_status(&s)).transpose()
}

pub(super) fn parse_status(s: &str) -> Result<RuntimeStatus, StoreError> {
    RuntimeStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown status '{s}'")))
}

/// Appends events to an instance's history, numbering them; returns their positions.
pub(super) fn append_events(
    conn: &Connection,
    id: &InstanceId,
    events: &[HistoryEvent],
    now: Millis,
) -> Result<Vec<Seq>, StoreError> {
    let next: i64 = conn
        .prepare_cached("SELECT next_seq FROM instances WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO history (instance_id, seq, recorded_at, event) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut seqs = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let seq = next + i as i64;
        let json = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        stmt.execute(params![id.as_str(), seq, now as i64, json])?;
        seqs.push(seq as Seq);
    }
    exec(
        conn,
        "UPDATE instances SET next_seq = ?2, updated_at = ?3 WHERE id = ?1",
        params![id.as_str(), next + events.len() as i64, now as i64],
    )?;
    Ok(seqs)
}

/// Drops the pending work of an instance that has ended.
pub(super) fn drop_pending_work(conn: &Connection, id: &InstanceId) -> Result<(), StoreError> {
    exec(
        conn,
        "DELETE FROM timers WHERE instance_id = ?1",
        [id.as_str()],
    )?;
    exec(
        conn,
        "DELETE FROM activities WHERE instance_id = ?1",
        [id.as_str()],
    )?;
    Ok(())
}

/// The columns of an instance row, before parsing.
pub(super) type RawInstance = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

pub(super) fn read_instance(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawInstance> {
    r.try_into()
}

pub(super) fn corrupt(e: crate::history::InvalidId) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

pub(super) fn finish_instance(raw: RawInstance) -> Result<InstanceRow, StoreError> {
    let (id, name, digest, status, input, output, failure, custom_status, created, updated) = raw;
    Ok(InstanceRow {
        id: id.parse().map_err(corrupt)?,
        name,
        digest: digest.parse().map_err(corrupt)?,
        status: parse_status(&status)?,
        input,
        output,
        failure,
        custom_status,
        created_at: created as Millis,
        updated_at: updated as Millis,
    })
}
