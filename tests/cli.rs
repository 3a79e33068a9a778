//! The `weft` command line against a running server.

mod common;

use common::{Options, Weft, stderr, stdout, weft_cli};

#[tokio::test]
async fn start_status_raise_and_clock_from_the_command_line() {
    let server = Weft::start(Options::new(&["hello-sequence", "fixtures"]));

    let out = weft_cli(&server, &["start", "hello-sequence"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out);
    assert_eq!(id.len(), 32, "prints the new id: {id}");
    server.finished(&id).await;
    let out = weft_cli(&server, &["status", &id, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON on stdout");
    assert_eq!(status["runtimeStatus"], "Completed");
    assert_eq!(status["output"][0], "Hello Tokyo!");

    let out = weft_cli(
        &server,
        &["start", "wait-twice", "null", "--id", "cli-wait"],
    );
    assert_eq!(stdout(&out), "cli-wait");
    server.history_has("cli-wait", "timer_created").await;
    let out = weft_cli(&server, &["clock", "advance", "31", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"timersFired\":1"),
        "{}",
        stdout(&out)
    );
    server.history_has_n("cli-wait", "timer_created", 2).await;
    let out = weft_cli(&server, &["raise", "cli-wait", "answer", "{\"ok\": true}"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = server.finished("cli-wait").await;
    assert_eq!(status["output"][1]["ok"], true, "{status}");

    let out = weft_cli(&server, &["history-of-nothing"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit with 2");
}

#[tokio::test]
async fn failures_exit_with_1_and_a_reason_on_stderr() {
    let server = Weft::start(Options::new(&["hello-sequence"]));
    let out = weft_cli(&server, &["status", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("instance 'nobody' not found"),
        "{}",
        stderr(&out)
    );

    let out = weft_cli(&server, &["start", "hello-sequence", "{oops"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));

    let out = weft_cli(&server, &["raise", "nobody", "e", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
}
