//! The conformance suite on PostgreSQL: one server per test process, started by the suite
//! itself, and a fresh database per case. A store that fills up is a database in a
//! tablespace on a small tmpfs (mounting needs root, as in CI).

use super::PostgresStore;
use super::test_server::PgServer;
use crate::store::conformance::Backend;
use crate::store::{Store, Synchronous};
use async_trait::async_trait;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// The suite's server, started on first use.
fn server() -> &'static PgServer {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    match SERVER.get_or_init(PgServer::start) {
        Ok(server) => server,
        Err(e) => panic!("the PostgreSQL conformance suite needs a server: {e}"),
    }
}

/// A database of its own; created on first open.
struct PgDatabase {
    name: String,
    created: tokio::sync::OnceCell<()>,
    /// The tmpfs holding the database's tablespace, if it was opened full.
    tmpfs: std::sync::Mutex<Option<PathBuf>>,
}

impl PgDatabase {
    fn new() -> Self {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        Self {
            name: format!("conformance_{n}"),
            created: tokio::sync::OnceCell::new(),
            tmpfs: std::sync::Mutex::new(None),
        }
    }

    async fn store(&self) -> Arc<dyn Store> {
        self.created
            .get_or_init(|| async {
                server()
                    .create_database(&self.name)
                    .await
                    .expect("a fresh database")
            })
            .await;
        Arc::new(
            PostgresStore::open(&server().url(&self.name), Synchronous::Full)
                .await
                .expect("the database opens"),
        )
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bytes used on the file system at `dir`.
fn used(dir: &std::path::Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=used"])
        .arg(dir)
        .output()
        .expect("df runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints the bytes used")
}

#[async_trait]
impl Backend for PgDatabase {
    async fn open(&self) -> Arc<dyn Store> {
        if let Some(dir) = self.tmpfs.lock().unwrap().as_ref() {
            run(Command::new("mount")
                .args(["-o", "remount,size=1g"])
                .arg(dir));
        }
        self.store().await
    }

    async fn open_full_at(&self, bytes: u64) -> Arc<dyn Store> {
        let dir = server().dir().join(format!("{}_space", self.name));
        std::fs::create_dir_all(&dir).expect("the tablespace's directory");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(&dir));
        *self.tmpfs.lock().unwrap() = Some(dir.clone());
        run(Command::new("chown").arg("postgres:").arg(&dir));
        let space = format!("{}_space", self.name);
        let admin = async |sql: String| server().admin(&sql).await.expect("the tablespace");
        admin(format!(
            "CREATE TABLESPACE {space} LOCATION '{}'",
            dir.display()
        ))
        .await;
        admin(format!("CREATE DATABASE {} TABLESPACE {space}", self.name)).await;
        self.created.set(()).expect("the database is new");
        let store = self.store().await;
        let size = (used(&dir) + bytes / 2).div_ceil(4096) * 4096;
        run(Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&dir));
        store
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Some(dir) = self.tmpfs.lock().unwrap().take() {
            let _ = Command::new("umount").arg("-l").arg(&dir).status();
        }
    }
}

conformance_suite!(postgres, PgDatabase::new);
