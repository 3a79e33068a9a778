//! Start-and-wait and status-and-wait: `waitForCompletion` answers with the final status as
//! soon as the instance ends, or as without it when the wait is over first; the command line's
//! `--wait` uses it.

mod common;

use common::{Options, Weft, stderr, stdout, weft_cli};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_start_that_waits_answers_with_the_final_status() {
    let weft = Weft::start(Options::new(&["hello-sequence"]));
    // Three activities, each a round trip through the store, before the instance ends.
    let (status, body) = weft
        .request(
            Method::POST,
            "/orchestrations/hello-sequence?instanceId=seq&waitForCompletion=30s",
            Some(&json!(null)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["instanceId"], "seq");
    assert_eq!(body["runtimeStatus"], "Completed");
    assert_eq!(
        body["output"],
        json!(["Hello Tokyo!", "Hello Seattle!", "Hello London!"])
    );
}

#[tokio::test]
async fn a_wait_that_ends_first_answers_as_without_it() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let (status, body) = weft
        .request(
            Method::POST,
            "/orchestrations/wait-for-go?instanceId=w&waitForCompletion=200ms",
            Some(&json!(null)),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["id"], "w");
    weft.history_has("w", "event_wait_created").await;
    let (status, body) = weft
        .request(Method::GET, "/instances/w?waitForCompletion=200ms", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runtimeStatus"], "Running");
    // Durable state: it is still waiting, nothing ended it.
    assert_eq!(weft.stored_events("w", "completed"), 0);
}

#[tokio::test]
async fn a_status_that_waits_answers_when_the_instance_ends() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("wait-for-go", "g", json!(null)).await;
    weft.history_has("g", "event_wait_created").await;
    let waiting = weft.request(Method::GET, "/instances/g?waitForCompletion=30s", None);
    let raise = async {
        weft.raise("g", "go", json!("went")).await;
    };
    let asked = tokio::time::Instant::now();
    let ((status, body), ()) = tokio::join!(waiting, raise);
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runtimeStatus"], "Completed", "{body}");
    assert_eq!(body["output"], "went");
}

#[tokio::test]
async fn a_wait_for_a_terminated_instance_ends_with_it() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("wait-for-go", "t", json!(null)).await;
    weft.history_has("t", "event_wait_created").await;
    let waiting = weft.request(Method::GET, "/instances/t?waitForCompletion=30s", None);
    let terminate = async {
        let (status, body) = weft
            .request(Method::POST, "/instances/t/terminate?reason=enough", None)
            .await;
        assert_eq!(status, 202, "{body}");
    };
    let asked = tokio::time::Instant::now();
    let ((status, body), ()) = tokio::join!(waiting, terminate);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runtimeStatus"], "Terminated", "{body}");
    // Answered on the end, not when the 30 s were over.
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn a_malformed_or_too_long_wait_is_refused_and_starts_nothing() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    for wait in [
        "61s",
        "60001ms",
        "5m",
        "05s",
        "s",
        "1.5s",
        "-1s",
        "99999999999s",
    ] {
        let (status, body) = weft
            .request(
                Method::POST,
                &format!("/orchestrations/wait-for-go?instanceId=bad&waitForCompletion={wait}"),
                Some(&json!(null)),
            )
            .await;
        assert_eq!(status, 400, "{wait}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{wait}: {body}");
        let (status, body) = weft
            .request(
                Method::GET,
                &format!("/instances/bad?waitForCompletion={wait}"),
                None,
            )
            .await;
        assert_eq!(status, 400, "{wait}: {body}");
    }
    assert!(
        weft.try_status("bad").await.is_none(),
        "a refused start starts nothing"
    );
    let (status, body) = weft
        .request(Method::GET, "/instances/nobody?waitForCompletion=5s", None)
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn the_command_line_waits_with_wait() {
    let server = Weft::start(Options::new(&["hello-sequence", "fixtures"]));
    let out = weft_cli(&server, &["start", "hello-sequence", "--wait", "30s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.contains("Completed") && printed.contains("Hello London!"),
        "prints the final status: {printed}"
    );
    let out = weft_cli(
        &server,
        &["start", "wait-for-go", "--id", "cli-w", "--wait", "100ms"],
    );
    assert_eq!(stdout(&out), "cli-w", "not ended: prints the id");
    server.history_has("cli-w", "event_wait_created").await;
    server.raise("cli-w", "go", json!(1)).await;
    let out = weft_cli(&server, &["status", "cli-w", "--wait", "30s", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(status["runtimeStatus"], "Completed");
}
