//! What the handlers share: reading a request's path, query and JSON body with clear errors,
//! instance ids and page sizes, and stored JSON text shown back as JSON.

use super::ApiError;
use super::document::MAX_PAGE;
use crate::history::InstanceId;
use crate::store::PageToken;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use serde_json::Value;

/// Parses a request body as JSON; an empty body is `null`.
pub(super) fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body.map_err(ApiError::from_body_rejection)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })
}

pub(super) fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(t)| t)
        .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
}

pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

pub(super) fn instance_id(s: &str) -> Result<InstanceId, ApiError> {
    s.parse()
        .map_err(|e: crate::history::InvalidId| ApiError::bad_request("invalid_id", e.to_string()))
}

/// Parses stored JSON text back into a value (text that is not JSON is shown as a string).
pub(super) fn stored_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// A page size from `top` (default `default`): 1 to 1000.
pub(super) fn page_size(top: Option<u32>, default: u32) -> Result<usize, ApiError> {
    let top = top.unwrap_or(default);
    if !(1..=MAX_PAGE).contains(&top) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("top must be from 1 to {MAX_PAGE}"),
        ));
    }
    Ok(top as usize)
}

/// A continuation token of `GET /instances`: the hex of `CREATED:ID`, the time 1 to 18
/// digits (the document's `INSTANCE_TOKEN_PATTERN`).
pub(super) fn page_token(s: &str) -> Option<PageToken> {
    let text = String::from_utf8(hex::decode(s).ok()?).ok()?;
    let (at, id) = text.split_once(':')?;
    if !(1..=18).contains(&at.len()) || !at.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(PageToken {
        created_at: at.parse().ok()?,
        id: id.parse().ok()?,
    })
}
