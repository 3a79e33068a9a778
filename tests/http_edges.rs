//! The edges of the HTTP API, over real HTTP: every error weft sends is JSON, also for
//! requests refused before a handler sees them; readiness says whether the store takes
//! writes; an invalid instance id is refused with the rule it broke.

mod common;

use common::{Options, TOKEN, Weft};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Asserts a `{"error": {"code", "message"}}` body with that code.
fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Sends raw bytes to the server and reads one response (at most 10 s): its status and body.
fn raw_request(weft: &Weft, request: &[u8]) -> (u16, String) {
    let addr = weft.url.strip_prefix("http://").expect("http URL");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    stream.write_all(request).expect("send");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some((status, body)) = parse_response(&received) {
            return (status, body);
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!(
                "the connection closed before a whole response: {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "no whole response within 10 s ({e}): {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
}

/// A whole response in `bytes` (with a `content-length`), if there is one yet.
fn parse_response(bytes: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    (body.len() >= length).then(|| (status, body[..length].to_string()))
}

#[tokio::test]
async fn a_uri_over_8_kib_is_refused_with_414_in_json() {
    let weft = Weft::start(Options::new(&[]));
    let long = "a".repeat(9 * 1024);
    let (status, body) = weft
        .request(
            reqwest::Method::GET,
            &format!("/instances?name={long}"),
            None,
        )
        .await;
    assert_error(status, &body, 414, "uri_too_long");
    // Also before the token is checked.
    let (status, body) = raw_request(
        &weft,
        format!("GET /healthz?{long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    let body: Value = serde_json::from_str(&body).expect("a JSON body");
    assert_error(status, &body, 414, "uri_too_long");
}

#[tokio::test]
async fn headers_over_32_kib_are_refused_with_431_in_json() {
    let weft = Weft::start(Options::new(&[]));
    let response = weft
        .http
        .get(format!("{}/instances", weft.url))
        .header("x-padding", "p".repeat(33 * 1024))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 431);
    let body: Value = response.json().await.expect("a JSON body");
    assert_error(431, &body, 431, "headers_too_large");
}

#[tokio::test]
async fn past_hypers_own_limits_the_answers_have_no_body() {
    // What the README says weft cannot make JSON: hyper answers these before weft sees them.
    let weft = Weft::start(Options::new(&[]));
    let long = "a".repeat(70 * 1024);
    let (status, body) = raw_request(
        &weft,
        format!("GET /healthz?{long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert_eq!((status, body.as_str()), (414, ""));
    let many: String = (0..101).map(|i| format!("x-h{i}: v\r\n")).collect();
    let (status, body) = raw_request(
        &weft,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    );
    assert_eq!((status, body.as_str()), (431, ""));
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408_in_json() {
    let mut options = Options::new(&[]);
    options.args = vec!["--body-timeout".into(), "0.5".into()];
    let weft = Weft::start(options);
    // Ten bytes of the hundred announced, then nothing.
    let request = format!(
        "POST /orchestrations/hello-sequence HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n\"0123456789"
    );
    let (status, body) = raw_request(&weft, request.as_bytes());
    let body: Value = serde_json::from_str(&body).expect("a JSON body");
    assert_error(status, &body, 408, "request_timeout");
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_answered_405_in_json() {
    let weft = Weft::start(Options::new(&[]));
    for (method, path) in [
        (reqwest::Method::PUT, "/healthz"),
        (reqwest::Method::DELETE, "/openapi.json"),
        (reqwest::Method::PATCH, "/instances/some-id"),
    ] {
        let (status, body) = weft.request(method.clone(), path, None).await;
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn readyz_answers_503_while_the_database_takes_no_writes() {
    let weft = Weft::start(Options::new(&[]));
    let anonymous = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let readyz = async || {
        let r = anonymous
            .get(format!("{}/readyz", weft.url))
            .send()
            .await
            .expect("readyz");
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.expect("a JSON body"))
    };
    let (status, body) = readyz().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");

    // Another process holds the database's write lock: weft's writes wait, then fail.
    let db = rusqlite::Connection::open(weft.db()).expect("open the database");
    db.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let (status, body) = readyz().await;
    assert_error(status, &body, 503, "not_ready");
    // Liveness does not depend on the store.
    let healthz = anonymous
        .get(format!("{}/healthz", weft.url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthz.status().as_u16(), 200);

    db.execute_batch("ROLLBACK").expect("let go of the lock");
    weft.eventually("readyz answers 200 again", async || {
        (readyz().await.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_invalid_instance_id_is_refused_with_the_whole_rule() {
    let weft = Weft::start(Options::new(&[]));
    for id in ["caf%C3%A9", &"x".repeat(129), "a%20b"] {
        let (status, body) = weft
            .request(
                reqwest::Method::POST,
                &format!("/orchestrations/hello-sequence?instanceId={id}"),
                None,
            )
            .await;
        assert_error(status, &body, 400, "invalid_id");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        for part in [
            "1 to 128 characters",
            "ASCII letter (A-Z, a-z)",
            "digit (0-9)",
            "- _ . :",
        ] {
            assert!(message.contains(part), "{part:?} in {message:?}");
        }
    }
}
