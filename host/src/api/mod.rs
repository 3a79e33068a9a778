//! The HTTP API, shaped like the Durable Functions management API, described by the OpenAPI
//! document at `/openapi.json` (generated from this code).

mod bundles;
mod components;
mod document;
mod entities;
mod error;
mod extract;
mod instances;
pub mod limits;
mod metrics;
pub mod schema;
mod ui;

pub use error::ApiError;
pub use instances::history_json;

use crate::runtime::{Runtime, RuntimeError};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutBody};
use tower_http::validate_request::ValidateRequestHeaderLayer;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    /// The base URL written into management links, e.g. `http://127.0.0.1:8080`.
    pub public_url: Arc<str>,
    /// The bearer token management routes require.
    pub token: Arc<str>,
    /// The largest request body accepted, in bytes.
    pub max_body: usize,
    /// How long a request body may stop arriving before the request is answered `408`.
    pub body_timeout: Duration,
}

/// The largest request body accepted by default.
pub const MAX_BODY: usize = 1024 * 1024;

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let management = Router::new()
        .route("/orchestrations", get(components::catalog))
        .route("/orchestrations/{name}", post(instances::start))
        .route(
            "/instances",
            get(instances::list).delete(instances::purge_where),
        )
        .route(
            "/instances/{id}",
            get(instances::status).delete(instances::purge),
        )
        .route(
            "/instances/{id}/raiseEvent/{event}",
            post(instances::raise_event),
        )
        .route("/instances/{id}/terminate", post(instances::terminate))
        .route("/instances/{id}/suspend", post(instances::suspend))
        .route("/instances/{id}/resume", post(instances::resume))
        .route("/instances/{id}/upgrade", post(components::upgrade))
        .route("/instances/{id}/bundle", get(bundles::bundle))
        .route("/instances/{id}/restart", post(instances::restart))
        .route(
            "/components",
            get(components::list_components).post(components::deploy),
        )
        .route("/entities", get(entities::list_entities))
        .route(
            "/entities/{name}/{key}",
            get(entities::get_entity)
                .post(entities::signal_entity)
                .delete(entities::purge_entity),
        )
        .route(
            "/entities/{name}/{key}/history",
            get(entities::entity_history),
        )
        .route("/admin/clock/advance", post(instances::advance_clock))
        .route("/metrics", get(metrics::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(management)
        .merge(ui::router())
        .route("/callbacks/{id}/{event}", post(instances::callback))
        .route("/openapi.json", get(openapi))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(state.max_body))
        .layer(
            tower::ServiceBuilder::new()
                .layer(RequestBodyTimeoutLayer::new(state.body_timeout))
                .map_request(|r: Request<TimeoutBody<Body>>| r.map(Body::new)),
        )
        .layer(ValidateRequestHeaderLayer::custom(limits::check_head))
        .layer(middleware::map_response(limits::json_errors))
        .with_state(state)
}

/// How long the readiness probe waits for the store.
const READY_WITHIN: Duration = Duration::from_secs(2);

/// Readiness: whether the store answers a read and commits a write (`/healthz` answers as long
/// as the process serves HTTP).
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, description = "The store answered a read and committed a write", body = schema::Ready),
        (status = 503, description = "The store did not: `not_ready` with the reason", body = schema::ErrorBody),
    )
)]
async fn readyz(State(app): State<AppState>) -> Result<Json<schema::Ready>, ApiError> {
    let reason = match tokio::time::timeout(READY_WITHIN, app.runtime.store().probe()).await {
        Ok(Ok(())) => {
            return Ok(Json(schema::Ready {
                status: "ready".into(),
            }));
        }
        Ok(Err(e)) => format!("the store did not take a write: {e}"),
        Err(_) => format!(
            "the store did not commit a write within {} s",
            READY_WITHIN.as_secs()
        ),
    };
    tracing::warn!("not ready: {reason}");
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_ready",
        reason,
    ))
}

async fn openapi(State(app): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json(document::document(
        &app.runtime.orchestration_names(),
        &app.runtime.entity_names(),
    ))
}

/// Lets a request through only with `Authorization: Bearer TOKEN`.
async fn require_token(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compare digests, in constant time, so neither the token nor its length leaks.
    let ok = presented.is_some_and(|p| {
        Sha256::digest(p.as_bytes())
            .ct_eq(&Sha256::digest(app.token.as_bytes()))
            .into()
    });
    if ok {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this route needs the header `Authorization: Bearer TOKEN` with the server's token",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        use RuntimeError::*;
        let (status, code) = match &e {
            UnknownOrchestration(_) => (StatusCode::NOT_FOUND, "unknown_orchestration"),
            NotFound(_) => (StatusCode::NOT_FOUND, "instance_not_found"),
            UnknownEntity(_) => (StatusCode::NOT_FOUND, "unknown_entity"),
            MissingComponent(_) => (StatusCode::NOT_FOUND, "unknown_component"),
            Component(_) => (StatusCode::BAD_REQUEST, "invalid_component"),
            Diverges(_) => (StatusCode::CONFLICT, "replay_diverges"),
            Busy(_) => (StatusCode::CONFLICT, "instance_busy"),
            Running { .. } | NotEnded { .. } => (StatusCode::CONFLICT, "instance_running"),
            EntityNotFound(_) => (StatusCode::NOT_FOUND, "entity_not_found"),
            Finished { .. } => (StatusCode::GONE, "instance_finished"),
            Conflict(_) => (StatusCode::CONFLICT, "instance_exists"),
            ClockNotManual => (StatusCode::CONFLICT, "clock_not_manual"),
            Callback(crate::runtime::CallbackError::Expired) => {
                (StatusCode::FORBIDDEN, "callback_expired")
            }
            Callback(_) => (StatusCode::FORBIDDEN, "invalid_signature"),
            Store(e) if e.is_full() => (StatusCode::SERVICE_UNAVAILABLE, "store_full"),
            Store(crate::store::StoreError::Io(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_io_error")
            }
            Store(
                crate::store::StoreError::Unavailable(_)
                | crate::store::StoreError::Closed
                | crate::store::StoreError::Conflict(_),
            ) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        // What the client can do about a store that refused the write.
        let store_refused = match code {
            "store_full" => {
                Some("the database is full: nothing of this request was kept; free space and retry")
            }
            "store_io_error" => Some(
                "the disk failed to write or fsync this request: it was not acknowledged; retry",
            ),
            _ => None,
        };
        if let Some(message) = store_refused {
            tracing::error!("{e}");
            return ApiError::new(status, code, message);
        }
        if status.is_server_error() {
            tracing::error!("{e}");
            // Internals stay in the log.
            return ApiError::new(status, code, "the server could not complete the request");
        }
        ApiError::new(status, code, e.to_string())
    }
}
