//! The conformance suite on SQLite: each case on a fresh file in a temporary directory.

use super::{SqliteStore, Synchronous};
use crate::store::Store;
use crate::store::conformance::Backend;
use async_trait::async_trait;
use std::sync::Arc;

struct SqliteFile(tempfile::TempDir);

impl SqliteFile {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("a temporary directory"))
    }

    fn path(&self) -> std::path::PathBuf {
        self.0.path().join("weft.db")
    }
}

#[async_trait]
impl Backend for SqliteFile {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.path(), Synchronous::Full).expect("the database opens"))
    }

    async fn open_full_at(&self, bytes: u64) -> Arc<dyn Store> {
        Arc::new(
            SqliteStore::open_limited(&self.path(), Synchronous::Full, Some(bytes))
                .expect("the database opens"),
        )
    }
}

conformance_suite!(sqlite, SqliteFile::new);
