//! `/metrics`: the host's metrics for Prometheus to scrape.

use super::AppState;
use super::schema::ErrorBody;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// The content type of the OpenMetrics text format, which Prometheus scrapes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Counters, gauges and histograms of this node, in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    responses(
        (status = 200, description = "This node's metrics in the OpenMetrics text format (`weft_*`: counters end in `_total`, durations are in seconds)", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let text = crate::metrics::get().encode(app.runtime.hot_instances());
    ([(header::CONTENT_TYPE, OPENMETRICS)], text)
}
