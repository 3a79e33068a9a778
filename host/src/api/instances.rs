//! The handlers.

use super::ApiError;
use super::AppState;
use super::extract::{instance_id, json_body, page_size, path, query, stored_json};
use super::schema::{
    ClockAdvance, ClockAdvanced, ErrorBody, Failure, InstanceList, InstanceStatus, PreviousRun,
    PurgeResult, StartResponse,
};
use crate::clock::{parse_date_time, rfc3339};
use crate::history::{Recorded, RuntimeStatus};
use crate::runtime::Status;
use crate::store::{Filter, InstanceRow};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

#[derive(Deserialize)]
pub(super) struct StartQuery {
    #[serde(rename = "instanceId")]
    instance_id: Option<String>,
    #[serde(rename = "waitForCompletion")]
    wait_for_completion: Option<String>,
}

/// A `waitForCompletion` value: whole seconds (`5s`) or milliseconds (`250ms`), at most 60 s,
/// written without leading zeros (the pattern in the OpenAPI document).
fn wait_duration(text: Option<&str>) -> Result<Option<Duration>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let (digits, unit_ms) = match text.strip_suffix("ms") {
        Some(d) => (d, 1),
        None => (text.strip_suffix('s').unwrap_or(""), 1_000),
    };
    let well_formed = !digits.is_empty()
        && digits.len() <= 5
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    let d = well_formed
        .then(|| digits.parse::<u64>().ok())
        .flatten()
        .map(|n| Duration::from_millis(n * unit_ms))
        .filter(|d| *d <= crate::runtime::MAX_WAIT);
    match d {
        Some(d) => Ok(Some(d)),
        None => Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "waitForCompletion '{text}' is not a wait from 0s to 60s in whole seconds or milliseconds (like 5s or 250ms)"
            ),
        )),
    }
}

/// Starts an orchestration. Starting again with the same instance id and input returns the
/// existing instance.
#[utoipa::path(
    post,
    path = "/orchestrations/{name}",
    security(("bearer" = [])),
    params(
        ("name" = String, Path, description = "The orchestration's name"),
        ("instanceId" = Option<String>, Query, description = "The instance id (default: a new one)",
            pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
        ("waitForCompletion" = Option<String>, Query, description = "Wait this long (e.g. `5s`, `250ms`; at most 60 s) for the instance to end; answered as soon as it does",
            pattern = "^((0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|60000)ms|([0-9]|[1-5][0-9]|60)s)$"),
        ("traceparent" = Option<String>, Header, description = "A W3C trace context: the instance's trace becomes a part of it (one that is not valid is ignored)"),
    ),
    request_body(content = Option<Value>, description = "The input: any JSON; an empty body is null"),
    responses(
        (status = 200, description = "With `waitForCompletion`: the instance ended within the wait; its final status", body = InstanceStatus),
        (status = 202, description = "Started (or already started with this input); with `waitForCompletion`, it had not ended when the wait was over", body = StartResponse,
            headers(("Location" = String, description = "The status URL"))),
        (status = 400, description = "Invalid JSON, instance id or wait", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No orchestration of that name", body = ErrorBody),
        (status = 409, description = "The instance exists with other input", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
    )
)]
pub(super) async fn start(
    State(app): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<StartQuery>, QueryRejection>,
    request: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let name = path(name)?;
    let q = query(q)?;
    let input = json_body(body)?;
    let id = q.instance_id.as_deref().map(instance_id).transpose()?;
    let wait = wait_duration(q.wait_for_completion.as_deref())?;
    // A W3C `traceparent` makes the instance's trace a part of the caller's.
    let traceparent = request.get("traceparent").and_then(|v| v.to_str().ok());
    let (id, _created) = app.runtime.start(&name, &input, id, traceparent).await?;
    if let Some(wait) = wait
        && app.runtime.wait_for_end(&id, wait).await?
    {
        let status = app.runtime.status(&id, false).await?;
        return Ok(Json(instance_status(&status.instance, None)).into_response());
    }
    Ok(started(&app, &id))
}

/// The `202` answer to a start: the instance's links, and its status URL as `Location`.
fn started(app: &AppState, id: &crate::history::InstanceId) -> Response {
    let base = format!("{}/instances/{id}", app.public_url);
    let links = StartResponse {
        id: id.to_string(),
        status_query_get_uri: base.clone(),
        send_event_post_uri: format!("{base}/raiseEvent/{{eventName}}"),
        terminate_post_uri: format!("{base}/terminate?reason={{text}}"),
        suspend_post_uri: format!("{base}/suspend?reason={{text}}"),
        resume_post_uri: format!("{base}/resume?reason={{text}}"),
        purge_history_delete_uri: base.clone(),
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&base) {
        headers.insert(header::LOCATION, v);
    }
    (StatusCode::ACCEPTED, headers, Json(links)).into_response()
}

#[derive(Deserialize, Clone, Default)]
pub(super) struct RestartQuery {
    #[serde(rename = "instanceId")]
    pub(super) instance_id: Option<String>,
}

/// Starts a fresh instance of an ended instance's orchestration with the input its first run
/// was given (as Durable Functions' restart with a new instance id): on the component that
/// serves the name now, under `instanceId` or a new id. The ended instance stays as it is.
#[utoipa::path(
    post,
    path = "/instances/{id}/restart",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The ended instance", pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
        ("instanceId" = Option<String>, Query, description = "The new instance's id (default: a new one)",
            pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
    ),
    responses(
        (status = 202, description = "The new instance started", body = StartResponse,
            headers(("Location" = String, description = "The new instance's status URL"))),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such instance, or its orchestration is no longer deployed", body = ErrorBody),
        (status = 409, description = "The instance has not ended (`instance_running`), or `instanceId` names an instance with other input (`instance_exists`)", body = ErrorBody),
    )
)]
pub(super) async fn restart(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<RestartQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = instance_id(&path(id)?)?;
    let new_id = query(q)?
        .instance_id
        .as_deref()
        .map(instance_id)
        .transpose()?;
    let new = app.runtime.restart(&id, new_id).await?;
    Ok(started(&app, &new))
}

#[derive(Deserialize, Clone, Default)]
pub(super) struct ListQuery {
    #[serde(rename = "runtimeStatus")]
    pub(super) runtime_status: Option<String>,
    pub(super) name: Option<String>,
    #[serde(rename = "createdFrom")]
    pub(super) created_from: Option<String>,
    #[serde(rename = "createdTo")]
    pub(super) created_to: Option<String>,
    pub(super) top: Option<u32>,
    #[serde(rename = "continuationToken")]
    pub(super) continuation_token: Option<String>,
}

pub(super) fn filter(
    runtime_status: Option<&str>,
    name: Option<String>,
    created_from: Option<&str>,
    created_to: Option<&str>,
) -> Result<Filter, ApiError> {
    let statuses = match runtime_status {
        None | Some("") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| {
                RuntimeStatus::parse(s.trim_matches(' ')).ok_or_else(|| {
                    ApiError::bad_request("invalid_query", format!("unknown runtimeStatus '{s}'"))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let time = |what: &str, t: Option<&str>| {
        t.map(|t| {
            parse_date_time(t).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "{what} '{t}' is not an RFC 3339 date-time (like 2026-12-01T09:00:00Z or 2026-12-01T10:00:00.5+01:00)"
                    ),
                )
            })
        })
        .transpose()
    };
    Ok(Filter {
        statuses,
        name,
        created_from: time("createdFrom", created_from)?,
        created_to: time("createdTo", created_to)?,
    })
}

/// Lists instances, oldest first, with filters and paging.
#[utoipa::path(
    get,
    path = "/instances",
    security(("bearer" = [])),
    params(
        ("runtimeStatus" = Option<String>, Query, description = "Comma-separated statuses, e.g. `Running,Suspended` (spaces around each allowed); empty for all"),
        ("name" = Option<String>, Query, description = "Only this orchestration"),
        ("createdFrom" = Option<String>, Query, description = "Created at or after (an RFC 3339 date-time; before 1970 counts as 1970)"),
        ("createdTo" = Option<String>, Query, description = "Created before (an RFC 3339 date-time; before 1970 counts as 1970)"),
        ("top" = Option<u32>, Query, description = "Page size, 1 to 1000 (default 100)", minimum = 1, maximum = 1000),
        ("continuationToken" = Option<String>, Query, description = "The `continuationToken` of the previous page, as given"),
    ),
    responses(
        (status = 200, description = "A page of instances", body = InstanceList),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(app): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<InstanceList>, ApiError> {
    let q = query(q)?;
    let f = filter(
        q.runtime_status.as_deref(),
        q.name,
        q.created_from.as_deref(),
        q.created_to.as_deref(),
    )?;
    let top = page_size(q.top, 100)?;
    let after = q
        .continuation_token
        .as_deref()
        .map(|t| {
            super::extract::page_token(t)
                .ok_or_else(|| ApiError::bad_request("invalid_query", "invalid continuationToken"))
        })
        .transpose()?;
    let (rows, next) = app.runtime.list(f, after, top).await?;
    Ok(Json(InstanceList {
        instances: rows.iter().map(|r| instance_status(r, None)).collect(),
        continuation_token: next.map(|t| t.encode()),
    }))
}

#[derive(Deserialize)]
pub(super) struct PurgeQuery {
    #[serde(rename = "runtimeStatus")]
    runtime_status: Option<String>,
    name: Option<String>,
    #[serde(rename = "createdFrom")]
    created_from: Option<String>,
    #[serde(rename = "createdTo")]
    created_to: Option<String>,
}

/// Purges ended instances (Completed, Failed, Terminated) matching the filter.
#[utoipa::path(
    delete,
    path = "/instances",
    security(("bearer" = [])),
    params(
        ("runtimeStatus" = Option<String>, Query, description = "Comma-separated statuses (spaces around each allowed; only ended ones are purged); empty for all"),
        ("name" = Option<String>, Query, description = "Only this orchestration"),
        ("createdFrom" = Option<String>, Query, description = "Created at or after (an RFC 3339 date-time; before 1970 counts as 1970)"),
        ("createdTo" = Option<String>, Query, description = "Created before (an RFC 3339 date-time; before 1970 counts as 1970)"),
    ),
    responses(
        (status = 200, description = "How many were purged", body = PurgeResult),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    )
)]
pub(super) async fn purge_where(
    State(app): State<AppState>,
    q: Result<Query<PurgeQuery>, QueryRejection>,
) -> Result<Json<PurgeResult>, ApiError> {
    let q = query(q)?;
    let f = filter(
        q.runtime_status.as_deref(),
        q.name,
        q.created_from.as_deref(),
        q.created_to.as_deref(),
    )?;
    let n = app.runtime.purge_where(f).await?;
    Ok(Json(PurgeResult {
        instances_deleted: n as u64,
    }))
}

#[derive(Deserialize)]
pub(super) struct StatusQuery {
    #[serde(rename = "showHistory", default)]
    show_history: bool,
    #[serde(rename = "waitForCompletion")]
    wait_for_completion: Option<String>,
}

/// An instance's status, with its history if asked.
#[utoipa::path(
    get,
    path = "/instances/{id}",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The instance id", pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
        ("showHistory" = Option<bool>, Query, description = "Include the history"),
        ("waitForCompletion" = Option<String>, Query, description = "Wait this long (e.g. `5s`, `250ms`; at most 60 s) for the instance to end; answered as soon as it does",
            pattern = "^((0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|60000)ms|([0-9]|[1-5][0-9]|60)s)$"),
    ),
    responses(
        (status = 200, description = "The status (with `waitForCompletion`: once the instance ended, or when the wait was over)", body = InstanceStatus),
        (status = 400, description = "Invalid id or query", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    )
)]
pub(super) async fn status(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Json<InstanceStatus>, ApiError> {
    let id = instance_id(&path(id)?)?;
    let q = query(q)?;
    if let Some(wait) = wait_duration(q.wait_for_completion.as_deref())? {
        app.runtime.wait_for_end(&id, wait).await?;
    }
    let Status {
        instance,
        history,
        previous_runs,
    } = app.runtime.status(&id, q.show_history).await?;
    let mut status = instance_status(&instance, history.as_deref());
    if !previous_runs.is_empty() {
        status.previous_runs = Some(
            previous_runs
                .into_iter()
                .map(|(generation, events)| PreviousRun {
                    generation,
                    history_events: events.iter().map(history_json).collect(),
                })
                .collect(),
        );
    }
    Ok(Json(status))
}

#[derive(Deserialize, Clone, Default)]
pub(super) struct PurgeOneQuery {
    #[serde(default)]
    pub(super) force: bool,
}

/// Purges an ended instance, its history and its ended sub-orchestrations. A running one is
/// refused (`409 instance_running`) unless `force=true`, which terminates it, and its running
/// sub-orchestrations, first.
#[utoipa::path(
    delete,
    path = "/instances/{id}",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The instance id", pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
        ("force" = Option<bool>, Query, description = "Terminate a running instance first (default false)"),
    ),
    responses(
        (status = 200, description = "Purged: how many instances, sub-orchestrations included", body = PurgeResult),
        (status = 400, description = "Invalid id or query", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The instance has not ended (and force is not set); nothing was deleted", body = ErrorBody),
    )
)]
pub(super) async fn purge(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<PurgeOneQuery>, QueryRejection>,
) -> Result<Json<PurgeResult>, ApiError> {
    let id = instance_id(&path(id)?)?;
    let force = query(q)?.force;
    let deleted = app.runtime.purge(&id, force).await?;
    Ok(Json(PurgeResult {
        instances_deleted: deleted as u64,
    }))
}

/// Raises an event to an instance; answered once the event is durable. Events are buffered
/// until the orchestration waits for them, also while it is suspended.
#[utoipa::path(
    post,
    path = "/instances/{id}/raiseEvent/{event}",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The instance id", pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
        ("event" = String, Path, description = "The event's name"),
    ),
    request_body(content = Option<Value>, description = "The payload: any JSON; an empty body is null"),
    responses(
        (status = 202, description = "Recorded"),
        (status = 400, description = "Invalid JSON or id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 410, description = "The instance has ended", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
    )
)]
pub(super) async fn raise_event(
    State(app): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let (id, event) = path(p)?;
    let id = instance_id(&id)?;
    let payload = json_body(body)?;
    app.runtime.raise_event(&id, &event, &payload).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, Clone, Default)]
pub(super) struct ReasonQuery {
    pub(super) reason: Option<String>,
    /// Terminate only: also terminate running sub-orchestrations (the default).
    pub(super) recursive: Option<bool>,
}

/// What an operator does to an instance's lifecycle.
#[derive(Clone, Copy)]
enum Lifecycle {
    Terminate,
    Suspend,
    Resume,
}

async fn lifecycle(
    app: &AppState,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<ReasonQuery>, QueryRejection>,
    action: Lifecycle,
) -> Result<StatusCode, ApiError> {
    let id = instance_id(&path(id)?)?;
    let ReasonQuery { reason, recursive } = query(q)?;
    let rt = &app.runtime;
    match action {
        Lifecycle::Terminate => {
            let reason = reason.as_deref().unwrap_or("terminated");
            rt.terminate(&id, reason, recursive.unwrap_or(true)).await?;
        }
        Lifecycle::Suspend => {
            rt.suspend(&id, reason.as_deref().unwrap_or("suspended"))
                .await?
        }
        Lifecycle::Resume => {
            rt.resume(&id, reason.as_deref().unwrap_or("resumed"))
                .await?
        }
    }
    Ok(StatusCode::ACCEPTED)
}

/// Terminates an instance: it ends at once, its timers and waits are dropped. Its running
/// sub-orchestrations (and theirs) are terminated too, unless `recursive=false`; their reason
/// names the parent.
#[utoipa::path(
    post,
    path = "/instances/{id}/terminate",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The instance id", pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
        ("reason" = Option<String>, Query, description = "Why; shown as the failure message"),
        ("recursive" = Option<bool>, Query, description = "Also terminate running sub-orchestrations (default true)"),
    ),
    responses(
        (status = 202, description = "Terminated"),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 410, description = "The instance has ended", body = ErrorBody),
    )
)]
pub(super) async fn terminate(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<ReasonQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    lifecycle(&app, id, q, Lifecycle::Terminate).await
}

/// Suspends an instance: events and timers that arrive are recorded and delivered on resume.
#[utoipa::path(
    post,
    path = "/instances/{id}/suspend",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The instance id", pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
        ("reason" = Option<String>, Query, description = "Why"),
    ),
    responses(
        (status = 202, description = "Suspended (or already)"),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 410, description = "The instance has ended", body = ErrorBody),
    )
)]
pub(super) async fn suspend(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<ReasonQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    lifecycle(&app, id, q, Lifecycle::Suspend).await
}

/// Resumes a suspended instance.
#[utoipa::path(
    post,
    path = "/instances/{id}/resume",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The instance id", pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
        ("reason" = Option<String>, Query, description = "Why"),
    ),
    responses(
        (status = 202, description = "Resumed (or was not suspended)"),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 410, description = "The instance has ended", body = ErrorBody),
    )
)]
pub(super) async fn resume(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    q: Result<Query<ReasonQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    lifecycle(&app, id, q, Lifecycle::Resume).await
}

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    expires: u64,
    sig: String,
}

/// Raises an event through a signed callback URL (from `ctx.callback_url`). Needs no bearer
/// token: the signature allows exactly this event on exactly this instance until it expires.
#[utoipa::path(
    post,
    path = "/callbacks/{id}/{event}",
    params(
        ("id" = String, Path, description = "The instance id", pattern = "^[A-Za-z0-9_.:-]{1,128}$"),
        ("event" = String, Path, description = "The event's name"),
        ("expires" = u64, Query, description = "Expiry, ms since the epoch"),
        ("sig" = String, Query, description = "The signature"),
    ),
    request_body(content = Option<Value>, description = "The payload: any JSON; an empty body is null"),
    responses(
        (status = 202, description = "Recorded"),
        (status = 400, description = "Invalid JSON", body = ErrorBody),
        (status = 403, description = "Signature missing, wrong or expired", body = ErrorBody),
        (status = 404, description = "The instance is gone", body = ErrorBody),
        (status = 410, description = "The instance has ended", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
    )
)]
pub(super) async fn callback(
    State(app): State<AppState>,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<CallbackQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let forbidden = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "the callback URL is not valid",
        )
    };
    let (id, event) = p.map(|Path(p)| p).map_err(|_| forbidden())?;
    let q = q.map(|Query(q)| q).map_err(|_| forbidden())?;
    let payload = json_body(body)?;
    app.runtime
        .raise_by_callback(&id, &event, q.expires, &q.sig, &payload)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Moves a `--manual-clock` server's time forward and fires the timers that became due.
#[utoipa::path(
    post,
    path = "/admin/clock/advance",
    security(("bearer" = [])),
    request_body = ClockAdvance,
    responses(
        (status = 200, description = "The new time", body = ClockAdvanced),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 409, description = "The server runs on wall time", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
    )
)]
pub(super) async fn advance_clock(
    State(app): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ClockAdvanced>, ApiError> {
    let body = json_body(body)?;
    let advance: ClockAdvance = serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_request",
            format!("expected {{\"seconds\": N}}: {e}"),
        )
    })?;
    if !advance.seconds.is_finite() || !(0.0..=1e10).contains(&advance.seconds) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "seconds must be a number from 0 to 1e10",
        ));
    }
    let (now, fired) = app
        .runtime
        .advance_clock(Duration::from_secs_f64(advance.seconds))
        .await?;
    Ok(Json(ClockAdvanced {
        now: rfc3339(now),
        timers_fired: fired as u64,
    }))
}

pub(super) fn instance_status(i: &InstanceRow, history: Option<&[Recorded]>) -> InstanceStatus {
    InstanceStatus {
        instance_id: i.id.to_string(),
        name: i.name.clone(),
        runtime_status: i.status,
        input: stored_json(&i.input),
        output: match (&i.output, &i.failure) {
            (Some(o), _) => stored_json(o),
            (None, Some(f)) => Value::String(f.clone()),
            (None, None) => Value::Null,
        },
        custom_status: i
            .custom_status
            .as_deref()
            .map(stored_json)
            .unwrap_or(Value::Null),
        created_time: rfc3339(i.created_at),
        last_updated_time: rfc3339(i.updated_at),
        component_digest: i.digest.to_string(),
        failure: i.failure.clone().map(|message| Failure {
            kind: failure_kind(i.status, &message),
            message,
        }),
        history_events: history.map(|h| h.iter().map(history_json).collect()),
        previous_runs: None,
    }
}

/// The kind of a failure: `terminated`, or the one-word prefix of its message (`kind: text`),
/// or `error`.
fn failure_kind(status: RuntimeStatus, message: &str) -> String {
    if status == RuntimeStatus::Terminated {
        return "terminated".into();
    }
    crate::history::error_kind(message)
        .unwrap_or("error")
        .to_string()
}

/// A history event for people: payload strings that hold JSON are shown as JSON.
pub fn history_json(r: &Recorded) -> Value {
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
