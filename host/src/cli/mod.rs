//! The command line: `weft serve` runs the host; the other commands talk to one over HTTP.
//! Data goes to stdout, diagnostics to stderr; the exit code is 0 on success, 1 on failure,
//! 2 on a usage error.

mod bundle;
mod client;
mod serve;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use client::{Client, entity_command, json_arg, segment, timeline_line};
use std::path::PathBuf;
use std::process::ExitCode;
use weft::store::Synchronous;

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
    /// How log lines are written to stderr: `text` for people, `json` (one object a line,
    /// with the instance id as a field) for a log pipeline.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the host.
    Serve(serve::ServeArgs),
    /// Starts an orchestration; prints its id.
    Start {
        name: String,
        /// The input, as JSON (default: null).
        input: Option<String>,
        /// The instance id (default: a new one).
        #[arg(long)]
        id: Option<String>,
        /// Wait this long (e.g. 5s, 250ms; at most 60s) for the instance to end, and print its
        /// final status if it does (else its id, as without --wait).
        #[arg(long, value_name = "DURATION")]
        wait: Option<String>,
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
        /// Wait this long (e.g. 5s, 250ms; at most 60s) for the instance to end first.
        #[arg(long, value_name = "DURATION")]
        wait: Option<String>,
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
    /// Starts a new instance of an ended instance's orchestration with its first input; prints
    /// the new id.
    Restart {
        id: String,
        /// The new instance's id (default: a new one).
        #[arg(long = "id", value_name = "NEW_ID")]
        new_id: Option<String>,
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
        /// Only these scenarios (limit, sequence, fanout, event, http, replay, waiting).
        #[arg(long = "scenario")]
        scenarios: Vec<String>,
        #[arg(long, value_enum, default_value_t = Synchronous::Full)]
        synchronous: Synchronous,
        /// Run on this PostgreSQL server (`postgres://USER@HOST:PORT/DB`; each scenario gets
        /// a fresh database `weft_bench_SCENARIO`) instead of temporary SQLite files.
        #[arg(long)]
        db: Option<String>,
        /// Nodes sharing the PostgreSQL database, in this process: `sequence` and `http` spread
        /// their starts over them, `event` raises through another node than the running one.
        #[arg(long, default_value_t = 1)]
        nodes: usize,
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
    /// Writes an instance's replay bundle: its component, input and every run's history, in
    /// one file `weft replay` reads.
    Export {
        id: String,
        /// The file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Replace payloads by hashes (for a bug report); the bundle replays by call kind and
        /// name.
        #[arg(long)]
        redact: bool,
    },
    /// Replays a bundle offline (no server, no database): prints each run's timeline and the
    /// guest's log lines; exits 1 at the first divergence.
    Replay {
        /// The bundle `weft export` wrote.
        file: PathBuf,
        /// Replay against this `.wasm` file instead of the bundle's component.
        #[arg(long)]
        component: Option<PathBuf>,
    },
    /// Looks at entities and sends them operations.
    Entity {
        #[command(subcommand)]
        command: EntityCommand,
    },
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
    // Only a server exports spans; the commands that talk to one make none.
    let serving = matches!(cli.command, Command::Serve(_));
    let traces = match serving.then(weft::telemetry::init).transpose() {
        Ok(t) => t.flatten(),
        Err(e) => {
            eprintln!("weft: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_logs(
        cli.log_format,
        colour,
        traces.as_ref().map(|(_, tracer)| tracer),
    );
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

/// Logs to stderr as text or JSON (filtered by `RUST_LOG`), and weft's spans to the trace
/// exporter when there is one.
fn init_logs(
    format: LogFormat,
    colour: bool,
    tracer: Option<&opentelemetry_sdk::trace::SdkTracer>,
) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "weft=info,warn".into());
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.with_ansi(colour).boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    };
    let spans = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer.clone())
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("weft", tracing::Level::INFO),
            )
    });
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(spans)
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client {
        http: reqwest::Client::new(),
        server: cli.server.trim_end_matches('/').to_string(),
        token: cli.token.clone(),
    };
    let json = cli.json;
    match cli.command {
        Command::Serve(args) => serve::serve(args, cli.token).await,
        Command::Start {
            name,
            input,
            id,
            wait,
        } => {
            let mut query = Vec::new();
            if let Some(id) = id {
                query.push(format!("instanceId={}", segment(&id)));
            }
            if let Some(wait) = wait {
                query.push(format!("waitForCompletion={}", segment(&wait)));
            }
            let mut path = format!("/orchestrations/{}", segment(&name));
            if !query.is_empty() {
                path = format!("{path}?{}", query.join("&"));
            }
            let v = client.post(&path, &json_arg(input.as_deref())?).await?;
            if json {
                println!("{v}");
            } else if v.get("runtimeStatus").is_some() {
                // It ended within the wait: the final status.
                print_status(&v);
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
        Command::Status { id, history, wait } => {
            let mut query = Vec::new();
            if history {
                query.push(("showHistory", "true".to_string()));
            }
            if let Some(wait) = wait {
                query.push(("waitForCompletion", wait));
            }
            let v = client
                .get(&format!("/instances/{}", segment(&id)), &query)
                .await?;
            if json {
                println!("{v}");
                return Ok(());
            }
            print_status(&v);
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
        Command::Restart { id, new_id } => {
            let mut path = format!("/instances/{}/restart", segment(&id));
            if let Some(new) = new_id {
                path = format!("{path}?instanceId={}", segment(&new));
            }
            let v = client.post(&path, &serde_json::Value::Null).await?;
            if json {
                println!("{v}");
            } else {
                println!("{}", v["id"].as_str().unwrap_or_default());
            }
            Ok(())
        }
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
            db,
            nodes,
            sequence,
            waiting,
            concurrency,
        } => {
            let mut opts = crate::bench::Options::full(components, synchronous);
            if nodes == 0 || (nodes > 1 && db.is_none()) {
                anyhow::bail!("--nodes takes 1, or more with --db postgres://…");
            }
            opts.nodes = nodes;
            match db.map(|d| d.parse::<weft::store::Location>()) {
                None => {}
                Some(Ok(weft::store::Location::Postgres(url))) => opts.postgres = Some(url),
                Some(Ok(weft::store::Location::Sqlite(_))) => anyhow::bail!(
                    "--db takes a postgres:// URL: without it, the benchmark runs on temporary \
                     SQLite files"
                ),
                Some(Err(e)) => anyhow::bail!("--db: {e}"),
            }
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
        Command::Export { id, output, redact } => {
            bundle::export(&client, &id, &output, redact).await
        }
        Command::Replay { file, component } => {
            bundle::replay(&file, component.as_deref(), json).await
        }
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

/// Prints an instance's status document, a field a line.
fn print_status(v: &serde_json::Value) {
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
}
