//! The instances pages: the list with its filters, counts and pages; one instance with its
//! timeline and history, updating itself while it runs; and the actions an operator takes.

use super::session::Session;
use super::{Page, encode, given, html_fragment, html_page, pretty, query_string, refusal};
use crate::api::instances::{self as api, ListQuery, PurgeOneQuery, ReasonQuery};
use crate::api::schema::InstanceStatus;
use crate::api::{ApiError, AppState, components};
use crate::history::RuntimeStatus;
use crate::runtime::Status;
use axum::Form;
use axum::body::Bytes;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::BTreeMap;

const STATUSES: [RuntimeStatus; 7] = [
    RuntimeStatus::Pending,
    RuntimeStatus::Running,
    RuntimeStatus::Suspended,
    RuntimeStatus::Completed,
    RuntimeStatus::Failed,
    RuntimeStatus::Terminated,
    RuntimeStatus::ContinuedAsNew,
];

fn badge(status: RuntimeStatus) -> Markup {
    html! { span class={ "badge " (status.as_str().to_lowercase()) } { (status.as_str()) } }
}

/// The list's filters, as the form and the page links carry them (the API's own names).
fn filters(q: &ListQuery) -> ListQuery {
    ListQuery {
        runtime_status: given(&q.runtime_status),
        name: given(&q.name),
        created_from: given(&q.created_from),
        created_to: given(&q.created_to),
        top: q.top,
        continuation_token: given(&q.continuation_token),
    }
}

fn list_link(q: &ListQuery, status: Option<&str>, token: Option<&str>) -> String {
    let top = q.top.map(|t| t.to_string());
    format!(
        "/ui/instances{}",
        query_string(&[
            ("runtimeStatus", status),
            ("name", q.name.as_deref()),
            ("createdFrom", q.created_from.as_deref()),
            ("createdTo", q.created_to.as_deref()),
            ("top", top.as_deref()),
            ("continuationToken", token),
        ])
    )
}

pub(super) async fn list(
    State(app): State<AppState>,
    session: Session,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = match crate::api::extract::query(q) {
        Ok(q) => filters(&q),
        Err(e) => return super::refused_page(&session, "Instances", &e),
    };
    let counts = async {
        let f = api::filter(
            None,
            q.name.clone(),
            q.created_from.as_deref(),
            q.created_to.as_deref(),
        )?;
        let mut by_status = BTreeMap::new();
        for c in app.runtime.instance_counts(f).await? {
            *by_status.entry(c.status.as_str()).or_insert(0u64) += c.count;
        }
        Ok::<_, ApiError>(by_status)
    };
    let (page, counts) = match (
        api::list(State(app.clone()), Ok(Query(q.clone()))).await,
        counts.await,
    ) {
        (Ok(page), Ok(counts)) => (page.0, counts),
        (Err(e), _) | (_, Err(e)) => {
            return html_page(
                e.status(),
                Page::new("Instances", &session),
                html! { h1 { "Instances" } (filter_form(&q)) (refusal(&e)) },
            );
        }
    };
    let total: u64 = counts.values().sum();
    let body = html! {
        h1 { "Instances" }
        ul.counts {
            li { a href=(list_link(&q, None, None)) { "All " span.count { (total) } } }
            @for s in STATUSES {
                li { a href=(list_link(&q, Some(s.as_str()), None)) {
                    (badge(s)) " " span.count data-status=(s.as_str()) { (counts.get(s.as_str()).copied().unwrap_or(0)) }
                } }
            }
        }
        (filter_form(&q))
        @if page.instances.is_empty() {
            p.empty { "No instance matches." }
        } @else {
            table.instances {
                thead { tr { th { "Instance" } th { "Orchestration" } th { "Status" } th { "Created" } th { "Updated" } } }
                tbody {
                    @for i in &page.instances {
                        tr {
                            td { a href={ "/ui/instances/" (encode(&i.instance_id)) } { code { (i.instance_id) } } }
                            td { (i.name) }
                            td { (badge(i.runtime_status)) }
                            td { time { (i.created_time) } }
                            td { time { (i.last_updated_time) } }
                        }
                    }
                }
            }
        }
        @if let Some(token) = &page.continuation_token {
            p.paging { a rel="next" href=(list_link(&q, q.runtime_status.as_deref(), Some(token))) { "Next page →" } }
        }
    };
    html_page(StatusCode::OK, Page::new("Instances", &session), body)
}

fn filter_form(q: &ListQuery) -> Markup {
    let status = q.runtime_status.as_deref().unwrap_or("");
    html! {
        form.filters method="get" action="/ui/instances" {
            label { "Status "
                select name="runtimeStatus" {
                    option value="" selected[status.is_empty()] { "any" }
                    @for s in STATUSES {
                        option value=(s.as_str()) selected[status == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            label { "Orchestration " input type="text" name="name" value=[q.name.as_deref()]; }
            label { "Created from " input type="text" name="createdFrom" placeholder="2026-12-01T09:00:00Z" value=[q.created_from.as_deref()]; }
            label { "to " input type="text" name="createdTo" placeholder="2026-12-02T09:00:00Z" value=[q.created_to.as_deref()]; }
            button type="submit" { "Filter" }
        }
    }
}

/// What the page says after an action succeeded (`?done=`).
fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "raise" => "The event was raised.",
        "terminate" => "The instance was terminated.",
        "suspend" => "The instance was suspended.",
        "resume" => "The instance was resumed.",
        "upgrade" => "The instance was moved to the other component.",
        _ => return None,
    })
}

#[derive(Deserialize, Default)]
pub(super) struct ShowQuery {
    done: Option<String>,
}

pub(super) async fn show(
    State(app): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    q: Result<Query<ShowQuery>, QueryRejection>,
) -> Response {
    let done = q.ok().and_then(|Query(q)| q.done);
    instance_page(
        &app,
        &session,
        &id,
        StatusCode::OK,
        notice(done.as_deref()).map(|n| html! { div.notice role="status" { (n) } }),
    )
    .await
}

/// The instance page with `status`, and `banner` (a notice or a refusal) above it.
async fn instance_page(
    app: &AppState,
    session: &Session,
    id: &str,
    status: StatusCode,
    banner: Option<Markup>,
) -> Response {
    let title = format!("Instance {id}");
    let live = match live_part(app, id).await {
        Ok(live) => live,
        Err(e) => {
            return html_page(
                e.status(),
                Page::new(&title, session),
                html! { h1 { "Instance " code { (id) } } (banner.unwrap_or_default()) (refusal(&e)) },
            );
        }
    };
    let digests: Vec<String> = match app.runtime.components().await {
        Ok(c) => c.into_iter().map(|c| c.digest.to_string()).collect(),
        Err(_) => Vec::new(),
    };
    let body = html! {
        h1 { "Instance " code { (id) } }
        @if let Some(b) = banner { (b) }
        section #live data-src={ "/ui/instances/" (encode(id)) "/live" } { (live) }
        (actions(session, id, &digests))
    };
    html_page(status, Page::new(&title, session), body)
}

/// The part of the page that changes while the instance runs.
async fn live_part(app: &AppState, id: &str) -> Result<Markup, ApiError> {
    let id = crate::api::extract::instance_id(id)?;
    let Status {
        instance,
        history,
        previous_runs,
    } = app.runtime.status(&id, true).await?;
    let history = history.unwrap_or_default();
    let running = !instance.status.is_terminal();
    let until = if running {
        app.runtime.now()
    } else {
        instance.updated_at
    };
    let shown: InstanceStatus = api::instance_status(&instance, None);
    let timeline = weft_core::timeline::timeline(&history, until);
    // The trace id, to look the instance up in a tracing backend.
    let trace_id = history.first().and_then(|r| match &r.event {
        crate::history::HistoryEvent::Started { trace: Some(t), .. } => {
            t.split('-').nth(1).map(str::to_string)
        }
        _ => None,
    });
    Ok(html! {
        div.live data-running=(running) {
            dl.summary {
                dt { "Orchestration" } dd { (shown.name) }
                dt { "Status" } dd.status { (badge(shown.runtime_status)) }
                dt { "Created" } dd { time { (shown.created_time) } }
                dt { "Updated" } dd { time { (shown.last_updated_time) } }
                dt { "Component" } dd { code { (shown.component_digest) } }
                @if let Some(trace_id) = &trace_id {
                    dt { "Trace" } dd { code.trace { (trace_id) } }
                }
                @if !previous_runs.is_empty() {
                    dt { "Earlier runs" } dd { (previous_runs.len()) " (continued as new)" }
                }
                dt { "Custom status" } dd { pre.json.custom-status { (pretty(&shown.custom_status)) } }
                dt { "Input" } dd { pre.json.input { (pretty(&shown.input)) } }
                @if let Some(f) = &shown.failure {
                    dt { "Failure" } dd.failure { span.kind { (f.kind) } " " (f.message) }
                } @else {
                    dt { "Output" } dd { pre.json.output { (pretty(&shown.output)) } }
                }
            }
            h2 { "Timeline" }
            (super::timeline::svg(&timeline))
            h2 { "History" }
            table.history {
                thead { tr { th { "#" } th { "Time" } th { "Event" } th { "Details" } } }
                tbody {
                    @for r in &history {
                        @let json = api::history_json(r);
                        tr {
                            td { (r.seq) }
                            td { time { (crate::clock::rfc3339(r.recorded_at)) } }
                            td { code { (json["type"].as_str().unwrap_or("")) } }
                            td { pre.json { (details(&json)) } }
                        }
                    }
                }
            }
        }
    })
}

/// A history event's fields but its type, seq and time.
fn details(json: &serde_json::Value) -> String {
    let mut v = json.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["type", "seq", "recorded_at", "timestamp"] {
            o.remove(k);
        }
    }
    serde_json::to_string(&v).unwrap_or_default()
}

pub(super) async fn live(
    State(app): State<AppState>,
    _session: Session,
    Path(id): Path<String>,
) -> Response {
    match live_part(&app, &id).await {
        Ok(live) => html_fragment(StatusCode::OK, live),
        Err(e) => html_fragment(e.status(), refusal(&e)),
    }
}

fn actions(session: &Session, id: &str, digests: &[String]) -> Markup {
    let to = |action: &str| format!("/ui/instances/{}/{action}", encode(id));
    html! {
        section.actions {
            h2 { "Actions" }
            form.raise method="post" action=(to("raise")) data-confirm="Raise this event?" {
                input type="hidden" name="csrf" value=(session.csrf);
                label { "Event name " input type="text" name="event" required; }
                label { "Payload (JSON) " textarea name="payload" rows="3" { "null" } }
                button type="submit" { "Raise event" }
            }
            @for (action, label, question) in [
                ("terminate", "Terminate", "Terminate this instance? It ends at once."),
                ("suspend", "Suspend", "Suspend this instance?"),
                ("resume", "Resume", "Resume this instance?"),
            ] {
                form class=(action) method="post" action=(to(action)) data-confirm=(question) {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label { "Reason " input type="text" name="reason"; }
                    button type="submit" { (label) }
                }
            }
            form.purge method="post" action=(to("purge")) data-confirm="Purge this instance and its history? This cannot be undone." {
                input type="hidden" name="csrf" value=(session.csrf);
                label { input type="checkbox" name="force" value="true"; " terminate it first if it runs" }
                button type="submit" { "Purge" }
            }
            form.upgrade method="post" action=(to("upgrade")) data-confirm="Move this instance to that component?" {
                input type="hidden" name="csrf" value=(session.csrf);
                label { "Component "
                    select name="to" {
                        @for d in digests { option value=(d) { (d) } }
                    }
                }
                button type="submit" { "Upgrade" }
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
    event: Option<String>,
    payload: Option<String>,
    reason: Option<String>,
    force: Option<String>,
    to: Option<String>,
}

pub(super) async fn act(
    State(app): State<AppState>,
    session: Session,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => {
            let e = ApiError::bad_request("invalid_form", e.body_text());
            return super::refused_page(&session, "Refused", &e);
        }
    };
    if let Err(refused) = session.check(&form.csrf) {
        return *refused;
    }
    let path = Ok(Path(id.clone()));
    let reason = ReasonQuery {
        reason: given(&form.reason),
        recursive: None,
    };
    let state = State(app.clone());
    let done: Result<(), ApiError> = match action.as_str() {
        "raise" => {
            let event = given(&form.event).unwrap_or_default();
            let payload = Bytes::from(form.payload.unwrap_or_default());
            api::raise_event(state, Ok(Path((id.clone(), event))), Ok(payload))
                .await
                .map(drop)
        }
        "terminate" => api::terminate(state, path, Ok(Query(reason)))
            .await
            .map(drop),
        "suspend" => api::suspend(state, path, Ok(Query(reason))).await.map(drop),
        "resume" => api::resume(state, path, Ok(Query(reason))).await.map(drop),
        "purge" => {
            let force = form.force.as_deref() == Some("true");
            match api::purge(state, path, Ok(Query(PurgeOneQuery { force }))).await {
                Ok(_) => return Redirect::to("/ui/instances").into_response(),
                Err(e) => Err(e),
            }
        }
        "upgrade" => {
            let to = components::UpgradeQuery {
                to: given(&form.to).unwrap_or_default(),
            };
            components::upgrade(state, path, Ok(Query(to)))
                .await
                .map(drop)
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the dashboard has no action '{action}'"),
        )),
    };
    match done {
        Ok(()) => {
            Redirect::to(&format!("/ui/instances/{}?done={action}", encode(&id))).into_response()
        }
        Err(e) => instance_page(&app, &session, &id, e.status(), Some(refusal(&e))).await,
    }
}
