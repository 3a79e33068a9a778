//! Replay bundles: an instance, its component and every run's history in one file.

use super::extract::{instance_id, path, query};
use super::schema::{BundleBody, ErrorBody};
use super::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct BundleQuery {
    #[serde(default)]
    redact: bool,
}

/// Instance `id` as a replay bundle: its component's bytes and digest, its input, status and
/// the history of every run, in one self-contained JSON file that `weft replay` replays
/// offline. With `redact=true` every payload (inputs, outputs, errors, event payloads, custom
/// status, callback URLs) is replaced by a hash; such a bundle replays by call kind and name.
#[utoipa::path(
    get,
    path = "/instances/{id}/bundle",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The instance id", pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
        ("redact" = Option<bool>, Query, description = "Replace payloads by hashes"),
    ),
    responses(
        (status = 200, description = "The bundle (sent as an attachment)", body = BundleBody),
        (status = 400, description = "Invalid id or query", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such instance, or its component is no longer stored", body = ErrorBody),
    )
)]
pub(super) async fn bundle(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<BundleQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = instance_id(&path(id)?)?;
    let redact = query(q)?.redact;
    let mut bundle = app.runtime.bundle(&id).await?;
    if redact {
        bundle = bundle.redacted();
    }
    let file = format!("attachment; filename=\"{id}.bundle.json\"");
    Ok(([(header::CONTENT_DISPOSITION, file)], Json(bundle)).into_response())
}
