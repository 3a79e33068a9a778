//! Test kit: builds the example components, runs the real `weft` binary on a real SQLite file
//! and a loopback port, talks to it over HTTP, and plays the external systems.
//!
//! Every wait in it has a bound: a server's start (120 s), its death (30 s), each HTTP request
//! (60 s), each polled condition (60 s). A server never outlives the test process that started
//! it, however that process ends (see [`WATCHDOG`]).

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the kit"
)]

pub mod client;
pub mod cluster;
pub mod effects;
pub mod histories;
pub mod jobs;
pub mod load;
pub mod otlp;
pub mod sms;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Builds the guest crates in `workflows/` for wasm32-wasip2 (once per test binary) and returns
/// the directory holding the `.wasm` files.
pub fn guest_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let target = target_dir().join("guests");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root().join("workflows/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("run cargo to build the example components");
        assert!(
            status.success(),
            "building the example components failed (is the wasm32-wasip2 target installed?)"
        );
        target.join("wasm32-wasip2/release")
    })
}

/// The path of an example component, by crate name.
pub fn component(crate_name: &str) -> PathBuf {
    guest_dir().join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// How to run a `weft serve`.
#[derive(Clone)]
pub struct Options {
    /// Components, as (file name in the components dir, source path).
    pub components: Vec<(String, PathBuf)>,
    /// `--idle-timeout` in seconds; 0 evicts instances at every wait.
    pub idle_timeout: f64,
    /// App settings (environment variables) for activities.
    pub env: Vec<(String, String)>,
    /// Whether time stands still until told to move (`--manual-clock`); else wall time.
    pub manual_clock: bool,
    /// The manual clock's start.
    pub start_time: String,
    /// `WEFT_TOKEN`; `None` lets the server generate one.
    pub token: Option<String>,
    /// More arguments for `weft serve`.
    pub args: Vec<String>,
    /// `--db`: a database URL; `None` is a SQLite file in the server's directory.
    pub db: Option<String>,
    /// Where the database and the compiled-component cache live (say, on a power-cut file
    /// system); the server's own temporary directory when `None`.
    pub data_dir: Option<PathBuf>,
}

/// The token test servers run with.
pub const TOKEN: &str = "test-token";

/// How long one HTTP request to a test server (or from a fake service) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// `weft serve` runs under this small `sh`, its parent, which waits for the pipe on its stdin
/// to close, then SIGKILLs weft and reaps it. The kit closes the pipe to kill the server; the
/// kernel closes it when the test process dies, however it dies (a test timeout, Ctrl-C,
/// SIGKILL), so no server outlives its test. The pid the shell kills cannot have been reused:
/// only the shell reaps it, after the kill. The shell keeps no copy of the stderr pipe, so a
/// server that dies early ends the log at once.
pub const WATCHDOG: &str = r#"exec 3>&2 2>/dev/null; "$@" 2>&3 3>&- </dev/null & exec 3>&-; read -r line; kill -9 $!; wait $!"#;

/// How long a killed server may take to be gone.
const DEATH_TIMEOUT: Duration = Duration::from_secs(30);

impl Options {
    pub fn new(crates: &[&str]) -> Self {
        Self {
            components: crates
                .iter()
                .map(|c| (format!("{c}.wasm"), component(c)))
                .collect(),
            idle_timeout: 60.0,
            env: Vec::new(),
            manual_clock: true,
            start_time: "2026-01-01T00:00:00Z".into(),
            token: Some(TOKEN.into()),
            args: Vec::new(),
            db: None,
            data_dir: None,
        }
    }

    /// Serves from the database at `url` (e.g. `postgres://…`).
    pub fn db(mut self, url: &str) -> Self {
        self.db = Some(url.into());
        self
    }

    pub fn evict_always(mut self) -> Self {
        self.idle_timeout = 0.0;
        self
    }

    /// Runs on wall time: timers fire by themselves.
    pub fn wall_clock(mut self) -> Self {
        self.manual_clock = false;
        self
    }

    /// Keeps the database and the component cache in `dir`.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// More arguments for `weft serve`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
}

/// A running `weft serve` process with its own database.
pub struct Weft {
    child: Option<Child>,
    pub url: String,
    pub dir: tempfile::TempDir,
    options: Options,
    /// The address to listen on: any free port at first, the same one after a restart (so
    /// callback URLs handed out before still reach it).
    listen: String,
    log: Arc<Mutex<String>>,
    pub http: reqwest::Client,
}

impl Weft {
    pub fn start(options: Options) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let components = dir.path().join("components");
        std::fs::create_dir(&components).expect("components dir");
        for (name, src) in &options.components {
            std::fs::copy(src, components.join(name)).expect("copy component");
        }
        let mut weft = Self {
            child: None,
            url: String::new(),
            dir,
            options,
            listen: "127.0.0.1:0".into(),
            log: Arc::new(Mutex::new(String::new())),
            http: bounded_client(),
        };
        if let Some(token) = &weft.options.token {
            weft.http = authorized_client(token);
        }
        weft.spawn();
        weft
    }

    pub fn db(&self) -> PathBuf {
        match &self.options.data_dir {
            Some(dir) => dir.join("weft.db"),
            None => self.dir.path().join("weft.db"),
        }
    }

    fn cache_dir(&self) -> PathBuf {
        match &self.options.data_dir {
            Some(dir) => dir.join("cache"),
            None => target_dir().join("weft-test-cache"),
        }
    }

    pub fn components_dir(&self) -> PathBuf {
        self.dir.path().join("components")
    }

    /// Sets an app setting (an environment variable) for the processes started from now on.
    pub fn set_env(&mut self, k: &str, v: &str) {
        self.options.env.retain(|(key, _)| key != k);
        self.options.env.push((k.into(), v.into()));
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", WATCHDOG, "sh", env!("CARGO_BIN_EXE_weft")])
            .arg("serve")
            .arg("--db")
            .arg(match &self.options.db {
                Some(url) => std::ffi::OsString::from(url),
                None => self.db().into_os_string(),
            })
            .args(["--listen", &self.listen]);
        if self.options.manual_clock {
            cmd.args(["--manual-clock", "--start-time", &self.options.start_time]);
        }
        cmd.arg("--components")
            .arg(self.components_dir())
            .arg("--cache-dir")
            .arg(self.cache_dir())
            .arg("--idle-timeout")
            .arg(self.options.idle_timeout.to_string())
            .args(&self.options.args)
            .env_remove("WEFT_TOKEN")
            .env("RUST_LOG", "weft=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.options.env {
            cmd.env(k, v);
        }
        if let Some(token) = &self.options.token {
            cmd.env("WEFT_TOKEN", token);
        }
        // Dropped on a panic below, the child's stdin closes and the watchdog kills weft.
        let mut child = cmd.spawn().expect("spawn weft");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("weft listening on ") {
                    let _ = tx.send(url.to_string());
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        self.url = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) => url,
            Err(_) => panic!("weft did not start:\n{}", self.log()),
        };
        if let Some(addr) = self.url.strip_prefix("http://") {
            self.listen = addr.to_string();
        }
        self.child = Some(child);
    }

    /// Everything the process wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERMs the process (a graceful stop) and returns once it has exited by itself.
    pub fn stop(&mut self) {
        let pid = self.pid().expect("SIGTERM: weft is not running");
        self.signal("TERM");
        let deadline = tokio::time::Instant::now() + DEATH_TIMEOUT;
        // Exited: gone, or a zombie its watchdog shell has not waited for yet.
        let exited = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| Some(stat.rsplit_once(')')?.1.split_whitespace().next()? == "Z"))
                .unwrap_or(true)
        };
        while !exited() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "weft did not exit within {DEATH_TIMEOUT:?} of its SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// SIGKILLs the process (no shutdown, no flush) and returns once it is gone.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.take()
            && !reap(child)
        {
            panic!("weft did not die within {DEATH_TIMEOUT:?} of its SIGKILL");
        }
    }

    /// The pid of the `weft` process (the watchdog shell's only child), while it runs.
    pub fn pid(&self) -> Option<u32> {
        let shell = self.child.as_ref()?.id();
        std::fs::read_dir("/proc").ok()?.find_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid …`: the command name may hold spaces, not `)`.
            let (_, rest) = stat.rsplit_once(')')?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == shell).then_some(pid)
        })
    }

    /// Sends the `weft` process signal `name` (`STOP`, `CONT`).
    fn signal(&self, name: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("SIG{name}: weft is not running"));
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// SIGSTOPs the process: it keeps its sockets and database connections, and does nothing
    /// until [`Weft::thaw`]. (Killing it still works: a stopped process dies of SIGKILL.)
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// SIGCONTs a frozen process.
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    /// The `--start-time` the next (re)start passes.
    pub fn set_start_time(&mut self, rfc3339: &str) {
        self.options.start_time = rfc3339.into();
    }

    /// Starts the process again on the same database.
    pub fn restart(&mut self) {
        self.kill();
        // Connections kept alive to the killed process are dead: start a fresh pool.
        self.http = match &self.options.token {
            Some(token) => authorized_client(token),
            None => bounded_client(),
        };
        self.spawn();
    }

    /// Sends a request; returns status and JSON body (`null` when empty).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("request to weft");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("response body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Starts an orchestration with a chosen instance id; returns the 202 body.
    pub async fn start_instance(&self, name: &str, id: &str, input: Value) -> Value {
        let (status, body) = self
            .request(
                reqwest::Method::POST,
                &format!("/orchestrations/{name}?instanceId={id}"),
                Some(&input),
            )
            .await;
        assert_eq!(status, 202, "start {name}: {body}");
        body
    }

    /// The status with history, or `None` while the instance does not exist.
    pub async fn try_status(&self, id: &str) -> Option<Value> {
        let (status, body) = self
            .request(
                reqwest::Method::GET,
                &format!("/instances/{id}?showHistory=true"),
                None,
            )
            .await;
        match status {
            200 => Some(body),
            404 => None,
            _ => panic!("status of {id}: {status} {body}"),
        }
    }

    /// The status with history; the instance must exist.
    pub async fn status(&self, id: &str) -> Value {
        match self.try_status(id).await {
            Some(s) => s,
            None => panic!("status of {id}: 404"),
        }
    }

    pub async fn raise(&self, id: &str, event: &str, payload: Value) {
        let (status, body) = self
            .request(
                reqwest::Method::POST,
                &format!("/instances/{id}/raiseEvent/{event}"),
                Some(&payload),
            )
            .await;
        assert_eq!(status, 202, "raise {event} to {id}: {body}");
    }

    /// Moves the manual clock; the answer (`{now, timersFired}`).
    pub async fn advance(&self, seconds: f64) -> Value {
        let (status, body) = self
            .request(
                reqwest::Method::POST,
                "/admin/clock/advance",
                Some(&json!({ "seconds": seconds })),
            )
            .await;
        assert_eq!(status, 200, "advance clock: {body}");
        body
    }

    /// Polls `f` until it returns `Some`; on timeout, fails showing the server's log.
    pub async fn eventually<T>(&self, what: &str, f: impl AsyncFnMut() -> Option<T>) -> T {
        match poll_until(f).await {
            Some(v) => v,
            None => panic!(
                "timed out waiting until {what}; weft's log:\n{}",
                self.log()
            ),
        }
    }

    /// Waits until the instance has ended; returns its status.
    pub async fn finished(&self, id: &str) -> Value {
        self.eventually(&format!("instance {id} ends"), async || {
            let s = self.status(id).await;
            let done = matches!(
                s["runtimeStatus"].as_str(),
                Some("Completed" | "Failed" | "Terminated")
            );
            done.then_some(s)
        })
        .await
    }

    /// POSTs a component to `/components` (with `?check=true` if `check`): status and answer.
    pub async fn deploy(&self, bytes: Vec<u8>, check: bool) -> (u16, Value) {
        let query = if check { "?check=true" } else { "" };
        let resp = self
            .http
            .post(format!("{}/components{query}", self.url))
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .expect("deploy");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("a JSON answer"))
    }

    /// Waits until the instance's history holds an event of `kind` (its `type`); returns the
    /// history.
    pub async fn history_has(&self, id: &str, kind: &str) -> Vec<Value> {
        self.history_has_n(id, kind, 1).await
    }

    /// Raises the three ticks fixtures' `ticker` instance `id` counts, one to each run, each
    /// once that run waits: it continues as new twice, then completes.
    pub async fn tick_ticker(&self, id: &str) {
        for i in 0..3 {
            self.history_has(id, "event_wait_created").await;
            self.raise(id, "tick", json!(i)).await;
            if i < 2 {
                self.eventually("the run continues as new", async || {
                    let s = self.status(id).await;
                    (s["previousRuns"].as_array().map_or(0, Vec::len) > i).then_some(())
                })
                .await;
            }
        }
    }

    /// Waits until the instance's history holds at least `n` events of `kind`.
    pub async fn history_has_n(&self, id: &str, kind: &str, n: usize) -> Vec<Value> {
        self.eventually(&format!("history of {id} holds {n} {kind}"), async || {
            let s = self.try_status(id).await?;
            let h = s["historyEvents"].as_array().cloned().unwrap_or_default();
            if h.iter().filter(|e| e["type"] == kind).count() >= n {
                return Some(h);
            }
            assert_running(&s, kind);
            None
        })
        .await
    }

    /// How many times the log says an instance was replayed.
    pub fn replays(&self, id: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("replaying") && l.contains(id))
            .count()
    }

    /// Reads the database file directly (read-only).
    pub fn query_i64(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open_with_flags(
            self.db(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open db");
        conn.query_row(sql, [], |r| r.get(0)).expect("query")
    }

    /// How many events of `kind` (their `type`) the database holds for instance `id`.
    pub fn stored_events(&self, id: &str, kind: &str) -> i64 {
        self.query_i64(&format!(
            "SELECT count(*) FROM history WHERE instance_id = '{id}'
             AND json_extract(event, '$.type') = '{kind}'"
        ))
    }
}

impl Drop for Weft {
    fn drop(&mut self) {
        // No panic here: the test may be unwinding already.
        if let Some(child) = self.child.take() {
            reap(child);
        }
    }
}

/// Closes the watchdog's stdin, so it SIGKILLs weft, and waits (at most [`DEATH_TIMEOUT`])
/// for the watchdog to have reaped it and exited; whether it did.
fn reap(mut child: Child) -> bool {
    drop(child.stdin.take());
    let (done, gone) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    matches!(gone.recv_timeout(DEATH_TIMEOUT), Ok(Ok(_)))
}

/// An HTTP client whose requests time out after [`REQUEST_TIMEOUT`].
pub fn bounded_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("client")
}

/// An HTTP client that presents `token`; its requests time out after [`REQUEST_TIMEOUT`].
pub fn authorized_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("client")
}

/// Fails the test if an instance that should still record `kind` has ended.
fn assert_running(status: &Value, kind: &str) {
    let ended = matches!(
        status["runtimeStatus"].as_str(),
        Some("Completed" | "Failed" | "Terminated")
    );
    assert!(
        !ended,
        "the instance ended without recording {kind}: {status}"
    );
}

/// Polls `f` until it returns `Some` (every 10 ms, for at most 60 s).
pub async fn eventually<T>(what: &str, f: impl AsyncFnMut() -> Option<T>) -> T {
    match poll_until(f).await {
        Some(v) => v,
        None => panic!("timed out waiting until {what}"),
    }
}

/// Polls `f` until it returns `Some` (every 10 ms); `None` after 60 s.
pub async fn poll_until<T>(f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    poll_for(Duration::from_secs(60), f).await
}

/// Like [`poll_until`], for at most `within`.
pub async fn poll_for<T>(within: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A history with run-specific values (say, a random code) replaced by placeholders, so two
/// runs of one scenario can be compared: every JSON number or string equal to a key of
/// `replace` becomes its value.
pub fn normalized(history: &[Value], replace: &[(Value, &str)]) -> Vec<Value> {
    fn walk(v: &mut Value, replace: &[(Value, &str)]) {
        if let Some((_, to)) = replace.iter().find(|(from, _)| from == v) {
            *v = Value::String((*to).to_string());
            return;
        }
        match v {
            Value::Array(a) => a.iter_mut().for_each(|x| walk(x, replace)),
            Value::Object(o) => o.values_mut().for_each(|x| walk(x, replace)),
            _ => {}
        }
    }
    history
        .iter()
        .map(|e| {
            let mut e = e.clone();
            walk(&mut e, replace);
            e
        })
        .collect()
}

/// Runs the `weft` command line against `server` with the test token; its output.
pub fn weft_cli(server: &Weft, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .args(["--server", &server.url])
        .env("WEFT_TOKEN", TOKEN)
        .output()
        .expect("run weft")
}

/// A command's standard output, trimmed.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A command's standard error, trimmed.
pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}
