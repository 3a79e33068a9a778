//! The answers every operation can get besides its own: what the layers below the handlers
//! refuse (a URI or headers over weft's limits, a body too large or too slow) and a store that
//! cannot take the request.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::Ref;
use utoipa::openapi::{Content, OpenApi, RefOr, ResponseBuilder};

/// Adds, to each operation that lacks them, the statuses any request to it can be answered
/// with, each with the error body.
pub(super) struct CommonAnswers;

impl utoipa::Modify for CommonAnswers {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.delete,
                &mut item.put,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                add_common(path, op);
            }
        }
    }
}

fn add_common(path: &str, op: &mut Operation) {
    let mut answers = vec![
        (
            "414",
            "The request URI is over 8 KiB: `uri_too_long`".to_string(),
        ),
        (
            "431",
            "The request headers are over 32 KiB, names and values together: `headers_too_large`"
                .to_string(),
        ),
    ];
    if path != "/readyz" {
        answers.push((
            "503",
            "The store cannot take the request now (`store_unavailable`), the database is full (`store_full`), or the disk failed to write or fsync it (`store_io_error`); it was not acknowledged: retry".to_string(),
        ));
    }
    if op.request_body.is_some() {
        answers.push((
            "408",
            "The body stopped arriving before it was complete: `request_timeout`".to_string(),
        ));
        answers.push((
            "413",
            "The body is over the limit (1 MiB unless the server was started with another): `payload_too_large`".to_string(),
        ));
    }
    for (status, description) in answers {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_answer(description));
    }
}

/// A response with the API's error body.
pub(super) fn error_answer(description: impl Into<String>) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
        .into()
}
