//! Every route through `router().oneshot()`, on an in-process runtime with real components and
//! a real SQLite file.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;
use weft::api::{AppState, router};
use weft::clock::{Clock, ManualClock, SystemClock, parse_rfc3339};
use weft::runtime::{Runtime, Settings};
use weft::store::{SqliteStore, Synchronous};

const TOKEN: &str = "secret-token";

struct App {
    router: Router,
    _dir: tempfile::TempDir,
}

async fn app_with(clock: Arc<dyn Clock>) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(
        SqliteStore::open(&dir.path().join("weft.db"), Synchronous::Full).unwrap(),
    );
    let settings = Settings {
        public_url: "http://weft.test".into(),
        ..Settings::default()
    };
    let cache = common::root().join("target/weft-test-cache");
    let runtime = Runtime::new(store, clock, Some(cache), settings)
        .await
        .unwrap();
    for c in ["hello-sequence", "fixtures"] {
        runtime
            .register(std::fs::read(common::component(c)).unwrap())
            .await
            .unwrap();
    }
    runtime.recover().await.unwrap();
    let router = router(AppState {
        runtime,
        public_url: "http://weft.test".into(),
        token: TOKEN.into(),
        max_body: weft::api::MAX_BODY,
        body_timeout: weft::api::limits::BODY_TIMEOUT,
    });
    App { router, _dir: dir }
}

async fn app() -> App {
    let start = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    app_with(Arc::new(ManualClock::new(start))).await
}

impl App {
    async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        uri: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_default())
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("every answer is JSON")
        };
        (status, value)
    }

    async fn call(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        self.call_as(Some(TOKEN), method, uri, body).await
    }

    async fn start(&self, name: &str, id: &str, input: &str) {
        let (s, b) = self
            .call(
                Method::POST,
                &format!("/orchestrations/{name}?instanceId={id}"),
                Some(input),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }

    async fn status_of(&self, id: &str) -> Value {
        let (s, b) = self
            .call(
                Method::GET,
                &format!("/instances/{id}?showHistory=true"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b
    }

    async fn until(&self, id: &str, f: impl Fn(&Value) -> bool) -> Value {
        common::eventually(&format!("{id} reaches the expected state"), async || {
            let s = self.status_of(id).await;
            f(&s).then_some(s)
        })
        .await
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

fn has_event(s: &Value, kind: &str) -> bool {
    s["historyEvents"]
        .as_array()
        .is_some_and(|h| h.iter().any(|e| e["type"] == kind))
}

#[tokio::test]
async fn management_routes_need_the_bearer_token() {
    let app = app().await;
    let routes = [
        (Method::POST, "/orchestrations/hello-sequence"),
        (Method::GET, "/instances"),
        (Method::DELETE, "/instances"),
        (Method::GET, "/instances/x"),
        (Method::DELETE, "/instances/x"),
        (Method::POST, "/instances/x/raiseEvent/e"),
        (Method::POST, "/instances/x/terminate"),
        (Method::POST, "/instances/x/suspend"),
        (Method::POST, "/instances/x/resume"),
        (Method::POST, "/admin/clock/advance"),
    ];
    for (method, uri) in routes {
        for token in [
            None,
            Some("wrong"),
            Some("secret-token-but-longer"),
            Some(""),
        ] {
            let (s, b) = app.call_as(token, method.clone(), uri, Some("1")).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {uri} with {token:?}");
            assert_eq!(code(&b), "unauthorized");
        }
    }
    // The right token gets through (here: to a 404 for an unknown instance).
    let (s, _) = app.call(Method::GET, "/instances/x", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Open routes.
    let (s, _) = app.call_as(None, Method::GET, "/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, doc) = app.call_as(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        "/orchestrations/{name}",
        "/instances",
        "/instances/{id}",
        "/instances/{id}/raiseEvent/{event}",
        "/instances/{id}/terminate",
        "/instances/{id}/suspend",
        "/instances/{id}/resume",
        "/callbacks/{id}/{event}",
        "/admin/clock/advance",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
}

#[tokio::test]
async fn start_status_raise_terminate_and_purge() {
    let app = app().await;
    let (s, links) = app
        .call(
            Method::POST,
            "/orchestrations/wait-twice?instanceId=w1",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(links["statusQueryGetUri"], "http://weft.test/instances/w1");
    assert_eq!(
        links["sendEventPostUri"],
        "http://weft.test/instances/w1/raiseEvent/{eventName}"
    );
    app.until("w1", |s| has_event(s, "timer_created")).await;

    let (s, _) = app
        .call(Method::POST, "/instances/w1/raiseEvent/answer", Some("5"))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    app.until("w1", |s| {
        s["historyEvents"].as_array().is_some_and(|h| {
            h.iter()
                .filter(|e| e["type"] == "event_wait_created")
                .count()
                == 2
        })
    })
    .await;
    let (s, _) = app
        .call(Method::POST, "/instances/w1/terminate?reason=enough", None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let st = app.status_of("w1").await;
    assert_eq!(st["runtimeStatus"], "Terminated");
    assert_eq!(st["output"], "enough");
    for action in ["terminate", "suspend", "resume"] {
        let (s, b) = app
            .call(Method::POST, &format!("/instances/w1/{action}"), None)
            .await;
        assert_eq!(
            (s, code(&b)),
            (StatusCode::GONE, "instance_finished"),
            "{action}"
        );
    }
    let (s, b) = app
        .call(Method::POST, "/instances/w1/raiseEvent/answer", Some("5"))
        .await;
    assert_eq!((s, code(&b)), (StatusCode::GONE, "instance_finished"));

    let (s, b) = app.call(Method::DELETE, "/instances/w1", None).await;
    assert_eq!((s, &b["instancesDeleted"]), (StatusCode::OK, &json!(1)));
    let (s, b) = app.call(Method::GET, "/instances/w1", None).await;
    assert_eq!((s, code(&b)), (StatusCode::NOT_FOUND, "instance_not_found"));
    let (s, _) = app.call(Method::DELETE, "/instances/w1", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for action in ["terminate", "suspend", "resume"] {
        let (s, _) = app
            .call(Method::POST, &format!("/instances/w1/{action}"), None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{action}");
    }
}

#[tokio::test]
async fn listing_filters_and_pages() {
    let app = app().await;
    for i in 0..5 {
        app.start("hello-sequence", &format!("seq-{i}"), "null")
            .await;
    }
    for i in 0..2 {
        app.start("wait-twice", &format!("wait-{i}"), "null").await;
    }
    for i in 0..5 {
        app.until(&format!("seq-{i}"), |s| s["runtimeStatus"] == "Completed")
            .await;
    }
    for i in 0..2 {
        app.until(&format!("wait-{i}"), |s| s["runtimeStatus"] == "Running")
            .await;
    }
    let ids = |v: &Value| -> Vec<String> {
        v["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["instanceId"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, all) = app.call(Method::GET, "/instances", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&all).len(), 7);
    assert!(all["continuationToken"].is_null());

    let (_, running) = app
        .call(
            Method::GET,
            "/instances?runtimeStatus=Running,Suspended",
            None,
        )
        .await;
    assert_eq!(ids(&running), vec!["wait-0", "wait-1"]);
    let (_, named) = app
        .call(Method::GET, "/instances?name=hello-sequence", None)
        .await;
    assert_eq!(ids(&named).len(), 5);
    let (_, none) = app
        .call(
            Method::GET,
            "/instances?createdFrom=2026-01-02T00:00:00Z",
            None,
        )
        .await;
    assert!(ids(&none).is_empty());
    let (_, some) = app
        .call(
            Method::GET,
            "/instances?createdFrom=2026-01-01T00:00:00Z&createdTo=2026-01-01T00:00:01Z",
            None,
        )
        .await;
    assert_eq!(ids(&some).len(), 7);

    // Pages of 3: every instance once, in order.
    let mut seen = Vec::new();
    let mut uri = "/instances?top=3".to_string();
    loop {
        let (s, page) = app.call(Method::GET, &uri, None).await;
        assert_eq!(s, StatusCode::OK);
        seen.extend(ids(&page));
        match page["continuationToken"].as_str() {
            Some(t) => uri = format!("/instances?top=3&continuationToken={t}"),
            None => break,
        }
    }
    assert_eq!(seen, ids(&all));

    for bad in [
        "/instances?top=0",
        "/instances?top=1001",
        "/instances?top=x",
        "/instances?runtimeStatus=Sleeping",
        "/instances?createdFrom=yesterday",
        "/instances?continuationToken=nope",
    ] {
        let (s, b) = app.call(Method::GET, bad, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {b}");
        assert!(code(&b).starts_with("invalid"), "{bad}: {b}");
    }

    // Purge by filter removes only ended instances.
    let (s, b) = app.call(Method::DELETE, "/instances", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["instancesDeleted"], 5);
    let (_, left) = app.call(Method::GET, "/instances", None).await;
    assert_eq!(ids(&left), vec!["wait-0", "wait-1"]);
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_a_json_error() {
    let app = app().await;
    let cases: &[(Method, &str, Option<&str>, StatusCode, &str)] = &[
        (
            Method::POST,
            "/orchestrations/nope",
            None,
            StatusCode::NOT_FOUND,
            "unknown_orchestration",
        ),
        (
            Method::POST,
            "/orchestrations/hello-sequence",
            Some("{"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Method::POST,
            "/orchestrations/hello-sequence?instanceId=a%20b",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            Method::GET,
            "/instances/a%20b",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            Method::GET,
            "/instances/x?showHistory=maybe",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            Method::POST,
            "/instances/x/raiseEvent/e",
            Some("[1,"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Method::POST,
            "/admin/clock/advance",
            Some(r#"{"seconds": -1}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::POST,
            "/admin/clock/advance",
            Some(r#"{"minutes": 1}"#),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            Method::GET,
            "/nowhere",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PUT,
            "/instances/x",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::POST,
            "/callbacks/x/e",
            None,
            StatusCode::FORBIDDEN,
            "invalid_signature",
        ),
        (
            Method::POST,
            "/callbacks/x/e?expires=1&sig=00",
            None,
            StatusCode::FORBIDDEN,
            "invalid_signature",
        ),
    ];
    for (method, uri, body, status, expected) in cases {
        let (s, b) = app.call(method.clone(), uri, *body).await;
        assert_eq!((s, code(&b)), (*status, *expected), "{method} {uri}: {b}");
        assert!(b["error"]["message"].is_string());
    }
    let big = format!("\"{}\"", "x".repeat(weft::api::MAX_BODY + 1));
    let (s, b) = app
        .call(Method::POST, "/orchestrations/hello-sequence", Some(&big))
        .await;
    assert_eq!(
        (s, code(&b)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}

#[tokio::test]
async fn the_clock_moves_only_when_it_is_manual() {
    let app = app_with(Arc::new(SystemClock)).await;
    let (s, b) = app
        .call(
            Method::POST,
            "/admin/clock/advance",
            Some(r#"{"seconds": 1}"#),
        )
        .await;
    assert_eq!((s, code(&b)), (StatusCode::CONFLICT, "clock_not_manual"));
}
