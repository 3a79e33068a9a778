//! A fake "effects" service, on loopback: activities POST to it once per run, with the header
//! `idempotency-key: {instance}/{position}` and, when the test gives each host process its
//! number (app setting `EffectsIncarnation`), `incarnation: N`. It records every hit with the
//! incarnation that made it and the one current when it arrived (a number the test bumps each
//! time it has killed the host), and whether the call's completion was already recorded when
//! the hit arrived (asked of a check the test installs). It can also hold one hit unanswered
//! while the test kills the host, so that kill lands while an activity is in flight.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// One POST the service received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The `idempotency-key` header.
    pub key: String,
    /// The host incarnation that made the hit: its `incarnation` header, else the one current
    /// when it arrived (0 for the first process).
    pub incarnation: u64,
    /// The incarnation current when the hit arrived: later than `incarnation` for a request
    /// a killed process sent and the service read only after the kill.
    pub arrived_in: u64,
    /// What the check said as the hit arrived (before it was answered): `Some(true)` if the
    /// call's completion was already recorded; `None` without a check, or if it failed.
    pub already_recorded: Option<bool>,
    /// The `activity` field of the body.
    pub activity: String,
    pub body: Value,
}

/// Tells whether the completion of the call with this idempotency key is recorded.
type Check = Box<dyn Fn(&str) -> Option<bool> + Send + Sync>;

#[derive(Default)]
struct Gate {
    /// The next hit is to be held.
    armed: bool,
    /// Only a hit from this incarnation (host process), if set.
    from: Option<u64>,
    /// What lets the held hit go.
    held: Option<oneshot::Sender<()>>,
}

#[derive(Clone)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    incarnation: Arc<AtomicU64>,
    /// Each answer is held back 0..=this many milliseconds (varying per hit), as a real
    /// service takes its time: a kill then often lands while an activity is running.
    max_latency_ms: u64,
    check: Arc<OnceLock<Check>>,
    gate: Arc<Mutex<Gate>>,
    /// The hit being held, if any.
    held: Arc<watch::Sender<Option<Hit>>>,
}

pub struct EffectsServer {
    /// Where effects are POSTed.
    pub url: String,
    shared: Shared,
}

impl EffectsServer {
    /// A service that answers at once.
    pub async fn start() -> Self {
        Self::with_latency(0).await
    }

    /// A service that answers each hit after 0 to `max_ms` milliseconds.
    pub async fn with_latency(max_ms: u64) -> Self {
        let shared = Shared {
            hits: Arc::default(),
            incarnation: Arc::default(),
            max_latency_ms: max_ms,
            check: Arc::default(),
            gate: Arc::default(),
            held: Arc::new(watch::Sender::new(None)),
        };
        let app = Router::new()
            .route("/effects", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/effects", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, shared }
    }

    /// The app settings `weft serve` needs for activities to reach this service.
    pub fn settings(&self) -> Vec<(String, String)> {
        vec![("EffectsUrl".into(), self.url.clone())]
    }

    /// Installs the check every later hit is put to as it arrives, before it is answered (so
    /// before the activity can return and its own completion be recorded). Once only.
    pub fn check_recorded(&self, check: impl Fn(&str) -> Option<bool> + Send + Sync + 'static) {
        if self.shared.check.set(Box::new(check)).is_err() {
            panic!("the effects server has a check already");
        }
    }

    /// The current host incarnation.
    pub fn incarnation(&self) -> u64 {
        self.shared.incarnation.load(Ordering::SeqCst)
    }

    /// Call right after the host was killed (and before it starts again): hits from now on
    /// arrive in the next incarnation. Returns its number.
    pub fn next_incarnation(&self) -> u64 {
        self.shared.incarnation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Every hit so far, in arrival order.
    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Holds the next hit unanswered until [`EffectsServer::release`]: the activity that made
    /// it cannot return meanwhile, so its completion cannot be recorded.
    pub fn hold_next(&self) {
        let mut gate = self.shared.gate.lock().unwrap();
        gate.armed = true;
        gate.from = None;
    }

    /// Like [`EffectsServer::hold_next`], for the next hit made by host process `incarnation`
    /// (the others pass).
    pub fn hold_next_from(&self, incarnation: u64) {
        let mut gate = self.shared.gate.lock().unwrap();
        gate.armed = true;
        gate.from = Some(incarnation);
    }

    /// Waits at most `within` for the hit [`EffectsServer::hold_next`] asked for; the hit
    /// being held, or `None` if none arrived in time.
    pub async fn held(&self, within: Duration) -> Option<Hit> {
        let mut held = self.shared.held.subscribe();
        let waited = tokio::time::timeout(within, held.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(hit)) => hit.clone(),
            _ => None,
        }
    }

    /// Answers the held hit, if any, and holds no more.
    pub fn release(&self) {
        let mut gate = self.shared.gate.lock().unwrap();
        gate.armed = false;
        if let Some(go) = gate.held.take() {
            let _ = go.send(());
        }
        self.shared.held.send_replace(None);
    }
}

async fn receive(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    // Read the incarnation as the hit arrives: before it is answered, so before the activity
    // can return and its completion be recorded.
    let arrived_in = shared.incarnation.load(Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let Some(key) = header("idempotency-key") else {
        return StatusCode::BAD_REQUEST;
    };
    let incarnation = match header("incarnation").map(|v| v.parse()) {
        Some(Ok(n)) => n,
        Some(Err(_)) => return StatusCode::BAD_REQUEST,
        None => arrived_in,
    };
    let already_recorded = shared.check.get().and_then(|check| check(&key));
    let hit = Hit {
        key,
        incarnation,
        arrived_in,
        already_recorded,
        activity: body["activity"].as_str().unwrap_or_default().to_string(),
        body,
    };
    let n = {
        let mut hits = shared.hits.lock().unwrap();
        hits.push(hit.clone());
        hits.len() as u64
    };
    let release = {
        let mut gate = shared.gate.lock().unwrap();
        if gate.armed && gate.held.is_none() && gate.from.is_none_or(|n| n == incarnation) {
            let (go, wait) = oneshot::channel();
            gate.held = Some(go);
            shared.held.send_replace(Some(hit));
            Some(wait)
        } else {
            None
        }
    };
    if let Some(wait) = release {
        // Answered when released; by then the test has usually killed the process that asked.
        let _ = wait.await;
        return StatusCode::OK;
    }
    if shared.max_latency_ms > 0 {
        // A spread of latencies without a random source: the hit's number, scrambled.
        let ms = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        tokio::time::sleep(Duration::from_millis(ms % (shared.max_latency_ms + 1))).await;
    }
    StatusCode::OK
}
