//! `weft serve`: its flags, checked, and the host they start.

use anyhow::{Context as _, bail};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use weft::api::{self, AppState};
use weft::clock::{Clock, ManualClock, SystemClock};
use weft::runtime::{Runtime, Settings};
use weft::store::{Location, Store, Synchronous};

/// What `weft serve` takes.
#[derive(clap::Args)]
pub(super) struct ServeArgs {
    /// The database: a SQLite file (a path or `sqlite://PATH`), or a PostgreSQL database
    /// (`postgres://USER[:PASS]@HOST:PORT/DB`).
    #[arg(long, default_value = "weft.db")]
    db: Location,
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
    /// Commit durability: `full` survives power loss, `normal` a process crash (on
    /// PostgreSQL, `normal` commits without waiting for the server's WAL flush).
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
    /// This node's name among the nodes sharing a PostgreSQL database (letters, digits, `.`,
    /// `_`, `-`; default: host name and process id). A node restarted with the same name
    /// takes back the instances it held.
    #[arg(long)]
    node_id: Option<String>,
    /// Seconds this node's leases last without being renewed (PostgreSQL): a node that dies
    /// or freezes loses its instances to the others after this long.
    #[arg(long, default_value_t = 10.0)]
    lease: f64,
    /// Activities running at once on this node (PostgreSQL); the others wait for a node with
    /// room to claim them.
    #[arg(long, default_value_t = 100)]
    max_activities: usize,
    #[command(flatten)]
    limits: GuestLimits,
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

pub(super) async fn serve(args: ServeArgs, token: Option<String>) -> anyhow::Result<()> {
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
    if !(args.lease.is_finite() && (0.5..=3600.0).contains(&args.lease)) {
        bail!("--lease must be a number of seconds from 0.5 to 3600");
    }
    let node = args.node_id.clone().unwrap_or_else(default_node_id);
    let lease = Duration::from_secs_f64(args.lease);
    let store: Arc<dyn Store> =
        weft::store::open(&args.db, args.synchronous, args.max_db_size, &node, lease)
            .await
            .with_context(|| format!("opening {}", args.db))?;
    if store.shared() {
        tracing::info!("node {node} on {}", args.db);
    }
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
    let cache_dir = args.cache_dir.unwrap_or_else(|| match &args.db {
        Location::Sqlite(path) => path
            .parent()
            .map(|p| p.join(".weft-cache"))
            .unwrap_or_else(|| PathBuf::from(".weft-cache")),
        Location::Postgres(_) => PathBuf::from(".weft-cache"),
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
    let token = match token.filter(|t| !t.is_empty()) {
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
        lease,
        max_activities: args.max_activities.max(1),
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
        runtime: runtime.clone(),
        public_url: public_url.into(),
        token: token.into(),
        max_body: args.max_body,
        body_timeout: Duration::from_secs_f64(args.body_timeout),
    });
    eprintln!("weft listening on http://{addr}");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        })
        .await?;
    // On a shared database, what this node held goes to the others now.
    runtime.leave_cluster().await;
    Ok(())
}

/// This host's name and this process's id, as a node name.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    let host = if host.is_empty() { "weft".into() } else { host };
    format!("{host}-{}", std::process::id())
}
