//! The embedded backend: one SQLite file (WAL). All writes go through one writer thread that
//! commits whatever has queued up in one transaction (group commit); each caller still waits
//! for its own commit. Reads use a connection per thread.

mod components;
#[cfg(test)]
mod conformance;
mod entities;
mod instances;
mod limit;
mod manage;
mod rows;
pub mod schema;
mod work;

pub use limit::{CommitLimit, commit_limit, count};
pub use schema::{OpenError, Synchronous};

use crate::store::StoreError;
use rusqlite::{Connection, ErrorCode, Transaction};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// What SQLite said, as what a caller can do about it.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Self::Full(e.to_string()),
            Some(ErrorCode::SystemIoFailure) => Self::Io(e.to_string()),
            Some(ErrorCode::ConstraintViolation) => Self::Conflict(e.to_string()),
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                Self::Corrupt(e.to_string())
            }
            _ => match e {
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::IntegralValueOutOfRange(..) => Self::Corrupt(e.to_string()),
                e => Self::Unavailable(e.to_string()),
            },
        }
    }
}

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut Transaction<'_>) -> Reply + Send>;

/// One node serves a SQLite file (it holds the file's lock): it holds every instance's lease,
/// and there is nobody to notify.
impl crate::store::LeaseStore for SqliteStore {}

/// The most writes committed in one transaction.
const MAX_BATCH: usize = 512;

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    writer: mpsc::Sender<Job>,
    path: PathBuf,
    sync: Synchronous,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and starts its writer.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Self, schema::OpenError> {
        Self::open_limited(path, sync, None)
    }

    /// Like [`SqliteStore::open`], checking the file's integrity first; with `max_size`, writes that
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
    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
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

    /// Runs `f` on this thread's read connection to the database. Reads are short (an
    /// instance's row or the tail of its history), so they run in place: no thread hand-off, no
    /// lock shared between threads; WAL lets them run beside the writer.
    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Connection) -> Result<R, StoreError>,
    {
        READERS.with(|readers| {
            let mut readers = readers.borrow_mut();
            let conn = match readers.entry(self.path.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let conn = schema::connect(&self.path, self.sync)
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
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
        let began = tokio::time::Instant::now();
        let commit = if cut_short {
            drop(txn);
            Err(StoreError::Full(
                "the transaction was rolled back: the database or disk is full".into(),
            ))
        } else {
            txn.commit().map_err(StoreError::from)
        };
        if let Err(e) = &commit {
            tracing::error!("commit failed: {e}");
        }
        let metrics = crate::metrics::get();
        metrics
            .store_commit_seconds
            .observe(began.elapsed().as_secs_f64());
        metrics.store_batch_size.observe(replies.len() as f64);
        for reply in replies {
            reply(commit.clone());
        }
    }
}
