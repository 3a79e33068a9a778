//! A fake long-running job service, on loopback: takes jobs by POST, answers each as the test
//! planned, and calls back through the callback URL the job carried — at once, twice, or when
//! the test says so (late, after the clock moved, after a restart).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How the service treats one job POST (in the order they arrive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Answer with this status and do not take the job (503: busy; 400: rejected).
    Refuse(u16),
    /// Take the job (202) and never call back on its own.
    Silent,
    /// Take the job and call back at once.
    CallBack { success: bool },
    /// Take the job and call back twice, with success.
    Twice,
}

/// One POST the service received.
#[derive(Debug, Clone)]
pub struct Received {
    pub attempt_id: String,
    pub callback_url: String,
    pub payload: Value,
    pub idempotency_key: Option<String>,
    /// The W3C trace context the request carried.
    pub traceparent: Option<String>,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Clone, Default)]
struct Shared {
    plans: Arc<Mutex<VecDeque<Plan>>>,
    received: Arc<Mutex<Vec<Received>>>,
    /// Statuses of the callbacks the service made on its own.
    callbacks: Arc<Mutex<Vec<u16>>>,
}

pub struct JobService {
    /// Where jobs are POSTed.
    pub url: String,
    shared: Shared,
}

impl JobService {
    /// A service that treats the jobs it receives by `plans`, in order; jobs beyond the plans
    /// are taken silently.
    pub async fn start(plans: &[Plan]) -> Self {
        let shared = Shared::default();
        shared.plans.lock().unwrap().extend(plans.iter().copied());
        let app = Router::new()
            .route("/jobs", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/jobs", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, shared }
    }

    /// Every POST received so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The statuses weft answered the service's own callbacks with.
    pub fn callback_statuses(&self) -> Vec<u16> {
        self.shared.callbacks.lock().unwrap().clone()
    }

    /// Waits until the service has received `n` POSTs; returns the `n`th (1-based).
    pub async fn nth(&self, n: usize) -> Received {
        super::eventually(&format!("the job service receives POST {n}"), async || {
            self.received().get(n - 1).cloned()
        })
        .await
    }

    /// Calls back for the `n`th POST (1-based) as the service would; weft's answer status.
    pub async fn call_back(&self, n: usize, success: bool, message: &str) -> u16 {
        let job = self.received()[n - 1].clone();
        call_back(&job.callback_url, &job.attempt_id, success, message).await
    }
}

/// POSTs a callback body to a callback URL, without credentials; the status.
pub async fn call_back(url: &str, attempt_id: &str, success: bool, message: &str) -> u16 {
    let body = json!({ "attemptId": attempt_id, "success": success, "message": message });
    super::bounded_client()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("callback request")
        .status()
        .as_u16()
}

async fn receive(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let plan = shared
        .plans
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Plan::Silent);
    let status = match plan {
        Plan::Refuse(s) => StatusCode::from_u16(s).expect("a status code"),
        _ => StatusCode::ACCEPTED,
    };
    let job = Received {
        attempt_id: body["attemptId"].as_str().unwrap_or_default().to_string(),
        callback_url: body["callbackUrl"].as_str().unwrap_or_default().to_string(),
        payload: body["payload"].clone(),
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        status: status.as_u16(),
    };
    shared.received.lock().unwrap().push(job.clone());
    let times = match plan {
        Plan::CallBack { .. } => 1,
        Plan::Twice => 2,
        _ => 0,
    };
    if times > 0 {
        let success = !matches!(plan, Plan::CallBack { success: false });
        // Like a real service, it calls back after it has answered the POST.
        tokio::spawn(async move {
            for _ in 0..times {
                let s = call_back(&job.callback_url, &job.attempt_id, success, "job done").await;
                shared.callbacks.lock().unwrap().push(s);
            }
        });
    }
    status
}
