//! The PostgreSQL backend: the same tables as SQLite's, in a database any number of
//! connections share. Each write is one transaction on a pooled connection (tokio-postgres
//! through deadpool's pool, with its statement cache); an instance's row is locked
//! (`FOR UPDATE`) before anything is appended to its history, so concurrent writers to one
//! instance take turns and its positions stay dense. A transaction that PostgreSQL aborts for
//! a deadlock or a serialization failure runs again.
//!
//! Any number of nodes may share a database: each instance is executed by the node that holds
//! its lease, and commits are fenced by the lease's epoch ([`leases`]).

mod components;
#[cfg(test)]
mod conformance;
mod entities;
mod instances;
pub mod leases;
mod manage;
mod rows;
pub mod schema;
pub mod test_server;
mod work;

pub use schema::OpenError;

use crate::store::{StoreError, Synchronous};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// The most connections one node keeps open to the database.
const POOL_SIZE: usize = 16;

/// How often a transaction aborted by a deadlock or a serialization failure is tried again.
const RETRIES: u32 = 20;

/// What went wrong inside a transaction: a PostgreSQL error (perhaps one worth trying again)
/// or the store's own.
#[derive(Debug)]
pub(super) enum PgError {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

impl From<StoreError> for PgError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl PgError {
    /// Whether PostgreSQL aborted the transaction for a deadlock or a serialization failure:
    /// it can run again as it is.
    fn is_retriable(&self) -> bool {
        use tokio_postgres::error::SqlState;
        match self {
            Self::Db(e) => matches!(
                e.code(),
                Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::T_R_SERIALIZATION_FAILURE
            ),
            Self::Store(_) => false,
        }
    }
}

/// What PostgreSQL said, as what a caller can do about it.
impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        use tokio_postgres::error::SqlState;
        let e = match e {
            PgError::Store(e) => return e,
            PgError::Db(e) => e,
        };
        let text = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        match e.code() {
            Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::PROGRAM_LIMIT_EXCEEDED => {
                Self::Full(text)
            }
            Some(c) if c.code().starts_with("23") => Self::Conflict(text),
            Some(c) if *c == SqlState::IO_ERROR => Self::Io(text),
            Some(c) if *c == SqlState::DATA_CORRUPTED || *c == SqlState::INDEX_CORRUPTED => {
                Self::Corrupt(text)
            }
            _ => Self::Unavailable(text),
        }
    }
}

/// Runs `$body` (a block that may use `?` on PostgreSQL errors) in a transaction named `$tx`
/// and commits it; runs it again, on a fresh transaction, when PostgreSQL aborted it for a
/// deadlock or a serialization failure. The body may run more than once, so it only borrows.
macro_rules! transaction {
    ($store:expr, |$tx:ident| $body:block) => {{
        let mut tries = 0;
        loop {
            let mut client = $store.client().await?;
            let $tx = match client.transaction().await {
                Ok(t) => t,
                Err(e) => break Err($crate::store::StoreError::from(PgError::from(e))),
            };
            let result: Result<_, PgError> = async { $body }.await;
            let result = match result {
                Ok(v) => {
                    let began = tokio::time::Instant::now();
                    let committed = $tx.commit().await;
                    let metrics = $crate::metrics::get();
                    metrics
                        .store_commit_seconds
                        .observe(began.elapsed().as_secs_f64());
                    metrics.store_batch_size.observe(1.0);
                    committed.map(|()| v).map_err(PgError::from)
                }
                Err(e) => Err(e),
            };
            match result {
                Err(e) if e.is_retriable() && tries < $crate::store::postgres::RETRIES => {
                    tries += 1;
                }
                r => break r.map_err($crate::store::StoreError::from),
            }
        }
    }};
}
pub(crate) use transaction;

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: Pool,
    /// This node's name: the holder named in the leases it takes.
    node: String,
    /// The notices to this node, until the runtime takes them.
    notices: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<crate::store::Notice>>>,
    /// Listens for notices; stopped with the store.
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://USER[:PASS]@HOST:PORT/DB`) as node
    /// `node`, brings the schema up to date and starts listening for notices. With
    /// [`Synchronous::Normal`], commits do not wait for the server's WAL flush
    /// (`synchronous_commit = off`): a crash of the database server may lose the last commits,
    /// never corrupt them.
    ///
    /// `lease` is how long the node's leases last: a transaction of this node left open longer
    /// (the node froze in the middle of it) is ended by the server, so that the rows it locked
    /// do not stop the nodes taking over from it.
    pub async fn open(
        url: &str,
        sync: Synchronous,
        node: &str,
        lease: std::time::Duration,
    ) -> Result<Self, OpenError> {
        if !leases::valid_node_name(node) {
            return Err(OpenError::NodeName(node.to_string()));
        }
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| OpenError::Url(e.to_string()))?;
        config.application_name("weft");
        config.connect_timeout(std::time::Duration::from_secs(10));
        let idle = lease.as_millis().max(1);
        let mut options = format!("-c idle_in_transaction_session_timeout={idle}");
        if sync == Synchronous::Normal {
            options.push_str(" -c synchronous_commit=off");
        }
        config.options(&options);
        {
            let (mut client, connection) = schema::connect(&config).await?;
            let driver = tokio::spawn(connection);
            let migrated = schema::migrate(&mut client).await;
            drop(client);
            let _ = driver.await;
            migrated?;
        }
        let (listener, notices) = leases::listen(config.clone(), node.to_string()).await?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| OpenError::Url(e.to_string()))?;
        Ok(Self {
            pool,
            node: node.to_string(),
            notices: std::sync::Mutex::new(Some(notices)),
            listener,
        })
    }

    /// A pooled connection.
    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool.get().await.map_err(|e| {
            // The pool's error hides PostgreSQL's ("too many clients already").
            let mut text = format!("no connection to PostgreSQL: {e}");
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            StoreError::Unavailable(text)
        })
    }

    /// The rows a read-only statement answers, on a pooled connection.
    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.client().await?;
        let run = async {
            let stmt = client.prepare_cached(sql).await?;
            Ok::<_, PgError>(client.query(&stmt, params).await?)
        };
        Ok(run.await?)
    }

    /// The row a read-only statement answers, if any.
    async fn row(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, StoreError> {
        Ok(self.rows(sql, params).await?.into_iter().next())
    }
}
