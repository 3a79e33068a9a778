//! The HTTP API, shaped like the Durable Functions management API.

mod error;

pub use error::ApiError;

use crate::clock::rfc3339;
use crate::history::{InstanceId, Recorded};
use crate::runtime::{Runtime, RuntimeError, Status};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    /// The base URL written into management links, e.g. `http://127.0.0.1:8080`.
    pub public_url: Arc<str>,
}

/// The largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/orchestrations/{name}", post(start))
        .route("/instances/{id}", get(status).delete(purge))
        .route("/instances/{id}/raiseEvent/{event}", post(raise_event))
        .route("/instances/{id}/terminate", post(terminate))
        .route("/admin/clock/advance", post(advance_clock))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Parses a request body as JSON; an empty body is `null`.
fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body.map_err(ApiError::from_body_rejection)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })
}

fn instance_id(s: &str) -> Result<InstanceId, ApiError> {
    s.parse().map_err(|e: crate::history::InvalidId| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string())
    })
}

#[derive(Deserialize)]
struct StartQuery {
    #[serde(rename = "instanceId")]
    instance_id: Option<String>,
}

async fn start(
    State(app): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<StartQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input = json_body(body)?;
    let id = q.instance_id.as_deref().map(instance_id).transpose()?;
    let (id, _created) = app.runtime.start(&name, &input, id).await?;
    let base = format!("{}/instances/{id}", app.public_url);
    let links = json!({
        "id": id.as_str(),
        "statusQueryGetUri": base,
        "sendEventPostUri": format!("{base}/raiseEvent/{{eventName}}"),
        "terminatePostUri": format!("{base}/terminate?reason={{text}}"),
        "purgeHistoryDeleteUri": base,
    });
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&base) {
        headers.insert(header::LOCATION, v);
    }
    Ok((StatusCode::ACCEPTED, headers, Json(links)).into_response())
}

#[derive(Deserialize)]
struct StatusQuery {
    #[serde(rename = "showHistory", default)]
    show_history: bool,
}

async fn status(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<StatusQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = instance_id(&id)?;
    let status = app.runtime.status(&id, q.show_history).await?;
    Ok(Json(status_json(&status)))
}

/// Parses stored JSON text back into a value (text that is not JSON is shown as a string).
fn stored_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn status_json(s: &Status) -> Value {
    let i = &s.instance;
    let mut v = json!({
        "instanceId": i.id.as_str(),
        "name": i.name,
        "runtimeStatus": i.status.as_str(),
        "input": stored_json(&i.input),
        "output": match (&i.output, &i.failure) {
            (Some(o), _) => stored_json(o),
            (None, Some(f)) => Value::String(f.clone()),
            (None, None) => Value::Null,
        },
        "customStatus": i.custom_status.as_deref().map(stored_json).unwrap_or(Value::Null),
        "createdTime": rfc3339(i.created_at),
        "lastUpdatedTime": rfc3339(i.updated_at),
        "componentDigest": i.digest.as_str(),
    });
    if let Some(f) = &i.failure {
        v["failure"] = json!({ "message": f });
    }
    if let Some(h) = &s.history {
        v["historyEvents"] = Value::Array(h.iter().map(history_json).collect());
    }
    v
}

/// A history event for people: payload strings that hold JSON are shown as JSON.
fn history_json(r: &Recorded) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    v["timestamp"] = Value::String(rfc3339(r.recorded_at));
    if let Some(obj) = v.as_object_mut() {
        for key in ["input", "output", "payload", "status"] {
            if let Some(Value::String(s)) = obj.get(key) {
                let parsed = stored_json(s);
                obj.insert(key.to_string(), parsed);
            }
        }
        if let Some(Value::Object(c)) = obj.get_mut("completion")
            && let Some(Value::String(s)) = c.get("value")
        {
            let parsed = stored_json(s);
            c.insert("value".into(), parsed);
        }
    }
    v
}

async fn raise_event(
    State(app): State<AppState>,
    Path((id, event)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let id = instance_id(&id)?;
    let payload = json_body(body)?;
    app.runtime.raise_event(&id, &event, &payload).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize)]
struct TerminateQuery {
    reason: Option<String>,
}

async fn terminate(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TerminateQuery>,
) -> Result<StatusCode, ApiError> {
    let id = instance_id(&id)?;
    let reason = q.reason.unwrap_or_else(|| "terminated".into());
    app.runtime.terminate(&id, &reason).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn purge(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = instance_id(&id)?;
    app.runtime.purge(&id).await?;
    Ok(Json(json!({ "instancesDeleted": 1 })))
}

#[derive(Deserialize)]
struct Advance {
    seconds: f64,
}

async fn advance_clock(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(body)?;
    let advance: Advance = serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("expected {{\"seconds\": N}}: {e}"),
        )
    })?;
    if !advance.seconds.is_finite() || advance.seconds < 0.0 || advance.seconds > 1e10 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "seconds must be a number from 0 to 1e10",
        ));
    }
    let by = Duration::from_secs_f64(advance.seconds);
    let (now, fired) = app.runtime.advance_clock(by).await?;
    Ok(Json(json!({ "now": rfc3339(now), "timersFired": fired })))
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        use RuntimeError::*;
        let (status, code) = match &e {
            UnknownOrchestration(_) => (StatusCode::NOT_FOUND, "unknown_orchestration"),
            NotFound(_) => (StatusCode::NOT_FOUND, "instance_not_found"),
            Finished { .. } => (StatusCode::GONE, "instance_finished"),
            Conflict(_) => (StatusCode::CONFLICT, "instance_exists"),
            ClockNotManual => (StatusCode::CONFLICT, "clock_not_manual"),
            Store(crate::store::StoreError::Db(_) | crate::store::StoreError::Closed) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            tracing::error!("{e}");
        }
        ApiError::new(status, code, e.to_string())
    }
}
