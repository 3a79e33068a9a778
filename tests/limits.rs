//! Guest limits and hostile guests: a guest that never waits, one that eats memory, oversized
//! payloads, an endless history, activities that hang or trap, guests that call the context
//! of another guest kind, components that are not components or want imports weft does not
//! give. Each fails with its own failure kind while the host goes on serving the other
//! instances.

mod common;

use common::{Options, Weft};
use serde_json::{Value, json};
use std::process::Command;

fn limited(args: &[&str]) -> Weft {
    let mut options = Options::new(&["fixtures"]);
    options.args = args.iter().map(|a| a.to_string()).collect();
    Weft::start(options)
}

/// The failure's kind and message of an instance that must have failed.
fn failure(status: &Value) -> (String, String) {
    assert_eq!(status["runtimeStatus"], "Failed", "{status}");
    let text = |k: &str| {
        status["failure"][k]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    (text("kind"), text("message"))
}

/// Starts a `wait-for-go` next to the guest under test and checks that it still completes.
async fn bystander_completes(weft: &Weft, id: &str) {
    weft.history_has(id, "event_wait_created").await;
    weft.raise(id, "go", json!("still here")).await;
    let status = weft.finished(id).await;
    assert_eq!(status["output"], "still here", "{status}");
}

#[tokio::test]
async fn an_orchestration_that_never_waits_is_stopped_at_its_deadline() {
    let weft = limited(&["--activation-deadline", "0.5"]);
    weft.start_instance("wait-for-go", "bystander", json!(null))
        .await;
    weft.start_instance("spin", "spinner", json!(null)).await;
    let status = weft.finished("spinner").await;
    let (kind, message) = failure(&status);
    assert_eq!(kind, "deadline_exceeded");
    assert!(
        message.contains("the orchestration ran for more than 500ms without waiting"),
        "{message}"
    );
    bystander_completes(&weft, "bystander").await;
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_at_the_memory_limit() {
    let weft = limited(&["--max-memory", "16"]);
    weft.start_instance("wait-for-go", "bystander", json!(null))
        .await;
    weft.start_instance("memory-bomb", "bomb", json!(null))
        .await;
    let status = weft.finished("bomb").await;
    let (kind, message) = failure(&status);
    assert_eq!(kind, "memory_limit", "{message}");
    assert!(
        message.contains("over the 16777216-byte limit"),
        "{message}"
    );
    bystander_completes(&weft, "bystander").await;
}

#[tokio::test]
async fn oversized_payloads_fail_as_payload_too_large() {
    let weft = limited(&["--max-payload", "2048"]);
    weft.start_instance(
        "big-output",
        "out",
        json!({ "size": 5000, "by": "orchestration" }),
    )
    .await;
    weft.start_instance(
        "big-output",
        "act",
        json!({ "size": 5000, "by": "activity" }),
    )
    .await;
    weft.start_instance(
        "big-output",
        "fits",
        json!({ "size": 1000, "by": "activity" }),
    )
    .await;
    let (kind, message) = failure(&weft.finished("out").await);
    assert_eq!(kind, "payload_too_large");
    assert!(
        message.contains("the orchestration's output is 5002 bytes, over the 2048-byte limit"),
        "{message}"
    );
    let (kind, message) = failure(&weft.finished("act").await);
    assert_eq!(kind, "payload_too_large");
    assert!(
        message.contains("the activity's output is 5002 bytes"),
        "{message}"
    );
    let fits = weft.finished("fits").await;
    assert_eq!(fits["runtimeStatus"], "Completed", "{fits}");
}

#[tokio::test]
async fn a_history_past_its_limit_fails_as_history_limit() {
    let weft = limited(&["--max-history", "100"]);
    weft.start_instance("long-history", "long", json!(500))
        .await;
    weft.start_instance("long-history", "short", json!(20))
        .await;
    let (kind, message) = failure(&weft.finished("long").await);
    assert_eq!(kind, "history_limit");
    assert_eq!(
        message,
        "history_limit: the run's history reached 100 events"
    );
    assert_eq!(weft.finished("short").await["output"], 20);
}

#[tokio::test]
async fn a_hanging_activity_times_out_and_follows_its_retry_policy() {
    let weft = limited(&["--activity-timeout", "0.3"]);
    weft.start_instance("activity-probe", "hang", json!("spin"))
        .await;
    let history = weft.history_has("hang", "activity_attempt_failed").await;
    let attempt = history
        .iter()
        .find(|e| e["type"] == "activity_attempt_failed")
        .unwrap();
    assert_eq!(
        attempt["error"],
        "timeout: the activity did not finish within 300ms"
    );
    weft.advance(1.0).await;
    let (kind, _) = failure(&weft.finished("hang").await);
    assert_eq!(kind, "timeout", "the second attempt timed out too");
}

#[tokio::test]
async fn a_trapping_activity_is_retried_by_its_policy() {
    let weft = limited(&[]);
    weft.start_instance("activity-probe", "trap", json!("boom"))
        .await;
    let history = weft.history_has("trap", "activity_attempt_failed").await;
    let attempt = history
        .iter()
        .find(|e| e["type"] == "activity_attempt_failed")
        .unwrap();
    let error = attempt["error"].as_str().unwrap();
    assert!(error.starts_with("trap: the activity trapped"), "{error}");
    assert!(error.contains("wasm backtrace"), "{error}");
    assert!(
        weft.log().contains("boom"),
        "the panic message is in the log"
    );
    weft.advance(1.0).await;
    let (kind, message) = failure(&weft.finished("trap").await);
    assert_eq!(kind, "trap");
    assert!(message.contains("unreachable"), "{message}");
    assert!(
        !message.contains("Stack backtrace"),
        "no host internals: {message}"
    );
}

#[tokio::test]
async fn a_guest_calling_the_context_of_another_kind_fails_and_says_whose_it_is() {
    let weft = Weft::start(Options::new(&["wrong-context"]));
    let cases = [
        (
            "orchestration",
            "trap: the orchestration trapped: activity-context is available to activities, not \
             orchestrations (called `attempt`)",
        ),
        (
            "activity",
            "trap: the activity trapped: orchestration-context is available to orchestrations, \
             not activities (called `instance-id`)",
        ),
        (
            "entity",
            "trap: the entity operation trapped: activity-context is available to activities, \
             not entities (called `attempt`)",
        ),
    ];
    for (kind, _) in cases {
        weft.start_instance("wrong-context", kind, json!(kind))
            .await;
    }
    for (kind, expected) in cases {
        let (failure_kind, message) = failure(&weft.finished(kind).await);
        assert_eq!(failure_kind, "trap", "{kind}: {message}");
        assert!(message.starts_with(expected), "{kind}: {message}");
    }
}

/// Runs `weft serve` on a components directory holding `file` with `bytes`; its stderr, once
/// it has exited.
fn serve_with(file: &str, bytes: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    std::fs::create_dir(&components).unwrap();
    std::fs::write(components.join(file), bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("serve")
        .arg("--db")
        .arg(dir.path().join("weft.db"))
        .args(["--listen", "127.0.0.1:0", "--token", "t", "--components"])
        .arg(&components)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_file_that_is_not_a_component_is_refused_by_name() {
    let (ok, stderr) = serve_with("junk.wasm", b"this is not wasm");
    assert!(!ok);
    assert!(stderr.contains("junk.wasm"), "{stderr}");
    assert!(
        stderr.contains("not a valid WebAssembly component"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_component_that_imports_what_weft_does_not_give_is_refused_naming_the_import() {
    let wat = r#"(component (import "evil:net/raw-sockets" (instance (export "open" (func)))))"#;
    let (ok, stderr) = serve_with("evil.wasm", wat.as_bytes());
    assert!(!ok);
    assert!(stderr.contains("evil.wasm"), "{stderr}");
    assert!(
        stderr.contains("evil:net/raw-sockets"),
        "names the import: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn input_that_does_not_fit_fails_as_invalid_input() {
    let weft = limited(&[]);
    weft.start_instance("long-history", "wrong", json!("not a number"))
        .await;
    let (kind, message) = failure(&weft.finished("wrong").await);
    assert_eq!(kind, "invalid_input");
    assert!(message.contains("expected u32"), "{message}");
}
