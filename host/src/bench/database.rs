//! Where a benchmark scenario keeps its data: a fresh SQLite file in a temporary directory, or,
//! with `--db postgres://…`, a fresh database `weft_bench_SCENARIO` on that server (made again
//! at each run; the user needs the CREATEDB privilege). Scenarios count rows through it to
//! check their outputs.

use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;
use weft::store::{PostgresStore, SqliteStore, Store, Synchronous};

/// How long the benchmark's nodes' leases last.
const LEASE: std::time::Duration = std::time::Duration::from_secs(10);

pub enum BenchDb {
    Sqlite(PathBuf),
    Postgres {
        url: String,
        sync: Synchronous,
        client: tokio_postgres::Client,
        connection: tokio::task::JoinHandle<()>,
    },
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url.split_once("://").context("a postgres:// URL")?;
    let (authority, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = tail
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Ok(format!("{scheme}://{authority}/{db}{query}"))
}

async fn connect(
    url: &str,
) -> anyhow::Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| "connecting to the benchmark's PostgreSQL server".to_string())?;
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, connection))
}

impl BenchDb {
    /// A fresh database for scenario `name`, and a store on it.
    pub async fn fresh(
        postgres: Option<&str>,
        name: &str,
        sync: Synchronous,
    ) -> anyhow::Result<(Self, Arc<dyn Store>)> {
        let Some(url) = postgres else {
            let dir =
                std::env::temp_dir().join(format!("weft-bench-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let store = Arc::new(SqliteStore::open(&dir.join("weft.db"), sync)?);
            return Ok((Self::Sqlite(dir), store));
        };
        let db = format!("weft_bench_{name}");
        let (admin, task) = connect(url).await?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .with_context(|| format!("dropping {db} of an earlier run"))?;
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .with_context(|| format!("creating {db} (the user needs CREATEDB)"))?;
        drop(admin);
        let _ = task.await;
        let url = with_database(url, &db)?;
        let store = Arc::new(PostgresStore::open(&url, sync, "bench-1", LEASE).await?);
        let (client, connection) = connect(&url).await?;
        let db = Self::Postgres {
            url,
            sync,
            client,
            connection,
        };
        Ok((db, store))
    }

    /// A store for one more node (`bench-N`) on the same PostgreSQL database.
    pub async fn another(&self, n: usize) -> anyhow::Result<Arc<dyn Store>> {
        match self {
            Self::Sqlite(_) => anyhow::bail!("several nodes need a PostgreSQL database (--db)"),
            Self::Postgres { url, sync, .. } => Ok(Arc::new(
                PostgresStore::open(url, *sync, &format!("bench-{n}"), LEASE).await?,
            )),
        }
    }

    /// The count a `SELECT count(*) …` answers.
    pub async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(match self {
            Self::Sqlite(dir) => weft::store::sqlite::count(&dir.join("weft.db"), sql)?,
            Self::Postgres { client, .. } => client.query_one(sql, &[]).await?.get(0),
        })
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        match self {
            Self::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Self::Postgres { connection, .. } => connection.abort(),
        }
    }
}
