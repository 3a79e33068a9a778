//! Signing in to the dashboard: the server's token, given once in a form, becomes a signed
//! session cookie (HttpOnly, SameSite=Strict, 12 hours); each form that changes something
//! carries a token derived from that session, so a request made from another site fails.

use super::{Page, html_page};
use crate::api::AppState;
use crate::clock::{Clock, Millis, SystemClock};
use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac};
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
const COOKIE: &str = "weft_session";

/// How long a sign-in lasts.
const LIFETIME_MS: Millis = 12 * 3600 * 1000;

/// A signed-in person: the token their forms must carry.
pub(in crate::api) struct Session {
    pub csrf: String,
}

/// HMAC-SHA256 of `message` under the server's token, in hex.
fn mac(token: &str, message: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes any key size");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether two strings are equal, compared in constant time.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A fresh session cookie's value: when it was issued, and its signature.
fn issue(token: &str, now: Millis) -> String {
    format!("{now}.{}", mac(token, &format!("session:{now}")))
}

/// The session of a cookie value, if it is signed by this server's token and not expired.
fn verify(token: &str, value: &str, now: Millis) -> Option<Session> {
    let (issued, signature) = value.split_once('.')?;
    let at: Millis = issued.parse().ok()?;
    let fresh = at <= now + 60_000 && now.saturating_sub(at) < LIFETIME_MS;
    (fresh && same(signature, &mac(token, &format!("session:{at}")))).then(|| Session {
        csrf: mac(token, &format!("csrf:{value}")),
    })
}

impl Session {
    /// Refuses a form whose token is not this session's.
    pub(in crate::api) fn check(&self, presented: &str) -> Result<(), Box<Response>> {
        if same(presented, &self.csrf) {
            return Ok(());
        }
        Err(Box::new(html_page(
            StatusCode::FORBIDDEN,
            Page::bare("Refused"),
            html! {
                h1 { "Refused" }
                p.error { "This form did not come from this dashboard (its token is missing or stale). Nothing was changed." }
                p { a href="/ui/instances" { "Back to the instances" } }
            },
        )))
    }
}

fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        cookie_of(&parts.headers)
            .and_then(|v| verify(&app.token, &v, SystemClock.now()))
            .ok_or_else(|| Redirect::to("/ui/login").into_response())
    }
}

/// The session cookie with `value`, or the one that removes it (`None`).
fn set_cookie(app: &AppState, value: Option<String>) -> String {
    let removing = value.is_none();
    let mut c = Cookie::build((COOKIE, value.unwrap_or_default()))
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(app.public_url.starts_with("https:"))
        .max_age(cookie::time::Duration::milliseconds(if removing {
            0
        } else {
            LIFETIME_MS as i64
        }))
        .build();
    if removing {
        c.set_value("");
    }
    c.to_string()
}

fn login_form(status: StatusCode, error: Option<&str>) -> Response {
    html_page(
        status,
        Page::bare("Sign in"),
        html! {
            form.signin method="post" action="/ui/login" {
                h1 { "Sign in to weft" }
                @if let Some(e) = error { p.error role="alert" { (e) } }
                label for="token" { "The server's token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub(super) async fn login_page() -> Response {
    login_form(StatusCode::OK, None)
}

#[derive(Deserialize)]
pub(super) struct SignIn {
    token: String,
}

pub(super) async fn login(
    State(app): State<AppState>,
    form: Result<Form<SignIn>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(SignIn { token })) = form else {
        return login_form(StatusCode::BAD_REQUEST, Some("Give the server's token."));
    };
    // Digests compared in constant time, so neither the token nor its length leaks.
    let ok: bool = Sha256::digest(token.as_bytes())
        .ct_eq(&Sha256::digest(app.token.as_bytes()))
        .into();
    if !ok {
        return login_form(
            StatusCode::UNAUTHORIZED,
            Some("That is not the server's token."),
        );
    }
    let cookie = set_cookie(&app, Some(issue(&app.token, SystemClock.now())));
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/ui/instances"),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct SignOut {
    #[serde(default)]
    csrf: String,
}

pub(super) async fn logout(
    State(app): State<AppState>,
    session: Session,
    Form(form): Form<SignOut>,
) -> Response {
    if let Err(refused) = session.check(&form.csrf) {
        return *refused;
    }
    let cookie = set_cookie(&app, None);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_signed_by_the_token_and_expires() {
        let a = "secret";
        let value = issue(a, 1_000_000);
        assert!(verify(a, &value, 1_000_000).is_some());
        assert!(verify(a, &value, 1_000_000 + LIFETIME_MS - 1).is_some());
        assert!(
            verify(a, &value, 1_000_000 + LIFETIME_MS).is_none(),
            "expired"
        );
        assert!(verify("other", &value, 1_000_000).is_none());
        let forged = format!("2000000.{}", value.split_once('.').unwrap().1);
        assert!(
            verify(a, &forged, 2_000_000).is_none(),
            "the time is signed"
        );
        assert!(verify(a, "garbage", 0).is_none());
    }
}
