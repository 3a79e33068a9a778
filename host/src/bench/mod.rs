//! `weft bench`: runs the real host in-process on temporary SQLite files (or fresh PostgreSQL
//! databases, with `--db`) with the example components, and measures throughput, latency,
//! memory and replay against what the disk allows.

#![allow(clippy::disallowed_methods, reason = "a benchmark measures wall time")]

mod database;

use anyhow::{Context as _, bail};
use database::BenchDb;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, broadcast};
use weft::api::{AppState, router};
use weft::clock::SystemClock;
use weft::history::{InstanceId, RuntimeStatus};
use weft::runtime::{Runtime, Settings};
use weft::store::Synchronous;

/// Sizes and settings of one run.
#[derive(Debug, Clone)]
pub struct Options {
    pub components: PathBuf,
    pub synchronous: Synchronous,
    /// A PostgreSQL server (`postgres://…`) to run on instead of SQLite files.
    pub postgres: Option<String>,
    /// Nodes sharing the database (PostgreSQL): `sequence` and `http` spread their starts over
    /// them, and `event` raises each event through another node than the one running it.
    pub nodes: usize,
    pub sequence: usize,
    pub concurrency: usize,
    pub fanout: usize,
    pub event: usize,
    /// Start-and-wait requests one at a time (and four times as many from 32 clients).
    pub http: usize,
    pub waiting: usize,
    pub replay_events: usize,
    pub limit_rows: usize,
    pub scenarios: Vec<String>,
}

impl Options {
    pub fn full(components: PathBuf, synchronous: Synchronous) -> Self {
        Self {
            components,
            synchronous,
            postgres: None,
            nodes: 1,
            sequence: 5_000,
            concurrency: 200,
            fanout: 1_000,
            event: 1_000,
            http: 1_000,
            waiting: 100_000,
            replay_events: 10_000,
            limit_rows: 100_000,
            scenarios: Vec::new(),
        }
    }

    /// Every scenario at a small size (for CI).
    pub fn quick(mut self) -> Self {
        self.sequence = 200;
        self.concurrency = 50;
        self.fanout = 100;
        self.event = 50;
        self.http = 50;
        self.waiting = 500;
        self.replay_events = 1_000;
        self.limit_rows = 5_000;
        self
    }

    fn wants(&self, scenario: &str) -> bool {
        self.scenarios.is_empty() || self.scenarios.iter().any(|s| s == scenario)
    }
}

/// A fresh host on its own database, with the other nodes sharing it.
struct Env {
    runtime: Runtime,
    /// Every node, `runtime` first.
    nodes: Vec<Runtime>,
    db: BenchDb,
}

impl Env {
    async fn new(
        opts: &Options,
        name: &str,
        tweak: impl FnOnce(&mut Settings),
    ) -> anyhow::Result<Self> {
        let (db, store) = BenchDb::fresh(opts.postgres.as_deref(), name, opts.synchronous).await?;
        let mut settings = Settings::default();
        tweak(&mut settings);
        let cache = std::env::temp_dir().join("weft-bench-cache");
        let mut nodes = Vec::new();
        for n in 1..=opts.nodes.max(1) {
            let store = if n == 1 {
                store.clone()
            } else {
                db.another(n).await?
            };
            let clock = Arc::new(SystemClock);
            let runtime = Runtime::new(store, clock, Some(cache.clone()), settings.clone()).await?;
            if n == 1 {
                runtime
                    .register_dir(&opts.components)
                    .await
                    .with_context(|| format!("registering {}", opts.components.display()))?;
            }
            runtime.recover().await?;
            nodes.push(runtime);
        }
        let runtime = nodes[0].clone();
        Ok(Self { runtime, nodes, db })
    }

    /// The node the `i`th request goes to.
    fn node(&self, i: usize) -> &Runtime {
        &self.nodes[i % self.nodes.len()]
    }

    /// Announces every instance that ends, on any node.
    fn subscribe_finished(&self) -> broadcast::Receiver<(InstanceId, RuntimeStatus)> {
        let (tx, rx) = broadcast::channel(1 << 16);
        for node in &self.nodes {
            let (mut from, tx) = (node.subscribe_finished(), tx.clone());
            tokio::spawn(async move {
                while let Ok(done) = from.recv().await {
                    let _ = tx.send(done);
                }
            });
        }
        rx
    }

    async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        self.db.count(sql).await
    }

    /// Waits until `sql` counts at least `n`.
    async fn until_count(&self, sql: &str, n: i64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.count(sql).await? < n {
            if Instant::now() > deadline {
                bail!("timed out waiting for {n} rows of: {sql}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// Waits for the instance `id` to end, from a subscription taken before it could.
async fn finished(
    rx: &mut broadcast::Receiver<(InstanceId, RuntimeStatus)>,
    id: &InstanceId,
) -> anyhow::Result<RuntimeStatus> {
    loop {
        match rx.recv().await {
            Ok((done, status)) if &done == id => return Ok(status),
            Ok(_) => {}
            Err(e) => bail!("lost track of finished instances: {e}"),
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Resident memory of this process, from /proc.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

async fn sequence(opts: &Options) -> anyhow::Result<(Value, f64)> {
    let env = Env::new(opts, "sequence", |_| {}).await?;
    let nodes = env.nodes.clone();
    let n = opts.sequence;
    let mut done = env.subscribe_finished();
    let permits = Arc::new(Semaphore::new(opts.concurrency));
    let started: Arc<std::sync::Mutex<HashMap<InstanceId, Instant>>> = Arc::default();
    let t0 = Instant::now();
    let starter = {
        let (permits, started) = (permits.clone(), started.clone());
        tokio::spawn(async move {
            // Starts run side by side (a client with many connections), up to the concurrency.
            let mut starts = tokio::task::JoinSet::new();
            for i in 0..n {
                permits.acquire().await?.forget();
                let id: InstanceId = format!("seq-{i}").parse()?;
                started.lock().unwrap().insert(id.clone(), Instant::now());
                let rt = nodes[i % nodes.len()].clone();
                starts.spawn(async move {
                    rt.start("hello-sequence", &Value::Null, Some(id), None)
                        .await
                });
                while let Some(r) = starts.try_join_next() {
                    r??;
                }
            }
            while let Some(r) = starts.join_next().await {
                r??;
            }
            anyhow::Ok(())
        })
    };
    let mut latencies = Vec::with_capacity(n);
    let mut failed = 0;
    while latencies.len() < n {
        let (id, status) = done.recv().await.context("finished instances")?;
        let Some(t) = started.lock().unwrap().remove(&id) else {
            continue;
        };
        if status != RuntimeStatus::Completed {
            failed += 1;
        }
        latencies.push(ms(t.elapsed()));
        permits.add_permits(1);
    }
    let elapsed = t0.elapsed();
    starter.await??;
    if failed > 0 {
        bail!("{failed} sequence instances did not complete");
    }
    latencies.sort_by(f64::total_cmp);
    let rows = env.count("SELECT count(*) FROM history").await? as f64 / n as f64 + 1.0;
    Ok((
        json!({
            "instances": n,
            "concurrency": opts.concurrency,
            "seconds": round(elapsed.as_secs_f64()),
            "instances_per_s": round(n as f64 / elapsed.as_secs_f64()),
            "p50_ms": round(percentile(&latencies, 0.5)),
            "p99_ms": round(percentile(&latencies, 0.99)),
        }),
        round(rows),
    ))
}

async fn fanout(opts: &Options) -> anyhow::Result<Value> {
    let env = Env::new(opts, "fanout", |_| {}).await?;
    let rt = &env.runtime;
    let mut done = rt.subscribe_finished();
    let id: InstanceId = "fanout".parse()?;
    let t0 = Instant::now();
    rt.start("fan-out", &json!(opts.fanout), Some(id.clone()), None)
        .await?;
    let status = finished(&mut done, &id).await?;
    let elapsed = t0.elapsed();
    if status != RuntimeStatus::Completed {
        bail!("fan-out ended {status:?}");
    }
    Ok(json!({ "activities": opts.fanout, "ms": round(ms(elapsed)) }))
}

async fn event(opts: &Options) -> anyhow::Result<Value> {
    let env = Env::new(opts, "event", |_| {}).await?;
    let rt = env.runtime.clone();
    let m = opts.event;
    for i in 0..m {
        rt.start(
            "wait-for-event",
            &Value::Null,
            Some(format!("ev-{i}").parse()?),
            None,
        )
        .await?;
    }
    env.until_count(
        "SELECT count(*) FROM instances WHERE status = 'Running'",
        m as i64,
    )
    .await?;
    // With several nodes, the event goes through another node than the one running the instance.
    let url = serve_api(env.node(1)).await?;
    let client = reqwest::Client::new();
    let mut done = env.subscribe_finished();
    let mut latencies = Vec::with_capacity(m);
    for i in 0..m {
        let id: InstanceId = format!("ev-{i}").parse()?;
        let t0 = Instant::now();
        let resp = client
            .post(format!("{url}/instances/{id}/raiseEvent/go"))
            .bearer_auth("bench")
            .json(&json!(i))
            .send()
            .await?;
        if resp.status() != 202 {
            bail!("raise answered {}", resp.status());
        }
        finished(&mut done, &id).await?;
        latencies.push(ms(t0.elapsed()));
    }
    latencies.sort_by(f64::total_cmp);
    Ok(json!({
        "instances": m,
        "p50_ms": round(percentile(&latencies, 0.5)),
        "p99_ms": round(percentile(&latencies, 0.99)),
    }))
}

/// Serves the HTTP API of `rt` on loopback, as a client would reach it; its URL.
async fn serve_api(rt: &Runtime) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = router(AppState {
        runtime: rt.clone(),
        public_url: url.clone().into(),
        token: "bench".into(),
        max_body: weft::api::MAX_BODY,
        body_timeout: weft::api::limits::BODY_TIMEOUT,
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Starts a three-activity sequence over HTTP and waits for its end in the same request
/// (`waitForCompletion`); the time it took.
async fn start_and_wait(client: &reqwest::Client, url: &str) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let resp = client
        .post(format!(
            "{url}/orchestrations/hello-sequence?waitForCompletion=60s"
        ))
        .bearer_auth("bench")
        .json(&Value::Null)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if status != 200 || body["runtimeStatus"] != "Completed" {
        bail!("start-and-wait answered {status}: {body}");
    }
    Ok(t0.elapsed())
}

/// Start-and-wait over HTTP: one client at a time (latency), then [`HTTP_CLIENTS`] at once
/// (throughput).
async fn http(opts: &Options) -> anyhow::Result<(Value, Value)> {
    let env = Env::new(opts, "http", |_| {}).await?;
    let mut urls = Vec::new();
    for node in &env.nodes {
        urls.push(serve_api(node).await?);
    }
    let url = urls[0].clone();
    let client = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(opts.http);
    for _ in 0..opts.http {
        latencies.push(ms(start_and_wait(&client, &url).await?));
    }
    latencies.sort_by(f64::total_cmp);
    let latency = json!({
        "instances": opts.http,
        "p50_ms": round(percentile(&latencies, 0.5)),
        "p99_ms": round(percentile(&latencies, 0.99)),
    });
    let per_client = (opts.http * 4).div_ceil(HTTP_CLIENTS);
    let t0 = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..HTTP_CLIENTS {
        let (client, url) = (client.clone(), urls[i % urls.len()].clone());
        clients.spawn(async move {
            for _ in 0..per_client {
                start_and_wait(&client, &url).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = clients.join_next().await {
        r??;
    }
    let n = per_client * HTTP_CLIENTS;
    let throughput = json!({
        "clients": HTTP_CLIENTS,
        "instances": n,
        "instances_per_s": round(n as f64 / t0.elapsed().as_secs_f64()),
    });
    Ok((latency, throughput))
}

/// How many HTTP clients the throughput run has.
const HTTP_CLIENTS: usize = 32;

async fn waiting(opts: &Options) -> anyhow::Result<Value> {
    let env = Env::new(opts, "waiting", |s| s.max_hot = 1_000).await?;
    let rt = env.runtime.clone();
    let w = opts.waiting;
    let before = rss_bytes();
    let t0 = Instant::now();
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(200)));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..w {
        let permit = permits.clone().acquire_owned().await?;
        let rt = rt.clone();
        tasks.spawn(async move {
            let id: InstanceId = format!("w-{i}").parse()?;
            rt.start("wait-for-event", &Value::Null, Some(id), None)
                .await?;
            drop(permit);
            anyhow::Ok(())
        });
        while let Some(r) = tasks.try_join_next() {
            r??;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    env.until_count(
        "SELECT count(*) FROM instances WHERE status = 'Running'",
        w as i64,
    )
    .await?;
    let started = t0.elapsed();
    // Let the instances over the hot bound leave memory.
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt.hot_instances() > 1_001 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = rss_bytes();
    Ok(json!({
        "instances": w,
        "rss_bytes": after,
        "rss_growth_bytes": after.saturating_sub(before),
        "bytes_per_instance": after.saturating_sub(before) / w.max(1) as u64,
        "hot_instances": rt.hot_instances(),
        "start_seconds": round(started.as_secs_f64()),
    }))
}

async fn replay(opts: &Options) -> anyhow::Result<Value> {
    // Hot while it fans out; evicted a second after it starts waiting, so the wake-up below
    // replays the whole history.
    let env = Env::new(opts, "replay", |s| s.idle_timeout = Duration::from_secs(1)).await?;
    let rt = env.runtime.clone();
    let id: InstanceId = "long".parse()?;
    // Each activity adds three events: scheduled, completed, and the await that took it.
    let activities = opts.replay_events / 3;
    rt.start(
        "fan-out-then-wait",
        &json!(activities),
        Some(id.clone()),
        None,
    )
    .await?;
    env.until_count(
        "SELECT count(*) FROM history WHERE instance_id = 'long' AND event LIKE '{\"type\":\"event_wait_created\"%'",
        1,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while rt.hot_instances() > 0 {
        if Instant::now() > deadline {
            bail!("the instance was not evicted");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let events = env
        .count("SELECT count(*) FROM history WHERE instance_id = 'long'")
        .await?;
    let mut done = rt.subscribe_finished();
    let t0 = Instant::now();
    rt.raise_event(&id, "go", &Value::Null).await?;
    finished(&mut done, &id).await?;
    Ok(json!({ "events": events, "ms": round(ms(t0.elapsed())) }))
}

/// The raw durable-append rate of the same SQLite settings: one row per commit, and batched.
fn limit(opts: &Options) -> anyhow::Result<Value> {
    let dir = std::env::temp_dir().join(format!("weft-bench-{}-limit", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = limit_in(&dir, opts);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn limit_in(dir: &Path, opts: &Options) -> anyhow::Result<Value> {
    let limit = weft::store::sqlite::commit_limit(
        &dir.join("limit.db"),
        opts.synchronous,
        opts.limit_rows,
    )?;
    Ok(json!({
        "single_commits_per_s": round(limit.single_commits_per_s),
        "batched_rows_per_s": round(limit.batched_rows_per_s),
        "batch_rows": limit.batch_rows,
    }))
}

/// Runs the chosen scenarios; the report as one JSON object.
pub async fn run(opts: &Options) -> anyhow::Result<Value> {
    let synchronous = match opts.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
        Synchronous::Off => "OFF",
    };
    let backend = if opts.postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let mut report = json!({ "synchronous": synchronous, "backend": backend, "nodes": opts.nodes });
    // The raw append rate is measured on SQLite's settings; on PostgreSQL the server's own
    // tools (pgbench) say what it allows.
    if opts.wants("limit") && opts.postgres.is_none() {
        eprintln!("bench: limit");
        report["limit"] = limit(opts)?;
    }
    if opts.wants("sequence") {
        eprintln!("bench: sequence ({} instances)", opts.sequence);
        let (v, rows) = sequence(opts).await?;
        report["sequence"] = v;
        report["rows_per_sequence_instance"] = json!(rows);
    }
    if opts.wants("fanout") {
        eprintln!("bench: fanout ({} activities)", opts.fanout);
        report["fanout"] = fanout(opts).await?;
    }
    if opts.wants("event") {
        eprintln!("bench: event ({} instances)", opts.event);
        report["event"] = event(opts).await?;
    }
    if opts.wants("http") {
        eprintln!("bench: http ({} start-and-wait requests)", opts.http);
        let (latency, throughput) = http(opts).await?;
        report["latency"] = latency;
        report["http"] = throughput;
    }
    if opts.wants("replay") {
        eprintln!("bench: replay ({} events)", opts.replay_events);
        report["replay"] = replay(opts).await?;
    }
    if opts.wants("waiting") {
        eprintln!("bench: waiting ({} instances)", opts.waiting);
        report["waiting"] = waiting(opts).await?;
    }
    Ok(report)
}

/// The report as a table for people.
pub fn table(r: &Value) -> String {
    let mut out = format!(
        "weft bench ({}, {} node(s), synchronous={})\n",
        r["backend"].as_str().unwrap_or("?"),
        r["nodes"].as_u64().unwrap_or(1),
        r["synchronous"].as_str().unwrap_or("?")
    );
    let line = |out: &mut String, name: &str, figures: String| {
        out.push_str(&format!("  {name:<10} {figures}\n"));
    };
    if let Some(l) = r.get("limit") {
        line(
            &mut out,
            "limit",
            format!(
                "{} single-row commits/s, {} rows/s in batches of {}",
                l["single_commits_per_s"], l["batched_rows_per_s"], l["batch_rows"]
            ),
        );
    }
    if let Some(s) = r.get("sequence") {
        let rows = r["rows_per_sequence_instance"].as_f64().unwrap_or(0.0);
        let disk = r["limit"]["batched_rows_per_s"].as_f64().unwrap_or(0.0);
        let share = if rows > 0.0 && disk > 0.0 {
            format!(
                " ({:.0} % of the disk's {:.0}/s at {rows} rows each)",
                100.0 * s["instances_per_s"].as_f64().unwrap_or(0.0) / (disk / rows),
                disk / rows
            )
        } else {
            String::new()
        };
        line(
            &mut out,
            "sequence",
            format!(
                "{} instances: {} instances/s{share}, p50 {} ms, p99 {} ms",
                s["instances"], s["instances_per_s"], s["p50_ms"], s["p99_ms"]
            ),
        );
    }
    if let Some(f) = r.get("fanout") {
        line(
            &mut out,
            "fanout",
            format!("{} activities joined in {} ms", f["activities"], f["ms"]),
        );
    }
    if let Some(e) = r.get("event") {
        line(
            &mut out,
            "event",
            format!(
                "{} raises over HTTP: p50 {} ms, p99 {} ms to Completed",
                e["instances"], e["p50_ms"], e["p99_ms"]
            ),
        );
    }
    if let Some(l) = r.get("latency") {
        line(
            &mut out,
            "latency",
            format!(
                "{} start-and-wait sequences over HTTP, one at a time: p50 {} ms, p99 {} ms",
                l["instances"], l["p50_ms"], l["p99_ms"]
            ),
        );
    }
    if let Some(h) = r.get("http") {
        line(
            &mut out,
            "http",
            format!(
                "{} start-and-wait sequences from {} clients: {} instances/s",
                h["instances"], h["clients"], h["instances_per_s"]
            ),
        );
    }
    if let Some(p) = r.get("replay") {
        line(
            &mut out,
            "replay",
            format!("{} events replayed cold in {} ms", p["events"], p["ms"]),
        );
    }
    if let Some(w) = r.get("waiting") {
        line(
            &mut out,
            "waiting",
            format!(
                "{} waiting instances: {} MiB resident, {} bytes each",
                w["instances"],
                w["rss_bytes"].as_u64().unwrap_or(0) / (1 << 20),
                w["bytes_per_instance"]
            ),
        );
    }
    out
}
