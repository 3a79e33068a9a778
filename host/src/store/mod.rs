//! Durable storage: one SQLite file (WAL). All writes go through one writer thread that
//! commits whatever has queued up in one transaction (group commit); each caller still waits
//! for its own commit. Reads use a connection per thread.

mod components;
mod entities;
mod instances;
mod manage;
mod rows;
pub mod schema;
#[cfg(test)]
mod tests;
mod work;

pub use entities::{AppliedOp, EntityKey, EntityOp, EntityRow, LoggedOp, NextOp};
pub use instances::{
    Append, Appended, ChildStart, ContinueAsNew, CreateOutcome, PurgeOutcome, RaiseOutcome,
    ScheduledActivity, Terminated,
};
pub use manage::{ChangeOutcome, Filter, PageToken};
pub use rows::InstanceRow;
pub use schema::Synchronous;
pub use work::{ActivityWork, CompleteOutcome, Fired};

use rusqlite::{Connection, Transaction};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use tokio::sync::oneshot;

/// What can go wrong with the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database failed; the write was not made. Retriable.
    #[error("database error: {0}")]
    Db(Arc<rusqlite::Error>),
    /// The writer has stopped (the host is shutting down). Retriable elsewhere.
    #[error("the store is closed")]
    Closed,
    /// Stored data that cannot be read back: a bug or a tampered file.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the write failed because the disk (or the database's size limit) is full.
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Db(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(Arc::new(e))
    }
}

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut Transaction<'_>) -> Reply + Send>;

/// The most writes committed in one transaction.
const MAX_BATCH: usize = 512;

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::Sender<Job>,
    path: PathBuf,
    sync: Synchronous,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and starts its writer.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Self, schema::OpenError> {
        Self::open_limited(path, sync, None)
    }

    /// Like [`Store::open`], checking the file's integrity first; with `max_size`, writes that
    /// would grow the file past that many bytes fail (as on a full disk) and nothing of them
    /// is kept.
    pub fn open_limited(
        path: &Path,
        sync: Synchronous,
        max_size: Option<u64>,
    ) -> Result<Self, schema::OpenError> {
        let mut conn = schema::connect(path, sync)?;
        schema::check_integrity(&conn)?;
        schema::migrate(&mut conn)?;
        if let Some(bytes) = max_size {
            let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
            let pages = (bytes / page.max(1) as u64).clamp(1, i64::MAX as u64) as i64;
            conn.pragma_update(None, "max_page_count", pages)?;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("weft-store-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| {
                schema::OpenError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            })?;
        Ok(Self {
            writer: tx,
            path: path.to_path_buf(),
            sync,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in the writer's next transaction and waits until that transaction is durable.
    /// `f` runs inside a savepoint: if it fails, none of its changes are kept.
    pub async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |txn: &mut Transaction<'_>| {
            let result = match txn.savepoint() {
                Ok(mut sp) => {
                    let r = f(&sp);
                    if r.is_ok() {
                        match sp.commit() {
                            Ok(()) => r,
                            Err(e) => Err(e.into()),
                        }
                    } else {
                        let _ = sp.rollback();
                        r
                    }
                }
                Err(e) => Err(e.into()),
            };
            Box::new(move |commit: Result<(), StoreError>| {
                let _ = tx.send(commit.and(result));
            })
        });
        self.writer.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The readiness probe: a read, then a write through the writer (one row of its own in
    /// `secrets`, rewritten each time) that must commit.
    pub async fn probe(&self) -> Result<(), StoreError> {
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

    /// Runs `f` on this thread's read connection to the database. Reads are short (an
    /// instance's row or the tail of its history), so they run in place: no thread hand-off, no
    /// lock shared between threads; WAL lets them run beside the writer.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError>,
    {
        READERS.with(|readers| {
            let mut readers = readers.borrow_mut();
            let conn = match readers.entry(self.path.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let conn = schema::connect(&self.path, self.sync)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    e.insert(conn)
                }
            };
            f(conn)
        })
    }
}

thread_local! {
    /// One read connection per thread and database file.
    static READERS: std::cell::RefCell<std::collections::HashMap<PathBuf, Connection>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    // Jobs taken from the queue but not run yet (their transaction was cut short).
    let mut waiting: std::collections::VecDeque<Job> = std::collections::VecDeque::new();
    loop {
        if waiting.is_empty() {
            match rx.recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => return,
            }
        }
        while waiting.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => waiting.push_back(job),
                Err(_) => break,
            }
        }
        let mut txn = match conn.transaction() {
            Ok(t) => t,
            Err(e) => {
                // The jobs never ran; dropping them drops their reply channels, which their
                // callers see as `Closed`.
                tracing::error!("cannot begin a transaction: {}", StoreError::from(e));
                waiting.clear();
                continue;
            }
        };
        let mut replies: Vec<Reply> = Vec::with_capacity(waiting.len());
        let mut cut_short = false;
        while let Some(job) = waiting.pop_front() {
            replies.push(job(&mut txn));
            // SQLite rolls the whole transaction back on some errors (a full disk): then the
            // jobs run so far are undone, and the rest must not run outside a transaction.
            if txn.is_autocommit() {
                cut_short = true;
                break;
            }
        }
        let commit = if cut_short {
            drop(txn);
            Err(StoreError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                Some("the transaction was rolled back: the database or disk is full".into()),
            )))
        } else {
            txn.commit().map_err(StoreError::from)
        };
        if let Err(e) = &commit {
            tracing::error!("commit failed: {e}");
        }
        for reply in replies {
            reply(commit.clone());
        }
    }
}
