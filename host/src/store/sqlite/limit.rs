//! The disk's limit as SQLite meets it, for the benchmark: commits of one row each, and rows
//! committed in batches, on a scratch file with weft's settings.

#![allow(
    clippy::disallowed_methods,
    reason = "a measurement of the disk reads wall time"
)]

use super::{OpenError, Synchronous, schema};
use std::path::Path;
use std::time::Instant;

/// What the disk allowed.
#[derive(Debug, Clone, Copy)]
pub struct CommitLimit {
    pub single_commits_per_s: f64,
    pub batched_rows_per_s: f64,
    pub batch_rows: usize,
}

/// Measures the limit on a scratch database at `path` (created; the caller removes it),
/// writing about `rows` rows shaped like history events.
pub fn commit_limit(path: &Path, sync: Synchronous, rows: usize) -> Result<CommitLimit, OpenError> {
    let mut conn = schema::connect(path, sync)?;
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, seq INTEGER NOT NULL,
                         recorded_at INTEGER NOT NULL, event TEXT NOT NULL) STRICT;
         CREATE UNIQUE INDEX t_by_instance ON t(instance_id, seq);",
    )?;
    let event = r#"{"type":"activity_completed","handle":3,"output":"\"Hello Seattle!\""}"#;
    let singles = (rows / 20).max(100);
    let t0 = Instant::now();
    for i in 0..singles {
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO t (instance_id, seq, recorded_at, event) VALUES (?1, ?2, 0, ?3)",
            rusqlite::params![format!("single-{}", i % 100), i as i64, event],
        )?;
        tx.commit()?;
    }
    let single_commits_per_s = singles as f64 / t0.elapsed().as_secs_f64();
    let batch = 500;
    let batches = (rows / batch).max(1);
    let t0 = Instant::now();
    for b in 0..batches {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO t (instance_id, seq, recorded_at, event) VALUES (?1, ?2, 0, ?3)",
            )?;
            for i in 0..batch {
                // Rows of 100 instances interleaved, as concurrent instances write them.
                stmt.execute(rusqlite::params![
                    format!("batch-{}", i % 100),
                    (b * batch + i) as i64,
                    event
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(CommitLimit {
        single_commits_per_s,
        batched_rows_per_s: (batches * batch) as f64 / t0.elapsed().as_secs_f64(),
        batch_rows: batch,
    })
}

/// Runs a counting query (`SELECT count(*) ...`) on the database at `path` on a connection of
/// its own: the benchmark watches progress with it.
pub fn count(path: &Path, sql: &str) -> Result<i64, OpenError> {
    let conn = rusqlite::Connection::open(path)?;
    // Like the host's own connections: wait out a lock (say, a WAL restart) instead of failing.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn.query_row(sql, [], |r| r.get(0))?)
}
