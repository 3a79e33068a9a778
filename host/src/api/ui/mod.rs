//! The dashboard at `/ui/`: pages rendered on the server from the same handlers the API
//! answers with (maud writes every value into them as text), one stylesheet and one small
//! script embedded in the binary, and a session cookie signed with the server's token.

mod browse;
mod instances;
mod session;
mod timeline;

use super::{ApiError, AppState};
use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use session::Session;

/// The dashboard's routes (each page needs a session; see [`session`]).
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/instances") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/instances") }))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/assets/app.css", get(stylesheet))
        .route("/ui/assets/app.js", get(script))
        .route("/ui/instances", get(instances::list))
        .route("/ui/instances/{id}", get(instances::show))
        .route("/ui/instances/{id}/live", get(instances::live))
        .route("/ui/instances/{id}/{action}", post(instances::act))
        .route("/ui/entities", get(browse::entities))
        .route("/ui/entities/{name}/{key}", get(browse::entity))
        .route("/ui/components", get(browse::components))
        .layer(middleware::map_response(protect))
}

/// What every dashboard response carries: no framing, no inline script or style, nothing
/// loaded from elsewhere, forms posting only here, nothing cached.
async fn protect(mut response: Response) -> Response {
    const HEADERS: [(&str, &str); 5] = [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ];
    for (name, value) in HEADERS {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/app.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/app.js"),
    )
        .into_response()
}

/// A page's title and, when signed in, the session its navigation and sign-out use.
pub(super) struct Page<'a> {
    title: String,
    session: Option<&'a Session>,
}

impl<'a> Page<'a> {
    pub(super) fn new(title: impl Into<String>, session: &'a Session) -> Self {
        Self {
            title: title.into(),
            session: Some(session),
        }
    }

    /// A page shown before signing in.
    pub(super) fn bare(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            session: None,
        }
    }
}

/// A whole HTML page with `status`.
pub(super) fn html_page(status: StatusCode, page: Page<'_>, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title) " · weft" }
                link rel="stylesheet" href="/ui/assets/app.css";
                script src="/ui/assets/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/ui/instances" { "weft" }
                    @if let Some(s) = page.session {
                        nav {
                            a href="/ui/instances" { "Instances" }
                            a href="/ui/entities" { "Entities" }
                            a href="/ui/components" { "Components" }
                        }
                        form.signout method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    html_fragment(status, markup)
}

/// A part of a page (what a live page fetches), with `status`.
pub(super) fn html_fragment(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// The API's refusal, as the dashboard shows it: its code and message.
pub(super) fn refusal(e: &ApiError) -> Markup {
    html! {
        div.error role="alert" {
            strong { "Refused (" (e.status().as_u16()) " " (e.code()) "): " }
            (e.message())
        }
    }
}

/// A page that shows only the API's refusal, with its status.
pub(super) fn refused_page(session: &Session, title: &str, e: &ApiError) -> Response {
    html_page(
        e.status(),
        Page::new(title, session),
        html! { h1 { (title) } (refusal(e)) },
    )
}

/// What [`encode`] escapes: everything but letters, digits and `-._~`.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` made safe as one path segment or query value.
pub(super) fn encode(text: &str) -> String {
    utf8_percent_encode(text, ESCAPED).to_string()
}

/// A query string (with its `?`, or empty) of the pairs whose value is not empty.
pub(super) fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", encode(v)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// `None` for a form field left empty.
pub(super) fn given(field: &Option<String>) -> Option<String> {
    field
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// JSON for people: indented.
pub(super) fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_string_encodes_its_values_and_leaves_out_empty_ones() {
        assert_eq!(
            query_string(&[("a", Some("x y&z")), ("b", Some("")), ("c", None)]),
            "?a=x%20y%26z"
        );
        assert_eq!(query_string(&[("a", None)]), "");
        assert_eq!(encode("a/b<"), "a%2Fb%3C");
    }
}
