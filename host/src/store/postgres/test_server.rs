//! A PostgreSQL server of its own, for tests and trials: `initdb` in a temporary directory,
//! `postgres` on a free port of 127.0.0.1 (trust authentication, user `weft`, no fsync). Run
//! as root, the server runs as the `postgres` user (PostgreSQL refuses root). The server
//! stops, and its directory goes, when the [`PgServer`] is dropped or the process that
//! started it dies (its parent shell waits on a pipe that closes then).
#![allow(
    clippy::disallowed_methods,
    reason = "waiting for a server process to start takes wall time, not workflow time"
)]

use std::io::Read as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shell `postgres` runs under: it waits for its stdin to close, then asks PostgreSQL for
/// a fast shutdown and removes the server's directory.
const WATCHDOG: &str =
    r#"dir=$1; shift; "$@" </dev/null & read -r line; kill -INT $!; wait $!; rm -rf "$dir""#;

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What to install when PostgreSQL's server programs are missing.
pub const MISSING: &str = "PostgreSQL's server programs (initdb, postgres) were not found on PATH or in \
     /usr/lib/postgresql/*/bin: install them (Debian: apt-get install postgresql)";

/// A running PostgreSQL server.
pub struct PgServer {
    dir: PathBuf,
    port: u16,
    /// The watchdog shell; its stdin is the pipe that stops the server.
    child: Child,
}

/// The directory holding `initdb` and `postgres`.
fn bin_dir() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| Some(e.ok()?.path().join("bin"))).collect())
        .unwrap_or_default();
    versions.sort();
    on_path
        .into_iter()
        .chain(versions.into_iter().rev())
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        .ok_or_else(|| MISSING.to_string())
}

/// A command run as the server's user: ourselves, or `postgres` when we are root.
fn as_server_user(program: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PgServer {
    /// Creates a cluster in a fresh temporary directory and starts it; a message saying what
    /// is missing or what went wrong if it cannot.
    pub fn start() -> Result<Self, String> {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let bin = bin_dir()?;
        let root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weft-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        if root {
            let chown = Command::new("chown")
                .arg("postgres:")
                .arg(&dir)
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !chown.success() {
                return Err(
                    "running as root, the server runs as the `postgres` user, which does not \
                     exist here (Debian's postgresql package creates it)"
                        .into(),
                );
            }
        }
        let data = dir.join("data");
        let init = as_server_user(&bin.join("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "weft",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .map_err(|e| format!("running initdb: {e}"))?;
        if !init.status.success() {
            return Err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&init.stdout),
                String::from_utf8_lossy(&init.stderr)
            ));
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("server log: {e}"))?;
        let child = as_server_user(Path::new("sh"), root)
            .args(["-c", WATCHDOG, "sh"])
            .arg(&dir)
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting postgres: {e}"))?;
        let mut server = Self { dir, port, child };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let ready = server.log().contains("ready to accept connections")
                && TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok();
            if ready {
                return Ok(server);
            }
            if let Ok(Some(_)) = server.child.try_wait() {
                return Err(format!("postgres exited at start:\n{}", server.log()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "postgres did not start within {START_TIMEOUT:?}:\n{}",
                    server.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the server wrote to its log so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("server.log")) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// The server's directory (its data directory is `data` in it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://weft@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs statements on the `postgres` database as the superuser.
    pub async fn admin(&self, sql: &str) -> Result<(), String> {
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("connecting to the test server: {e}"))?;
        let task = tokio::spawn(connection);
        let done = client.batch_execute(sql).await;
        drop(client);
        let _ = task.await;
        done.map_err(|e| match e.as_db_error() {
            Some(db) => format!("{sql}: {}", db.message()),
            None => format!("{sql}: {e}"),
        })
    }

    /// Creates an empty database.
    pub async fn create_database(&self, db: &str) -> Result<(), String> {
        self.admin(&format!("CREATE DATABASE \"{db}\"")).await
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Closing the pipe stops the server; the shell removes the directory.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
