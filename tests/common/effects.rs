//! A fake "effects" service, on loopback: activities POST to it once per run, with the header
//! `idempotency-key: {instance}/{position}`. It records every hit with the host incarnation it
//! arrived in, a number the test bumps each time it has killed the host, so a test can tell
//! which run of the host made an effect.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One POST the service received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The `idempotency-key` header.
    pub key: String,
    /// The host incarnation current when the hit arrived (0 for the first process).
    pub incarnation: u64,
    /// The `activity` field of the body.
    pub activity: String,
    pub body: Value,
}

#[derive(Clone, Default)]
struct Shared {
    hits: Arc<Mutex<Vec<Hit>>>,
    incarnation: Arc<AtomicU64>,
    /// Each answer is held back 0..=this many milliseconds (varying per hit), as a real
    /// service takes its time: a kill then often lands while an activity is running.
    max_latency_ms: u64,
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
            max_latency_ms: max_ms,
            ..Shared::default()
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

    /// The current host incarnation.
    pub fn incarnation(&self) -> u64 {
        self.shared.incarnation.load(Ordering::SeqCst)
    }

    /// Call right after the host was killed (and before it starts again): hits from now on
    /// belong to the next incarnation. Returns its number.
    pub fn next_incarnation(&self) -> u64 {
        self.shared.incarnation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Every hit so far, in arrival order.
    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }
}

async fn receive(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    // Read the incarnation as the hit arrives: before it is answered, so before the activity
    // can return and its completion be recorded.
    let incarnation = shared.incarnation.load(Ordering::SeqCst);
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return StatusCode::BAD_REQUEST;
    };
    let hit = Hit {
        key,
        incarnation,
        activity: body["activity"].as_str().unwrap_or_default().to_string(),
        body,
    };
    let n = {
        let mut hits = shared.hits.lock().unwrap();
        hits.push(hit);
        hits.len() as u64
    };
    if shared.max_latency_ms > 0 {
        // A spread of latencies without a random source: the hit's number, scrambled.
        let ms = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        tokio::time::sleep(Duration::from_millis(ms % (shared.max_latency_ms + 1))).await;
    }
    StatusCode::OK
}
