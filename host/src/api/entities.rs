//! The entity handlers: state, operation log, signal, list and purge.

use super::extract::{json_body, page_size, path, query, stored_json};
use super::schema::{
    EntityHistory, EntityList, EntityOperation, EntityPurged, EntityStatus, ErrorBody,
};
use super::{ApiError, AppState};
use crate::clock::rfc3339;
use crate::store::{EntityKey, EntityRow, LoggedOp};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

/// The longest entity name or key accepted, in characters.
const MAX_PART: usize = 256;

fn entity_key(name: String, key: String) -> Result<EntityKey, ApiError> {
    for (what, part) in [("name", &name), ("key", &key)] {
        let length = part.chars().count();
        if length == 0 || length > MAX_PART || part.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "invalid_entity",
                format!(
                    "an entity {what} has 1 to {MAX_PART} characters, none of them control characters"
                ),
            ));
        }
    }
    Ok(EntityKey { name, key })
}

fn entity_status(row: EntityRow) -> EntityStatus {
    EntityStatus {
        name: row.entity.name,
        key: row.entity.key,
        state: row.state.as_deref().map(stored_json).unwrap_or(Value::Null),
        operation_count: row.operations,
        pending_operations: row.pending,
        created_time: row.created_at.map(rfc3339),
        last_modified_time: row.updated_at.map(rfc3339),
    }
}

fn logged(op: LoggedOp) -> EntityOperation {
    EntityOperation {
        seq: op.seq,
        time: rfc3339(op.applied_at),
        operation: op.operation,
        input: stored_json(&op.input),
        output: op.output.as_deref().map(stored_json),
        error: op.error,
        source: op.source,
    }
}

/// An entity's current state.
#[utoipa::path(
    get,
    path = "/entities/{name}/{key}",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "The entity's name", pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,256}$"),
        ("key" = String, Path, description = "The entity's key", pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,256}$"),
    ),
    responses(
        (status = 200, description = "The entity", body = EntityStatus),
        (status = 400, description = "Invalid name or key", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such entity", body = ErrorBody),
    )
)]
pub(super) async fn get_entity(
    State(app): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<EntityStatus>, ApiError> {
    let (name, key) = path(p)?;
    let row = app.runtime.entity(entity_key(name, key)?).await?;
    Ok(Json(entity_status(row)))
}

#[derive(Deserialize, Clone, Default)]
pub(super) struct HistoryQuery {
    pub(super) from: Option<u64>,
    pub(super) top: Option<u32>,
}

/// The operations applied to an entity, oldest first, with their outputs and times.
#[utoipa::path(
    get,
    path = "/entities/{name}/{key}/history",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "The entity's name", pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,256}$"),
        ("key" = String, Path, description = "The entity's key", pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,256}$"),
        ("from" = Option<u64>, Query, description = "The first operation's seq, at most 2^63 - 1 (default 0)"),
        ("top" = Option<u32>, Query, description = "At most this many, 1 to 1000 (default 1000)"),
    ),
    responses(
        (status = 200, description = "The operation log", body = EntityHistory),
        (status = 400, description = "Invalid name, key or query", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such entity", body = ErrorBody),
    )
)]
pub(super) async fn entity_history(
    State(app): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<EntityHistory>, ApiError> {
    let (name, key) = path(p)?;
    let q = query(q)?;
    let top = page_size(q.top, 1000)?;
    let from = q.from.unwrap_or(0);
    if from > super::document::MAX_SEQ {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("from must be from 0 to {}", super::document::MAX_SEQ),
        ));
    }
    let ops = app
        .runtime
        .entity_log(entity_key(name, key)?, from, top)
        .await?;
    Ok(Json(EntityHistory {
        operations: ops.into_iter().map(logged).collect(),
    }))
}

#[derive(Deserialize)]
pub(super) struct SignalQuery {
    op: String,
}

/// Sends an operation to an entity (one way); answered once it is durable. Operations on one
/// entity apply one at a time, in the order they arrive.
#[utoipa::path(
    post,
    path = "/entities/{name}/{key}",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "The entity's name", pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,256}$"),
        ("key" = String, Path, description = "The entity's key", pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,256}$"),
        ("op" = String, Query, description = "The operation", pattern = "^[\\s\\S]{1,256}$"),
    ),
    request_body(content = Option<Value>, description = "The operation's input: any JSON; an empty body is null"),
    responses(
        (status = 202, description = "Sent"),
        (status = 400, description = "Invalid JSON, name, key or operation", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No entity of that name is deployed", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
    )
)]
pub(super) async fn signal_entity(
    State(app): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<SignalQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let (name, key) = path(p)?;
    let entity = entity_key(name, key)?;
    let op = query(q)?.op;
    if op.is_empty() || op.chars().count() > MAX_PART {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("op names the operation: 1 to {MAX_PART} characters"),
        ));
    }
    let input = json_body(body)?;
    app.runtime.signal_entity(entity, &op, &input).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Deletes an entity's state and operation log. Operations still waiting apply afterwards, to
/// a new entity.
#[utoipa::path(
    delete,
    path = "/entities/{name}/{key}",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "The entity's name", pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,256}$"),
        ("key" = String, Path, description = "The entity's key", pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,256}$"),
    ),
    responses(
        (status = 200, description = "Purged", body = EntityPurged),
        (status = 400, description = "Invalid name or key", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such entity", body = ErrorBody),
    )
)]
pub(super) async fn purge_entity(
    State(app): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<EntityPurged>, ApiError> {
    let (name, key) = path(p)?;
    let (entities, log) = app.runtime.purge_entity(entity_key(name, key)?).await?;
    Ok(Json(EntityPurged {
        entities_deleted: entities as u64,
        log_entries_deleted: log as u64,
    }))
}

#[derive(Deserialize, Clone, Default)]
pub(super) struct ListQuery {
    pub(super) name: Option<String>,
    pub(super) top: Option<u32>,
    #[serde(rename = "continuationToken")]
    pub(super) continuation_token: Option<String>,
}

fn encode_token(k: &EntityKey) -> String {
    hex::encode(format!("{}\0{}", k.name, k.key))
}

/// The position a continuation token names: any hex is one (bytes that are not UTF-8 count as
/// U+FFFD, no NUL means an empty key), so the document's pattern is the whole rule.
fn decode_token(s: &str) -> Option<EntityKey> {
    let bytes = hex::decode(s).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let (name, key) = text.split_once('\0').unwrap_or((&*text, ""));
    Some(EntityKey {
        name: name.to_string(),
        key: key.to_string(),
    })
}

/// Lists entities in (name, key) order, with their state.
#[utoipa::path(
    get,
    path = "/entities",
    security(("bearer" = [])),
    params(
        ("name" = Option<String>, Query, description = "Only entities of this name"),
        ("top" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)"),
        ("continuationToken" = Option<String>, Query, description = "The `continuationToken` of the previous page, as given"),
    ),
    responses(
        (status = 200, description = "A page of entities", body = EntityList),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    )
)]
pub(super) async fn list_entities(
    State(app): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<EntityList>, ApiError> {
    let q = query(q)?;
    let top = page_size(q.top, 100)?;
    let after = q
        .continuation_token
        .as_deref()
        .map(|t| {
            decode_token(t).ok_or_else(|| {
                ApiError::bad_request("invalid_query", "continuationToken is not one we gave out")
            })
        })
        .transpose()?;
    let rows = app.runtime.list_entities(q.name, after, top).await?;
    let continuation_token = (rows.len() == top)
        .then(|| rows.last().map(|r| encode_token(&r.entity)))
        .flatten();
    Ok(Json(EntityList {
        entities: rows.into_iter().map(entity_status).collect(),
        continuation_token,
    }))
}
