//! The entities pages (the list, one entity's state and operation log) and the components page
//! (each deployed version with what it serves and the instances on it).

use super::session::Session;
use super::{Page, encode, given, html_page, pretty, query_string, refused_page};
use crate::api::entities::{self as api, HistoryQuery, ListQuery};
use crate::api::{AppState, components};
use crate::store::Filter;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use std::collections::BTreeMap;

pub(super) async fn entities(
    State(app): State<AppState>,
    session: Session,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let q = match crate::api::extract::query(q) {
        Ok(q) => q,
        Err(e) => return refused_page(&session, "Entities", &e),
    };
    let q = ListQuery {
        name: given(&q.name),
        top: q.top,
        continuation_token: given(&q.continuation_token),
    };
    let page = match api::list_entities(State(app), Ok(Query(q.clone()))).await {
        Ok(page) => page.0,
        Err(e) => return refused_page(&session, "Entities", &e),
    };
    let body = html! {
        h1 { "Entities" }
        form.filters method="get" action="/ui/entities" {
            label { "Name " input type="text" name="name" value=[q.name.as_deref()]; }
            button type="submit" { "Filter" }
        }
        @if page.entities.is_empty() {
            p.empty { "No entity matches." }
        } @else {
            table.entities {
                thead { tr { th { "Entity" } th { "Key" } th { "Operations" } th { "Waiting" } th { "Last changed" } } }
                tbody {
                    @for e in &page.entities {
                        tr {
                            td { (e.name) }
                            td { a href={ "/ui/entities/" (encode(&e.name)) "/" (encode(&e.key)) } { code { (e.key) } } }
                            td { (e.operation_count) }
                            td { (e.pending_operations) }
                            td { time { (e.last_modified_time.as_deref().unwrap_or("")) } }
                        }
                    }
                }
            }
        }
        @if let Some(token) = &page.continuation_token {
            p.paging { a rel="next" href={ "/ui/entities" (query_string(&[("name", q.name.as_deref()), ("continuationToken", Some(token))])) } { "Next page →" } }
        }
    };
    html_page(StatusCode::OK, Page::new("Entities", &session), body)
}

pub(super) async fn entity(
    State(app): State<AppState>,
    session: Session,
    Path((name, key)): Path<(String, String)>,
) -> Response {
    let title = format!("Entity {name}/{key}");
    let path = || Ok(Path((name.clone(), key.clone())));
    let state = match api::get_entity(State(app.clone()), path()).await {
        Ok(s) => s.0,
        Err(e) => return refused_page(&session, &title, &e),
    };
    let log =
        match api::entity_history(State(app), path(), Ok(Query(HistoryQuery::default()))).await {
            Ok(l) => l.0,
            Err(e) => return refused_page(&session, &title, &e),
        };
    let body = html! {
        h1 { "Entity " code { (name) } " / " code { (key) } }
        dl.summary {
            dt { "Operations applied" } dd { (state.operation_count) }
            dt { "Waiting" } dd { (state.pending_operations) }
            dt { "Last changed" } dd { (state.last_modified_time.as_deref().unwrap_or("")) }
            dt { "State" } dd { pre.json.state { (pretty(&state.state)) } }
        }
        h2 { "Operation log" }
        table.operations {
            thead { tr { th { "#" } th { "Time" } th { "Operation" } th { "Input" } th { "Output" } th { "From" } } }
            tbody {
                @for op in &log.operations {
                    tr {
                        td { (op.seq) }
                        td { time { (op.time) } }
                        td { code { (op.operation) } }
                        td { pre.json { (op.input) } }
                        td {
                            @if let Some(err) = &op.error { span.failure { (err) } }
                            @else if let Some(out) = &op.output { pre.json { (out) } }
                        }
                        td {
                            @if let Some(src) = &op.source {
                                a href={ "/ui/instances/" (encode(src)) } { code { (src) } }
                            }
                        }
                    }
                }
            }
        }
    };
    html_page(StatusCode::OK, Page::new(&title, &session), body)
}

pub(super) async fn components(State(app): State<AppState>, session: Session) -> Response {
    let list = match components::list_components(State(app.clone())).await {
        Ok(l) => l.0,
        Err(e) => return refused_page(&session, "Components", &e),
    };
    // Instances on each version: (running, all).
    let mut on: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    match app.runtime.instance_counts(Filter::default()).await {
        Ok(counts) => {
            for c in counts {
                let n = on.entry(c.digest.to_string()).or_default();
                n.1 += c.count;
                if !c.status.is_terminal() {
                    n.0 += c.count;
                }
            }
        }
        Err(e) => return refused_page(&session, "Components", &e.into()),
    }
    let body = html! {
        h1 { "Components" }
        table.components {
            thead { tr { th { "Digest" } th { "Deployed" } th { "Serves" } th { "Also holds" } th { "Instances (unfinished / all)" } } }
            tbody {
                @for c in &list.components {
                    @let (open, all) = on.get(&c.digest).copied().unwrap_or_default();
                    tr {
                        td { code title=(c.digest) { (c.digest[..12]) "…" } @if !c.loads { " " span.failure { "does not load" } } }
                        td { time { (c.deployed_time) } }
                        td { ul.names {
                            @for o in &c.serving_orchestrations { li { "orchestration " (o) } }
                            @for e in &c.serving_entities { li { "entity " (e) } }
                        } }
                        td { ul.names {
                            @for o in c.orchestrations.iter().filter(|o| !c.serving_orchestrations.contains(o)) { li { "orchestration " (o) } }
                            @for a in &c.activities { li { "activity " (a) } }
                        } }
                        td {
                            a href={ "/ui/instances" } { (open) " / " (all) }
                        }
                    }
                }
            }
        }
    };
    html_page(StatusCode::OK, Page::new("Components", &session), body)
}
