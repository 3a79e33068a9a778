//! Several `weft serve` nodes on one PostgreSQL database: the server (one per test process,
//! started on first use), a fresh database per test, three nodes on it (`--node-id node-N
//! --lease SECS`), and a reader of the database for the checks of `common::load` (the same
//! snapshot as on SQLite, read through tokio-postgres). The cluster keeps the lives of its host
//! processes (numbered as the effects server sees them: app setting `EffectsIncarnation`)
//! through kills, freezes, thaws and restarts, for `load::check_effects`.

use super::effects::EffectsServer;
use super::load::split_key;
use super::load::{ARRIVALS_SQL, COMPONENTS_SQL, Kills, Ledger, Life, SIGNALS_SQL, Snapshot};
use super::{Options, Weft};
use std::sync::OnceLock;
use std::time::Duration;
use tokio_postgres::SimpleQueryMessage;
use weft::store::postgres::test_server::PgServer;

/// The lease the nodes hold their instances by, in seconds, unless a test says otherwise.
pub const LEASE: u64 = 2;

/// How long one query of the reader may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(20);

/// This process's server, started on first use. Without PostgreSQL's programs the tests fail
/// and say what to install.
pub fn server() -> &'static PgServer {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    match SERVER.get_or_init(PgServer::start) {
        Ok(server) => server,
        Err(e) => panic!("these tests need a PostgreSQL server: {e}"),
    }
}

/// A fresh database on the server; its URL.
pub async fn database(name: &str) -> String {
    server()
        .create_database(name)
        .await
        .expect("a fresh database");
    server().url(name)
}

/// The `--node-id` of node `k` (0-based): `node-1`, `node-2`, …
pub fn node_id(k: usize) -> String {
    format!("node-{}", k + 1)
}

/// Three nodes on one database.
pub struct Cluster {
    pub url: String,
    pub nodes: Vec<Weft>,
    pub db: PgReader,
    /// The number of the host process each node runs now.
    pub process: Vec<u64>,
    /// What the kills, freezes and thaws did.
    pub kills: Kills,
}

impl Cluster {
    /// Three nodes with `options`, on a fresh database `name`, each holding leases for
    /// [`LEASE`] seconds.
    pub async fn start(name: &str, options: Options) -> Self {
        Self::with_lease(name, options, LEASE).await
    }

    pub async fn with_lease(name: &str, options: Options, lease: u64) -> Self {
        let url = database(name).await;
        let db = PgReader::connect(&url);
        let mut kills = Kills::default();
        let mut nodes = Vec::new();
        for k in 0..3 {
            kills.lives.insert(k as u64, Life::default());
            let options = options
                .clone()
                .db(&url)
                .arg("--node-id")
                .arg(&node_id(k))
                .arg("--lease")
                .arg(&lease.to_string())
                .env("EffectsIncarnation", &k.to_string());
            nodes.push(Weft::start(options));
        }
        Self {
            url,
            nodes,
            db,
            process: vec![0, 1, 2],
            kills,
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    /// The node that runs (or ran last) host process `process`.
    pub fn node_of(&self, process: u64) -> Option<usize> {
        self.process.iter().position(|&p| p == process)
    }

    /// The end of every node's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (k, node) in self.nodes.iter().enumerate() {
            let log = node.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            out.push_str(&format!("--- {} ---\n{}\n", node_id(k), tail.join("\n")));
        }
        out
    }

    /// Polls `f` every 20 ms until it returns `Some`; after `limit`, fails naming `what`,
    /// with the end of every node's log.
    pub async fn within<T>(
        &self,
        limit: Duration,
        what: &str,
        mut f: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "not within {limit:?}: {what}\nthe nodes' logs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Moves the effects server to the next epoch and reads the database: what was recorded
    /// by the end of the epoch that ended. Returns that epoch.
    fn disrupted(&mut self, effects: &EffectsServer, ledger: &Ledger, when: &str) -> u64 {
        let epoch = effects.incarnation();
        effects.next_incarnation();
        let snap = self.db.snapshot();
        self.kills.record(epoch, ledger, snap, when);
        epoch
    }

    fn life(&mut self, k: usize) -> &mut Life {
        let process = self.process[k];
        self.kills.lives.get_mut(&process).expect("a known process")
    }

    /// SIGKILLs node `k` and waits until it is gone; then reads the database.
    pub fn kill(&mut self, k: usize, effects: &EffectsServer, ledger: &Ledger) {
        self.nodes[k].kill();
        let epoch = self.disrupted(
            effects,
            ledger,
            &format!("after the kill of {}", node_id(k)),
        );
        self.life(k).killed = Some(epoch);
    }

    /// SIGSTOPs node `k`; then reads the database.
    pub fn freeze(&mut self, k: usize, effects: &EffectsServer, ledger: &Ledger) {
        self.nodes[k].freeze();
        let epoch = self.disrupted(effects, ledger, &format!("{} frozen", node_id(k)));
        self.life(k).frozen = Some((epoch, epoch));
    }

    /// Reads the database, then SIGCONTs node `k`.
    pub fn thaw(&mut self, k: usize, effects: &EffectsServer, ledger: &Ledger) {
        let epoch = self.disrupted(effects, ledger, &format!("before {} thaws", node_id(k)));
        if let Some((_, thawed)) = &mut self.life(k).frozen {
            *thawed = epoch;
        }
        self.nodes[k].thaw();
    }

    /// Starts node `k` again, with the same `--node-id` on the same database and port, as a
    /// new host process; its number.
    pub fn restart(&mut self, k: usize, effects: &EffectsServer) -> u64 {
        let process = self.kills.lives.keys().max().map_or(0, |p| p + 1);
        let life = Life {
            started: effects.incarnation(),
            ..Life::default()
        };
        self.kills.lives.insert(process, life);
        self.process[k] = process;
        let node = &mut self.nodes[k];
        node.set_env("EffectsIncarnation", &process.to_string());
        node.restart();
        process
    }
}

/// A query and where its answer goes.
struct Job {
    sql: String,
    reply: std::sync::mpsc::SyncSender<Result<Vec<Vec<Option<String>>>, String>>,
}

/// Reads the database on a thread (and a connection) of its own, so that synchronous code,
/// such as the effects server's check, can ask it in the middle of an async handler. Every
/// value comes back as text (PostgreSQL's simple query protocol).
#[derive(Clone)]
pub struct PgReader {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
}

impl PgReader {
    pub fn connect(url: &str) -> Self {
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let url = url.to_string();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the reader");
            runtime.block_on(async move {
                let mut client: Option<tokio_postgres::Client> = None;
                // Ends when every handle to the reader is gone.
                while let Some(job) = queue.recv().await {
                    if client.as_ref().is_none_or(|c| c.is_closed()) {
                        let connected = tokio::time::timeout(
                            QUERY_TIMEOUT,
                            tokio_postgres::connect(&url, tokio_postgres::NoTls),
                        )
                        .await;
                        client = match connected {
                            Ok(Ok((c, connection))) => {
                                tokio::spawn(connection);
                                Some(c)
                            }
                            Ok(Err(e)) => {
                                let _ = job.reply.send(Err(format!("connecting: {e}")));
                                continue;
                            }
                            Err(_) => {
                                let _ = job.reply.send(Err("connecting: timed out".into()));
                                continue;
                            }
                        };
                    }
                    let c = client.as_ref().expect("connected");
                    let answer = tokio::time::timeout(QUERY_TIMEOUT, c.simple_query(&job.sql));
                    let answer = match answer.await {
                        Err(_) => Err(format!("no answer within {QUERY_TIMEOUT:?}")),
                        Ok(Err(e)) => Err(format!("{e:?}")),
                        Ok(Ok(messages)) => Ok(messages
                            .into_iter()
                            .filter_map(|m| match m {
                                SimpleQueryMessage::Row(row) => Some(
                                    (0..row.len())
                                        .map(|i| row.get(i).map(str::to_string))
                                        .collect(),
                                ),
                                _ => None,
                            })
                            .collect()),
                    };
                    let _ = job.reply.send(answer);
                }
            });
        });
        Self { jobs }
    }

    /// The rows `sql` selects, each value as text (`None` for NULL).
    pub fn rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let job = Job {
            sql: sql.to_string(),
            reply,
        };
        self.jobs.send(job).map_err(|_| "the reader has stopped")?;
        match answer.recv_timeout(QUERY_TIMEOUT * 3) {
            Ok(rows) => rows.map_err(|e| format!("{sql}: {e}")),
            Err(_) => Err(format!("{sql}: the reader did not answer")),
        }
    }

    /// The rows `sql` selects, NULLs as empty strings; fails the test if it cannot.
    pub fn text(&self, sql: &str) -> Vec<Vec<String>> {
        let rows = self.rows(sql).unwrap_or_else(|e| panic!("{e}"));
        rows.into_iter()
            .map(|r| r.into_iter().map(Option::unwrap_or_default).collect())
            .collect()
    }

    /// What the database holds, as `load::snapshot` reads it from SQLite.
    pub fn snapshot(&self) -> Snapshot {
        let ids = self.text("SELECT id FROM instances");
        let arrivals = self.text(ARRIVALS_SQL);
        let column = |sql: &str| self.text(sql).into_iter().map(|mut r| r.remove(0));
        Snapshot::from_rows(
            ids.into_iter().map(|mut r| r.remove(0)),
            arrivals.into_iter().map(|mut r| {
                let event = r.remove(1);
                (r.remove(0), event)
            }),
        )
        .with_entities(column(SIGNALS_SQL), column(COMPONENTS_SQL))
    }

    /// Whether the call with idempotency key `{instance}/{handle}` has its completion
    /// recorded; `None` if the database did not answer.
    pub fn is_recorded(&self, key: &str) -> Option<bool> {
        let (instance, handle) = split_key(key);
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM history WHERE instance_id = {}
                 AND event::jsonb ->> 'type' = 'activity_completed'
                 AND event::jsonb ->> 'handle' = '{handle}')",
            quote(instance)
        );
        let rows = self.rows(&sql).ok()?;
        Some(rows.first()?.first()?.as_deref() == Some("t"))
    }

    /// Every history row: `instance_id, seq, event`.
    pub fn histories(&self) -> Vec<(String, i64, String)> {
        self.text("SELECT instance_id, seq, event FROM history ORDER BY instance_id, seq")
            .into_iter()
            .map(|r| {
                let seq = r[1].parse().expect("seq is a number");
                (r[0].clone(), seq, r[2].clone())
            })
            .collect()
    }

    /// The node holding each of the instances `ids` (the `owner` column), `None` for none.
    pub fn owners(&self, ids: &[&str]) -> Vec<Option<String>> {
        ids.iter()
            .map(|id| {
                let sql = format!("SELECT owner FROM instances WHERE id = {}", quote(id));
                let rows = self.rows(&sql).unwrap_or_else(|e| panic!("{e}"));
                rows.first().and_then(|r| r[0].clone())
            })
            .collect()
    }
}

/// `text` as an SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
