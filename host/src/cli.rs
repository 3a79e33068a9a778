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
}

#[derive(clap::Args)]
struct Client {
    /// The weft server.
    #[arg(
        long,
        env = "WEFT_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the host.
    Serve {
        /// The SQLite database file.
        #[arg(long, default_value = "weft.db")]
        db: PathBuf,
        /// Address to listen on.
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
        /// The base URL put into management links (default: `http://LISTEN`).
        #[arg(long)]
        public_url: Option<String>,
        /// Commit durability: `full` survives power loss, `normal` a process crash.
        #[arg(long, value_enum, default_value_t = Synchronous::Full)]
        synchronous: Synchronous,
    },
    /// Starts an orchestration; prints its id.
    Start {
        name: String,
        /// The input, as JSON (default: null).
        input: Option<String>,
        /// The instance id (default: a new one).
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Prints an instance's status as JSON.
    Status {
        id: String,
        /// Include the history.
        #[arg(long)]
        history: bool,
        #[command(flatten)]
        client: Client,
    },
    /// Raises an event to an instance.
    Raise {
        id: String,
        event: String,
        /// The payload, as JSON (default: null).
        payload: Option<String>,
        #[command(flatten)]
        client: Client,
    },
    /// Terminates an instance.
    Terminate {
        id: String,
        #[arg(long, default_value = "terminated")]
        reason: String,
        #[command(flatten)]
        client: Client,
    },
    /// Moves a `--manual-clock` server's time.
    Clock {
        #[command(subcommand)]
        command: ClockCommand,
    },
}

#[derive(Subcommand)]
enum ClockCommand {
    /// Moves time forward by SECONDS and fires the timers that became due.
    Advance {
        seconds: f64,
        #[command(flatten)]
        client: Client,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "weft=info,warn".into()),
        )
        .with_writer(std::io::stderr)
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
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            db,
            listen,
            components,
            manual_clock,
            start_time,
            cache_dir,
            idle_timeout,
            public_url,
            synchronous,
        } => {
            serve(ServeArgs {
                db,
                listen,
                components,
                manual_clock,
                start_time,
                cache_dir,
                idle_timeout,
                public_url,
                synchronous,
            })
            .await
        }
        Command::Start {
            name,
            input,
            id,
            client,
        } => {
            let mut url = format!("{}/orchestrations/{name}", client.server);
            if let Some(id) = id {
                url.push_str(&format!("?instanceId={id}"));
            }
            let body = json_arg(input.as_deref())?;
            let v = send(reqwest::Client::new().post(url).json(&body)).await?;
            println!("{}", v["id"].as_str().unwrap_or_default());
            Ok(())
        }
        Command::Status {
            id,
            history,
            client,
        } => {
            let url = format!(
                "{}/instances/{id}{}",
                client.server,
                if history { "?showHistory=true" } else { "" }
            );
            let v = send(reqwest::Client::new().get(url)).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Command::Raise {
            id,
            event,
            payload,
            client,
        } => {
            let url = format!("{}/instances/{id}/raiseEvent/{event}", client.server);
            let body = json_arg(payload.as_deref())?;
            send(reqwest::Client::new().post(url).json(&body)).await?;
            Ok(())
        }
        Command::Terminate { id, reason, client } => {
            let url = format!("{}/instances/{id}/terminate", client.server);
            send(
                reqwest::Client::new()
                    .post(url)
                    .query(&[("reason", reason)]),
            )
            .await?;
            Ok(())
        }
        Command::Clock {
            command: ClockCommand::Advance { seconds, client },
        } => {
            let url = format!("{}/admin/clock/advance", client.server);
            let v = send(
                reqwest::Client::new()
                    .post(url)
                    .json(&serde_json::json!({ "seconds": seconds })),
            )
            .await?;
            println!("{}", serde_json::to_string(&v)?);
            Ok(())
        }
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
    public_url: Option<String>,
    synchronous: Synchronous,
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if !(args.idle_timeout.is_finite() && args.idle_timeout >= 0.0) {
        bail!("--idle-timeout must be a number of seconds, 0 or more");
    }
    let store = Store::open(&args.db, args.synchronous)
        .with_context(|| format!("opening {}", args.db.display()))?;
    let clock: Arc<dyn Clock> = if args.manual_clock {
        let start = match &args.start_time {
            Some(t) => weft::clock::parse_rfc3339(t)
                .with_context(|| format!("--start-time '{t}' is not an RFC 3339 time"))?,
            None => SystemClock.now(),
        };
        Arc::new(ManualClock::new(start))
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
    let settings = Settings {
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
        app_settings,
    };
    let runtime = Runtime::new(store, clock, Some(cache_dir), settings)?;
    if let Some(dir) = &args.components {
        for r in runtime.register_dir(dir).await? {
            tracing::info!(
                "component {}: orchestrations {:?}, activities {:?}",
                r.digest.short(),
                r.orchestrations,
                r.activities
            );
        }
    }
    runtime.resume().await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let public_url = args
        .public_url
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    let app = api::router(AppState {
        runtime,
        public_url: public_url.into(),
    });
    eprintln!("weft listening on http://{addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
