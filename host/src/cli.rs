//! The command line: `weft serve` runs the host; the other commands talk to one over HTTP.
//! Data goes to stdout, diagnostics to stderr; the exit code is 0 on success, 1 on failure,
//! 2 on a usage error.

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use weft::api::{self, AppState};
use weft::clock::{Clock, ManualClock, SystemClock};
use weft::runtime::{Runtime, Settings};
use weft::store::{Store, Synchronous};

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "Durable workflows in WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The bearer token: the one `serve` requires, or the one clients present.
    #[arg(long, env = "WEFT_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// The weft server clients talk to.
    #[arg(
        long,
        env = "WEFT_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the host.
    Serve {
        /// The SQLite database file.
        #[arg(long, default_value = "weft.db")]
        db: PathBuf,
        /// Address to listen on. Without a token, only a loopback address is allowed (and a
        /// token is generated and printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// A directory of `.wasm` components to register at start.
        #[arg(long)]
        components: Option<PathBuf>,
        /// Freeze time; move it with `weft clock advance` (for tests and demos).
        #[arg(long)]
        manual_clock: bool,
        /// With --manual-clock: the frozen start time (RFC 3339), default now.
        #[arg(long, requires = "manual_clock")]
        start_time: Option<String>,
        /// Where compiled components are cached (default: `.weft-cache` beside the database).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Seconds a waiting instance stays in memory; 0 evicts it at every wait.
        #[arg(long, default_value_t = 60.0)]
        idle_timeout: f64,
        /// At most this many waiting instances stay in memory.
        #[arg(long, default_value_t = 1_000)]
        max_hot: usize,
        /// The base URL put into management links and callback URLs (default: `http://LISTEN`).
        #[arg(long)]
        public_url: Option<String>,
        /// Commit durability: `full` survives power loss, `normal` a process crash.
        #[arg(long, value_enum, default_value_t = Synchronous::Full)]
        synchronous: Synchronous,
        /// The largest request body accepted, in bytes (larger ones get 413).
        #[arg(long, default_value_t = api::MAX_BODY)]
        max_body: usize,
        /// Seconds a request body may stop arriving before the request is answered 408.
        #[arg(long, default_value_t = api::limits::BODY_TIMEOUT.as_secs_f64())]
        body_timeout: f64,
        /// The most bytes the database file may grow to; writes past it fail with 503 and keep
        /// nothing (default: no limit but the disk's).
        #[arg(long)]
        max_db_size: Option<u64>,
        #[command(flatten)]
        limits: GuestLimits,
    },
    /// Starts an orchestration; prints its id.
    Start {
        name: String,
        /// The input, as JSON (default: null).
        input: Option<String>,
        /// The instance id (default: a new one).
        #[arg(long)]
        id: Option<String>,
    },
    /// Lists instances, oldest first.
    List {
        /// Only these statuses (comma-separated, e.g. Running,Suspended).
        #[arg(long)]
        status: Option<String>,
        /// Only this orchestration.
        #[arg(long)]
        name: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        top: u32,
    },
    /// Prints an instance's status.
    Status {
        id: String,
        /// Include the history (with --json).
        #[arg(long)]
        history: bool,
    },
    /// Prints an instance's history as a timeline.
    History { id: String },
    /// Raises an event to an instance.
    Raise {
        id: String,
        event: String,
        /// The payload, as JSON (default: null).
        payload: Option<String>,
    },
    /// Terminates an instance, and its running sub-orchestrations.
    Terminate {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        /// Keep its sub-orchestrations running.
        #[arg(long)]
        no_recursive: bool,
    },
    /// Suspends an instance: arrivals are recorded, not delivered, until it resumes.
    Suspend {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resumes a suspended instance.
    Resume {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deletes an ended instance, its history and its ended sub-orchestrations.
    Purge {
        id: String,
        /// Terminate it first if it is still running.
        #[arg(long)]
        force: bool,
    },
    /// Measures the host in-process on temporary databases: throughput, event latency, memory
    /// of waiting instances, cold replay, fan-out, and the disk's own append rate.
    Bench {
        /// The directory holding the example components (hello_sequence.wasm).
        #[arg(long, default_value = "target/components")]
        components: PathBuf,
        /// Every scenario at a small size.
        #[arg(long)]
        quick: bool,
        /// Only these scenarios (limit, sequence, fanout, event, replay, waiting).
        #[arg(long = "scenario")]
        scenarios: Vec<String>,
        #[arg(long, value_enum, default_value_t = Synchronous::Full)]
        synchronous: Synchronous,
        /// Instances in `sequence`.
        #[arg(long)]
        sequence: Option<usize>,
        /// Instances in `waiting`.
        #[arg(long)]
        waiting: Option<usize>,
        /// Instances in flight at once in `sequence`.
        #[arg(long)]
        concurrency: Option<usize>,
    },
    /// Moves a `--manual-clock` server's time.
    Clock {
        #[command(subcommand)]
        command: ClockCommand,
    },
    /// Deploys a component: new instances of its orchestrations start on it.
    Deploy {
        /// The `.wasm` file.
        file: PathBuf,
        /// Deploy nothing: replay the running instances of its orchestrations against it and
        /// say which would diverge (exit 1 if any would).
        #[arg(long)]
        check: bool,
    },
    /// Moves a running instance to another deployed component, if its history replays there.
    Upgrade {
        id: String,
        /// The component's digest (as `deploy` printed it).
        #[arg(long)]
        to: String,
    },
    /// Looks at entities and sends them operations.
    Entity {
        #[command(subcommand)]
        command: EntityCommand,
    },
}

/// What one guest may use; going past a limit fails the instance (or the activity attempt, or
/// the entity operation) with a failure of that kind.
#[derive(clap::Args)]
struct GuestLimits {
    /// Seconds an orchestration or entity operation may run without waiting
    /// (`deadline_exceeded`).
    #[arg(long, default_value_t = 10.0)]
    activation_deadline: f64,
    /// Seconds one activity attempt may take (`timeout`; retried by its policy).
    #[arg(long, default_value_t = 300.0)]
    activity_timeout: f64,
    /// MiB of linear memory one guest may use (`memory_limit`).
    #[arg(long, default_value_t = 64)]
    max_memory: usize,
    /// Events one run's history may hold (`history_limit`).
    #[arg(long, default_value_t = 100_000)]
    max_history: usize,
    /// Bytes of one input, output, custom status or entity state (`payload_too_large`).
    #[arg(long, default_value_t = 1 << 20)]
    max_payload: usize,
}

#[derive(Subcommand)]
enum EntityCommand {
    /// Prints an entity's state (as JSON).
    Get { name: String, key: String },
    /// Prints the operations applied to an entity, oldest first.
    History { name: String, key: String },
    /// Sends an operation to an entity, one way.
    Signal {
        name: String,
        key: String,
        operation: String,
        /// The input, as JSON (default: null).
        input: Option<String>,
    },
    /// Lists entities.
    List {
        /// Only entities of this name.
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value_t = 100)]
        top: u32,
    },
    /// Deletes an entity's state and operation log.
    Purge { name: String, key: String },
}

#[derive(Subcommand)]
enum ClockCommand {
    /// Moves time forward by SECONDS and fires the timers that became due.
    Advance { seconds: f64 },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Colour only on a terminal, and not when NO_COLOR is set (to anything but "").
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "weft=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("weft: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client {
        http: reqwest::Client::new(),
        server: cli.server.trim_end_matches('/').to_string(),
        token: cli.token.clone(),
    };
    let json = cli.json;
    match cli.command {
        Command::Serve {
            db,
            listen,
            components,
            manual_clock,
            start_time,
            cache_dir,
            idle_timeout,
            max_hot,
            public_url,
            synchronous,
            max_body,
            body_timeout,
            max_db_size,
            limits,
        } => {
            serve(ServeArgs {
                max_hot,
                max_body,
                body_timeout,
                max_db_size,
                limits,
                db,
                listen,
                components,
                manual_clock,
                start_time,
                cache_dir,
                idle_timeout,
                public_url,
                synchronous,
                token: cli.token,
            })
            .await
        }
        Command::Start { name, input, id } => {
            let mut path = format!("/orchestrations/{}", segment(&name));
            if let Some(id) = id {
                path.push_str(&format!("?instanceId={}", segment(&id)));
            }
            let v = client.post(&path, &json_arg(input.as_deref())?).await?;
            if json {
                println!("{v}");
            } else {
                println!("{}", v["id"].as_str().unwrap_or_default());
            }
            Ok(())
        }
        Command::List { status, name, top } => {
            let mut query = vec![("top", top.to_string())];
            if let Some(s) = status {
                query.push(("runtimeStatus", s));
            }
            if let Some(n) = name {
                query.push(("name", n));
            }
            let v = client.get("/instances", &query).await?;
            if json {
                println!("{v}");
                return Ok(());
            }
            println!("{:<34} {:<24} {:<11} CREATED", "ID", "NAME", "STATUS");
            for i in v["instances"].as_array().into_iter().flatten() {
                println!(
                    "{:<34} {:<24} {:<11} {}",
                    i["instanceId"].as_str().unwrap_or_default(),
                    i["name"].as_str().unwrap_or_default(),
                    i["runtimeStatus"].as_str().unwrap_or_default(),
                    i["createdTime"].as_str().unwrap_or_default(),
                );
            }
            Ok(())
        }
        Command::Status { id, history } => {
            let query = if history {
                vec![("showHistory", "true".to_string())]
            } else {
                vec![]
            };
            let v = client
                .get(&format!("/instances/{}", segment(&id)), &query)
                .await?;
            if json {
                println!("{v}");
                return Ok(());
            }
            for key in [
                "instanceId",
                "name",
                "runtimeStatus",
                "input",
                "output",
                "customStatus",
                "createdTime",
                "lastUpdatedTime",
            ] {
                let value = match &v[key] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                println!("{key:<16} {value}");
            }
            Ok(())
        }
        Command::History { id } => {
            let v = client
                .get(
                    &format!("/instances/{}", segment(&id)),
                    &[("showHistory", "true".to_string())],
                )
                .await?;
            let events = v["historyEvents"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::Value::Array(events));
            } else {
                for e in &events {
                    println!("{}", timeline_line(e));
                }
            }
            Ok(())
        }
        Command::Raise { id, event, payload } => {
            let path = format!("/instances/{}/raiseEvent/{}", segment(&id), segment(&event));
            client.post(&path, &json_arg(payload.as_deref())?).await?;
            Ok(())
        }
        Command::Terminate {
            id,
            reason,
            no_recursive,
        } => {
            let recursive = (!no_recursive).to_string();
            client
                .lifecycle(&id, "terminate", reason, &[("recursive", recursive)])
                .await
        }
        Command::Suspend { id, reason } => client.lifecycle(&id, "suspend", reason, &[]).await,
        Command::Resume { id, reason } => client.lifecycle(&id, "resume", reason, &[]).await,
        Command::Purge { id, force } => {
            let path = format!("/instances/{}?force={force}", segment(&id));
            let r = client.delete(&path).await?;
            if json {
                println!("{r}");
            } else {
                println!("{} instances deleted", r["instancesDeleted"]);
            }
            Ok(())
        }
        Command::Bench {
            components,
            quick,
            scenarios,
            synchronous,
            sequence,
            waiting,
            concurrency,
        } => {
            let mut opts = crate::bench::Options::full(components, synchronous);
            if quick {
                opts = opts.quick();
            }
            opts.scenarios = scenarios;
            if let Some(n) = sequence {
                opts.sequence = n;
            }
            if let Some(n) = waiting {
                opts.waiting = n;
            }
            if let Some(n) = concurrency {
                opts.concurrency = n;
            }
            let report = crate::bench::run(&opts).await?;
            if json {
                println!("{report}");
            } else {
                print!("{}", crate::bench::table(&report));
            }
            Ok(())
        }
        Command::Entity { command } => entity_command(&client, command, json).await,
        Command::Deploy { file, check } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let query = if check { "?check=true" } else { "" };
            let v = client
                .post_bytes(&format!("/components{query}"), bytes)
                .await?;
            if json {
                println!("{v}");
            } else {
                println!("{}", v["digest"].as_str().unwrap_or_default());
            }
            let mut diverging = 0;
            for c in v["checks"].as_array().into_iter().flatten() {
                let id = c["instanceId"].as_str().unwrap_or_default();
                match c["divergence"].as_str() {
                    Some(d) => {
                        diverging += 1;
                        eprintln!("{id}: would diverge: {d}");
                    }
                    None if !json => println!("{id}: replays"),
                    None => {}
                }
            }
            if diverging > 0 {
                bail!("{diverging} running instance(s) would diverge on this component");
            }
            Ok(())
        }
        Command::Upgrade { id, to } => {
            let path = format!("/instances/{}/upgrade?to={}", segment(&id), segment(&to));
            let v = client.post(&path, &serde_json::Value::Null).await?;
            if json {
                println!("{v}");
            } else {
                println!(
                    "{} moved from {} to {}",
                    id,
                    v["from"].as_str().unwrap_or_default(),
                    v["to"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Clock {
            command: ClockCommand::Advance { seconds },
        } => {
            let v = client
                .post(
                    "/admin/clock/advance",
                    &serde_json::json!({ "seconds": seconds }),
                )
                .await?;
            if json {
                println!("{v}");
            } else {
                println!(
                    "now {}; timers fired for {} instances",
                    v["now"].as_str().unwrap_or_default(),
                    v["timersFired"]
                );
            }
            Ok(())
        }
    }
}

async fn entity_command(client: &Client, command: EntityCommand, json: bool) -> anyhow::Result<()> {
    let at = |name: &str, key: &str| format!("/entities/{}/{}", segment(name), segment(key));
    match command {
        EntityCommand::Get { name, key } => {
            let v = client.get(&at(&name, &key), &[]).await?;
            if json {
                println!("{v}");
            } else {
                println!("{}", serde_json::to_string_pretty(&v["state"])?);
            }
        }
        EntityCommand::History { name, key } => {
            let v = client
                .get(&format!("{}/history", at(&name, &key)), &[])
                .await?;
            let ops = v["operations"].as_array().cloned().unwrap_or_default();
            if json {
                println!("{}", serde_json::Value::Array(ops));
                return Ok(());
            }
            for op in &ops {
                let result = match (&op["output"], &op["error"]) {
                    (serde_json::Value::Null, e) if !e.is_null() => format!("error {e}"),
                    (o, _) => o.to_string(),
                };
                println!(
                    "{}  {:>4}  {:<20} {} -> {}",
                    op["time"].as_str().unwrap_or_default(),
                    op["seq"],
                    op["operation"].as_str().unwrap_or_default(),
                    shortened(&op["input"].to_string(), 60),
                    shortened(&result, 40)
                );
            }
        }
        EntityCommand::Signal {
            name,
            key,
            operation,
            input,
        } => {
            let path = format!("{}?op={}", at(&name, &key), segment(&operation));
            client.post(&path, &json_arg(input.as_deref())?).await?;
        }
        EntityCommand::List { name, top } => {
            let mut query = vec![("top", top.to_string())];
            if let Some(n) = name {
                query.push(("name", n));
            }
            let v = client.get("/entities", &query).await?;
            if json {
                println!("{v}");
                return Ok(());
            }
            println!(
                "{:<20} {:<34} {:>10} LAST MODIFIED",
                "NAME", "KEY", "OPERATIONS"
            );
            for e in v["entities"].as_array().into_iter().flatten() {
                println!(
                    "{:<20} {:<34} {:>10} {}",
                    e["name"].as_str().unwrap_or_default(),
                    e["key"].as_str().unwrap_or_default(),
                    e["operationCount"],
                    e["lastModifiedTime"].as_str().unwrap_or_default(),
                );
            }
        }
        EntityCommand::Purge { name, key } => {
            client.delete(&at(&name, &key)).await?;
        }
    }
    Ok(())
}

/// One history event as a line: time, position, event, name, short payload.
fn timeline_line(e: &serde_json::Value) -> String {
    let time = e["timestamp"].as_str().unwrap_or_default();
    let kind = e["type"].as_str().unwrap_or_default();
    let name = ["name", "event"]
        .iter()
        .find_map(|k| e[*k].as_str())
        .unwrap_or_default();
    let payload = [
        "input", "output", "payload", "error", "reason", "status", "value",
    ]
    .iter()
    .map(|k| &e[*k])
    .find(|v| !v.is_null())
    .or_else(|| e.get("completion").map(|c| &c["value"]))
    .map(|v| v.to_string())
    .unwrap_or_default();
    format!(
        "{time}  {:>4}  {kind:<22} {name:<22} {}",
        e["seq"],
        shortened(&payload, 60)
    )
}

/// At most `max` characters of `s`, with `…` when cut.
fn shortened(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Percent-encodes a path segment.
fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// An HTTP client of a weft server.
struct Client {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
}

impl Client {
    fn auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.server);
        send(self.auth(self.http.get(url).query(query))).await
    }

    async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.server);
        send(self.auth(self.http.post(url).json(body))).await
    }

    async fn post_bytes(&self, path: &str, body: Vec<u8>) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.server);
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        send(self.auth(request)).await
    }

    async fn delete(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.server);
        send(self.auth(self.http.delete(url))).await
    }

    async fn lifecycle(
        &self,
        id: &str,
        action: &str,
        reason: Option<String>,
        more: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let url = format!("{}/instances/{}/{action}", self.server, segment(id));
        let mut r = self.http.post(url).query(more);
        if let Some(reason) = reason {
            r = r.query(&[("reason", reason)]);
        }
        send(self.auth(r)).await?;
        Ok(())
    }
}

fn json_arg(arg: Option<&str>) -> anyhow::Result<serde_json::Value> {
    match arg {
        None => Ok(serde_json::Value::Null),
        Some(s) => serde_json::from_str(s).with_context(|| format!("'{s}' is not valid JSON")),
    }
}

/// Sends a request; the JSON answer, or the server's error message as the error.
async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<serde_json::Value> {
    let response = request
        .send()
        .await
        .context("cannot reach the weft server")?;
    let status = response.status();
    let text = response.text().await.context("reading the answer")?;
    let value: serde_json::Value = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    if !status.is_success() {
        let message = value["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        bail!("{} ({status})", message);
    }
    Ok(value)
}

struct ServeArgs {
    db: PathBuf,
    listen: String,
    components: Option<PathBuf>,
    manual_clock: bool,
    start_time: Option<String>,
    cache_dir: Option<PathBuf>,
    idle_timeout: f64,
    max_hot: usize,
    max_body: usize,
    body_timeout: f64,
    public_url: Option<String>,
    synchronous: Synchronous,
    token: Option<String>,
    max_db_size: Option<u64>,
    limits: GuestLimits,
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if !(args.idle_timeout.is_finite() && args.idle_timeout >= 0.0) {
        bail!("--idle-timeout must be a number of seconds, 0 or more");
    }
    let l = &args.limits;
    for (flag, secs) in [
        ("--activation-deadline", l.activation_deadline),
        ("--activity-timeout", l.activity_timeout),
        ("--body-timeout", args.body_timeout),
    ] {
        if !(secs.is_finite() && (0.01..=1e9).contains(&secs)) {
            bail!("{flag} must be a number of seconds from 0.01 to 1e9");
        }
    }
    if !(1..=4096).contains(&l.max_memory) {
        bail!("--max-memory must be from 1 to 4096 (MiB)");
    }
    if l.max_history < 10 || l.max_payload < 1024 {
        bail!("--max-history must be at least 10 and --max-payload at least 1024");
    }
    let store = Store::open_limited(&args.db, args.synchronous, args.max_db_size)
        .with_context(|| format!("opening {}", args.db.display()))?;
    let clock: Arc<dyn Clock> = if args.manual_clock {
        let start = match &args.start_time {
            Some(t) => weft::clock::parse_rfc3339(t)
                .with_context(|| format!("--start-time '{t}' is not an RFC 3339 time"))?,
            None => SystemClock.now(),
        };
        // The time a manual clock reached before a restart is kept: it never moves back.
        let now = store
            .manual_clock(start)
            .await
            .context("reading the manual clock's time")?;
        if now > start {
            tracing::info!(
                "manual clock at {} (kept from the database)",
                weft::clock::rfc3339(now)
            );
        }
        Arc::new(ManualClock::new(now))
    } else {
        Arc::new(SystemClock)
    };
    let cache_dir = args.cache_dir.unwrap_or_else(|| {
        args.db
            .parent()
            .map(|p| p.join(".weft-cache"))
            .unwrap_or_else(|| PathBuf::from(".weft-cache"))
    });
    // App settings: the server's environment, less weft's own configuration.
    let app_settings = std::env::vars()
        .filter(|(k, _)| !k.starts_with("WEFT_"))
        .collect();
    // Bind first: callback URLs carry the address.
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let token = match args.token.filter(|t| !t.is_empty()) {
        Some(t) => t,
        None if addr.ip().is_loopback() => {
            let t = uuid::Uuid::new_v4().simple().to_string();
            eprintln!("weft: no WEFT_TOKEN set; this server's token is {t}");
            t
        }
        None => bail!(
            "refusing to listen on {addr} without a token: set WEFT_TOKEN (or --token), or listen on a loopback address"
        ),
    };
    let public_url = args
        .public_url
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    let limits = &args.limits;
    let settings = Settings {
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
        app_settings,
        public_url: public_url.clone(),
        max_hot: args.max_hot,
        activation_deadline: Duration::from_secs_f64(limits.activation_deadline),
        activity_timeout: Duration::from_secs_f64(limits.activity_timeout),
        max_memory: limits.max_memory << 20,
        max_history: limits.max_history,
        max_payload: limits.max_payload,
    };
    let runtime = Runtime::new(store, clock, Some(cache_dir), settings).await?;
    if let Some(dir) = &args.components {
        for r in runtime.register_dir(dir).await? {
            tracing::info!(
                "component {}: orchestrations {:?}, activities {:?}, entities {:?}",
                r.digest.short(),
                r.orchestrations,
                r.activities,
                r.entities
            );
        }
    }
    runtime.recover().await?;
    let app = api::router(AppState {
        runtime,
        public_url: public_url.into(),
        token: token.into(),
        max_body: args.max_body,
        body_timeout: Duration::from_secs_f64(args.body_timeout),
    });
    eprintln!("weft listening on http://{addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
