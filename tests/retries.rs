//! Activity retry policies: attempts recorded in history, delays on durable timers that follow
//! the skippable clock and survive a restart, non-retryable kinds, the attempt limit.

mod common;

use common::{Options, Weft};
use serde_json::{Value, json};

fn events<'a>(status: &'a Value, kind: &str) -> Vec<&'a Value> {
    status["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

/// The manual clock's start (2026-01-01T00:00:00Z) in ms.
const T0: u64 = 1_767_225_600_000;

#[tokio::test]
async fn failed_attempts_are_retried_with_growing_delays() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("retry-probe", "r", json!({"failures": 2, "kind": "busy"}))
        .await;
    weft.history_has("r", "activity_attempt_failed").await;
    assert_eq!(
        weft.query_i64("SELECT count(*) FROM timers WHERE kind = 'retry'"),
        1
    );
    weft.advance(5.0).await;
    weft.history_has_n("r", "activity_attempt_failed", 2).await;
    weft.advance(10.0).await;
    let status = weft.finished("r").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], 3, "the third attempt succeeded");
    let failed = events(&status, "activity_attempt_failed");
    assert_eq!(failed[0]["attempt"], 1);
    assert_eq!(failed[0]["retry_at"], T0 + 5_000);
    assert_eq!(failed[1]["attempt"], 2);
    assert_eq!(
        failed[1]["retry_at"],
        T0 + 5_000 + 10_000,
        "the delay doubled"
    );
    assert_eq!(failed[1]["error"], "busy: attempt 2 failed");
    assert_eq!(weft.query_i64("SELECT count(*) FROM timers"), 0);
}

#[tokio::test]
async fn a_non_retryable_error_fails_at_once() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("retry-probe", "f", json!({"failures": 9, "kind": "fatal"}))
        .await;
    let status = weft.finished("f").await;
    assert_eq!(status["runtimeStatus"], "Failed", "{status}");
    assert_eq!(status["failure"]["message"], "fatal: attempt 1 failed");
    assert_eq!(
        status["failure"]["kind"], "fatal",
        "the kind the error was given"
    );
    assert!(events(&status, "activity_attempt_failed").is_empty());
    assert_eq!(events(&status, "activity_failed").len(), 1);
}

#[tokio::test]
async fn the_attempt_limit_ends_the_retries() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("retry-probe", "m", json!({"failures": 9, "kind": "busy"}))
        .await;
    for (n, wait) in [(1, 5.0), (2, 10.0), (3, 20.0)] {
        weft.history_has_n("m", "activity_attempt_failed", n).await;
        weft.advance(wait).await;
    }
    let status = weft.finished("m").await;
    assert_eq!(status["runtimeStatus"], "Failed", "{status}");
    assert_eq!(status["failure"]["message"], "busy: attempt 4 failed");
    assert_eq!(events(&status, "activity_attempt_failed").len(), 3);
}

#[tokio::test]
async fn a_retry_waiting_in_a_killed_host_runs_after_restart() {
    let mut weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("retry-probe", "k", json!({"failures": 1, "kind": "busy"}))
        .await;
    weft.history_has("k", "activity_attempt_failed").await;
    weft.restart();
    // Not due yet: the restart must not run the activity early. Its retry timer is still
    // stored, and the activity is still waiting for its second attempt.
    weft.advance(4.0).await;
    assert_eq!(
        weft.query_i64(&format!(
            "SELECT count(*) FROM timers WHERE instance_id = 'k' AND kind = 'retry'
             AND fire_at = {}",
            T0 + 5_000
        )),
        1
    );
    assert_eq!(
        weft.query_i64("SELECT attempt FROM activities WHERE instance_id = 'k'"),
        2,
        "the next attempt is the second"
    );
    assert_eq!(weft.stored_events("k", "activity_attempt_failed"), 1);
    assert_eq!(weft.stored_events("k", "activity_completed"), 0);
    weft.advance(1.0).await;
    let status = weft.finished("k").await;
    assert_eq!(status["output"], 2, "{status}");
    assert_eq!(events(&status, "activity_attempt_failed").len(), 1);
}
