//! What the server refuses before a handler looks at a request (a URI or headers over weft's
//! limits, a body that stops arriving), and the net that gives every error the API's JSON
//! shape, also those that layers below the handlers make.
//!
//! weft's limits sit below hyper's, so weft answers first. hyper still answers by itself, with
//! an empty body, what it cannot parse at all: a malformed request line or header (`400`), a
//! URI over 65,534 bytes (`414`), more than 100 headers or a request head over 408 KiB
//! (`431`).

use super::ApiError;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// The longest request URI (path and query) accepted, in bytes.
pub const MAX_URI: usize = 8 * 1024;
/// The most bytes of request header names and values accepted, all headers together.
pub const MAX_HEADERS: usize = 32 * 1024;
/// How long a request body may stop arriving before the request is answered `408`, by default.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Refuses a request whose URI or headers are over weft's limits.
#[allow(
    clippy::result_large_err,
    reason = "the shape tower-http's `ValidateRequest` takes"
)]
pub(super) fn check_head(request: &mut Request) -> Result<(), Response> {
    let uri = request.uri();
    let uri_len = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if uri_len > MAX_URI {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request URI is {uri_len} bytes long; the limit is {MAX_URI}"),
        )
        .into_response());
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > MAX_HEADERS {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request headers hold {headers} bytes of names and values; the limit is {MAX_HEADERS}"
            ),
        )
        .into_response());
    }
    Ok(())
}

/// Gives an error response that is not JSON (one a layer made: `405`, `408`, `413`, ...) the
/// API's shape, `{"error": {"code", "message"}}`, keeping its status and its other headers.
pub(super) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            // JSON errors stay as they are, and so do the dashboard's pages.
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .filter(|t| !t.trim().is_empty() && status.is_client_error());
    let message = text.unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_lowercase()
    });
    let mut json = ApiError::new(status, code_of(status), message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().append(name, value.clone());
        }
    }
    json
}

/// The error code for a status that came without one.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    }
}
