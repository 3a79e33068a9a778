//! Sub-orchestrations: awaitable children whose output or failure reaches the parent as a
//! value, across a killed host.

mod common;

use common::{Options, Weft};
use serde_json::json;

#[tokio::test]
async fn children_report_output_and_failure_to_their_parent() {
    let mut weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("parent", "p", json!(null)).await;
    weft.history_has("the-child", "event_wait_created").await;
    let parent = weft.status("p").await;
    assert_eq!(parent["runtimeStatus"], "Running", "{parent}");

    weft.restart(); // SIGKILL: the children and the link to the parent are durable
    weft.raise("the-child", "go", json!({"x": 1})).await;
    let status = weft.finished("p").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(
        status["output"],
        json!({
            "ok": 42,
            "bad": {"error": "boom"},
            "missing": {"error": "no orchestration named 'no-such-orchestration' is deployed"},
            "waited": {"x": 1},
        })
    );
    // The children are instances of their own, with default ids `{parent}:{position}`.
    let child = weft.status("p:0").await;
    assert_eq!(
        (&child["name"], &child["output"]),
        (&json!("child-double"), &json!(42))
    );
    assert_eq!(weft.status("p:1").await["runtimeStatus"], "Failed");
    let kinds: Vec<String> = status["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "sub_orchestration_scheduled")
            .count(),
        4
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "sub_orchestration_completed")
            .count(),
        2
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "sub_orchestration_failed")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_terminated_child_fails_its_handle_in_the_parent() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("parent-of-waiter", "pw", json!("kid"))
        .await;
    weft.history_has("kid", "event_wait_created").await;
    let (s, _) = weft
        .request(
            reqwest::Method::POST,
            "/instances/kid/terminate?reason=stop",
            None,
        )
        .await;
    assert_eq!(s, 202);
    let status = weft.finished("pw").await;
    assert_eq!(
        status["output"],
        json!({"error": "terminated: stop"}),
        "{status}"
    );
}

#[tokio::test]
async fn a_child_id_in_use_fails_the_handle() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("wait-for-go", "taken", json!(null))
        .await;
    weft.start_instance("parent-of-waiter", "pt", json!("taken"))
        .await;
    let status = weft.finished("pt").await;
    assert_eq!(
        status["output"],
        json!({"error": "instance id 'taken' is already in use"}),
        "{status}"
    );
}

#[tokio::test]
async fn continue_as_new_restarts_the_history_and_carries_events_over() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("ticker", "t", json!(0)).await;
    weft.history_has("t", "event_wait_created").await;
    // Three ticks at once: the first run takes one; the other two are carried over.
    for i in 0..3 {
        weft.raise("t", "tick", json!(i)).await;
    }
    let status = weft.finished("t").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], 3);
    assert_eq!(status["input"], 2, "the last run's input");
    let runs = status["previousRuns"].as_array().expect("earlier runs");
    assert_eq!(runs.len(), 2);
    for (generation, run) in runs.iter().enumerate() {
        assert_eq!(run["generation"], generation);
        let events = run["historyEvents"].as_array().unwrap();
        let last = events.last().unwrap();
        assert_eq!(last["type"], "continued_as_new");
        assert_eq!(last["input"], generation + 1);
    }
    // The current run starts afresh, with the tick it was left.
    let history = status["historyEvents"].as_array().unwrap();
    assert_eq!(history[0]["type"], "started");
    assert_eq!(history[0]["input"], 2);
    assert_eq!(history[1]["type"], "event_raised");
    assert_eq!(history[1]["payload"], 2);
}
