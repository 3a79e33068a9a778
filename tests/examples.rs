//! The example workflows besides phone verification, and the API's answers to bad requests.

mod common;

use common::{Options, Weft};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn hello_sequence_calls_three_activities_in_order() {
    let weft = Weft::start(Options::new(&["hello-sequence"]));
    weft.start_instance("hello-sequence", "seq", json!(null))
        .await;
    let status = weft.finished("seq").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(
        status["output"],
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );
    let scheduled: Vec<_> = status["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "activity_scheduled")
        .map(|e| e["input"].clone())
        .collect();
    assert_eq!(
        scheduled,
        vec![json!("Tokyo"), json!("Seattle"), json!("London")]
    );
}

#[tokio::test]
async fn fan_out_joins_all_activities() {
    let weft = Weft::start(Options::new(&["hello-sequence"]));
    weft.start_instance("fan-out", "fan", json!(200)).await;
    let status = weft.finished("fan").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    let n: u64 = 200;
    assert_eq!(status["output"], json!(n * (n + 1) * (2 * n + 1) / 6));
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors() {
    let weft = Weft::start(Options::new(&["hello-sequence"]));
    let error_code = |body: &serde_json::Value| body["error"]["code"].as_str().unwrap().to_string();

    let (s, body) = weft.request(Method::GET, "/instances/nobody", None).await;
    assert_eq!((s, error_code(&body).as_str()), (404, "instance_not_found"));

    let (s, body) = weft
        .request(
            Method::POST,
            "/instances/nobody/raiseEvent/x",
            Some(&json!(1)),
        )
        .await;
    assert_eq!((s, error_code(&body).as_str()), (404, "instance_not_found"));

    let (s, body) = weft
        .request(Method::POST, "/orchestrations/nope", Some(&json!(1)))
        .await;
    assert_eq!(
        (s, error_code(&body).as_str()),
        (404, "unknown_orchestration")
    );

    let resp = weft
        .http
        .post(format!("{}/orchestrations/hello-sequence", weft.url))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "invalid_json");

    let (s, body) = weft
        .request(
            Method::POST,
            "/orchestrations/hello-sequence?instanceId=bad%20id",
            None,
        )
        .await;
    assert_eq!((s, error_code(&body).as_str()), (400, "invalid_id"));

    // Over the 1 MiB limit. (On its own connection: the server answers before reading the
    // whole body and then closes the connection.)
    let big = "x".repeat(2 * 1024 * 1024);
    let resp = common::authorized_client(common::TOKEN)
        .post(format!("{}/orchestrations/hello-sequence", weft.url))
        .json(&json!(big))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(error_code(&body), "payload_too_large");

    // Idempotent start: same id and input → the same instance; other input → conflict.
    weft.start_instance("hello-sequence", "once", json!(1))
        .await;
    weft.start_instance("hello-sequence", "once", json!(1))
        .await;
    let (s, body) = weft
        .request(
            Method::POST,
            "/orchestrations/hello-sequence?instanceId=once",
            Some(&json!(2)),
        )
        .await;
    assert_eq!((s, error_code(&body).as_str()), (409, "instance_exists"));
}
