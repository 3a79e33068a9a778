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
    terminate(&weft, "kid", "reason=stop").await;
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
    // Three ticks arrive while the instance is held, so the first run finds all three: it
    // takes one and the other two are carried over.
    let (s, body) = weft
        .request(reqwest::Method::POST, "/instances/t/suspend", None)
        .await;
    assert_eq!(s, 202, "{body}");
    for i in 0..3 {
        weft.raise("t", "tick", json!(i)).await;
    }
    weft.history_has_n("t", "event_raised", 3).await;
    let (s, body) = weft
        .request(reqwest::Method::POST, "/instances/t/resume", None)
        .await;
    assert_eq!(s, 202, "{body}");
    let status = weft.finished("t").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], 3);
    assert_eq!(status["input"], 2, "the last run's input");
    assert_eq!(
        status["customStatus"],
        json!({"ticks": 2}),
        "the custom status set by the run that continued as new is kept"
    );
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

#[tokio::test]
async fn children_started_before_continue_as_new_run_and_answer_no_later_run() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("spawner", "s", json!(0)).await;
    weft.history_has("s", "event_wait_created").await;
    for run in 0..2 {
        let child = format!("spawned-{run}");
        weft.history_has(&child, "event_wait_created").await;
        weft.raise(&child, "go", json!(run)).await;
        let status = weft.finished(&child).await;
        assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    }
    // The children ended while the last run waits: their ends are in no history of it.
    let status = weft.status("s").await;
    let kinds: Vec<_> = status["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !kinds.iter().any(|k| k.starts_with("sub_orchestration_")),
        "{kinds:?}"
    );
    weft.raise("s", "done", json!(null)).await;
    let status = weft.finished("s").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], 2);
}

/// Terminates instance `id` with the query `query`; it answers 202.
async fn terminate(weft: &Weft, id: &str, query: &str) {
    let path = format!("/instances/{id}/terminate?{query}");
    let (s, body) = weft.request(reqwest::Method::POST, &path, None).await;
    assert_eq!(s, 202, "{body}");
}

/// The instances whose id starts with `prefix`, by status, from the database.
fn stored(weft: &Weft, prefix: &str, status: &str) -> i64 {
    weft.query_i64(&format!(
        "SELECT count(*) FROM instances WHERE id LIKE '{prefix}%' AND status = '{status}'"
    ))
}

#[tokio::test]
async fn terminating_a_parent_terminates_its_running_children_unless_told_not_to() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    // n → n:0 → n:0:0, which waits for `go`.
    weft.start_instance("nest", "n", json!(2)).await;
    weft.history_has("n:0:0", "event_wait_created").await;
    terminate(&weft, "n", "reason=stop").await;
    assert_eq!(weft.status("n").await["runtimeStatus"], "Terminated");
    for (child, parent) in [("n:0", "n"), ("n:0:0", "n:0")] {
        let status = weft.status(child).await;
        assert_eq!(status["runtimeStatus"], "Terminated", "{status}");
        assert_eq!(
            status["failure"]["message"],
            format!("parent instance '{parent}' was terminated"),
            "{status}"
        );
        assert_eq!(status["failure"]["kind"], "terminated");
    }
    assert_eq!(stored(&weft, "n", "Terminated"), 3);

    // recursive=false: the children go on, and end by themselves.
    weft.start_instance("nest", "m", json!(2)).await;
    weft.history_has("m:0:0", "event_wait_created").await;
    terminate(&weft, "m", "recursive=false").await;
    assert_eq!(weft.status("m").await["runtimeStatus"], "Terminated");
    assert_eq!(stored(&weft, "m:", "Running"), 2, "the children still run");
    weft.raise("m:0:0", "go", json!("went")).await;
    let child = weft.finished("m:0").await;
    assert_eq!(
        (&child["runtimeStatus"], &child["output"]),
        (&json!("Completed"), &json!("went"))
    );
    assert_eq!(weft.status("m").await["runtimeStatus"], "Terminated");
}

#[tokio::test]
async fn purge_refuses_a_running_instance_and_takes_ended_children_along() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("nest", "q", json!(2)).await;
    weft.history_has("q:0:0", "event_wait_created").await;
    let history_rows = weft.query_i64("SELECT count(*) FROM history");

    // Running: refused, and nothing is deleted.
    let (s, body) = weft
        .request(reqwest::Method::DELETE, "/instances/q", None)
        .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"]["code"], "instance_running", "{body}");
    assert_eq!(stored(&weft, "q", "Running"), 3);
    assert_eq!(weft.query_i64("SELECT count(*) FROM history"), history_rows);

    // force=true: terminated (children too), then purged with them.
    let (s, body) = weft
        .request(reqwest::Method::DELETE, "/instances/q?force=true", None)
        .await;
    assert_eq!((s, &body), (200, &json!({"instancesDeleted": 3})));
    assert_eq!(weft.query_i64("SELECT count(*) FROM instances"), 0);
    assert_eq!(weft.query_i64("SELECT count(*) FROM history"), 0);
    for id in ["q", "q:0", "q:0:0"] {
        let (s, _) = weft
            .request(reqwest::Method::GET, &format!("/instances/{id}"), None)
            .await;
        assert_eq!(s, 404, "{id}");
    }

    // An ended parent: purged with its ended children.
    weft.start_instance("nest", "r", json!(1)).await;
    weft.history_has("r:0", "event_wait_created").await;
    weft.raise("r:0", "go", json!(1)).await;
    weft.finished("r").await;
    let (s, body) = weft
        .request(reqwest::Method::DELETE, "/instances/r", None)
        .await;
    assert_eq!((s, &body), (200, &json!({"instancesDeleted": 2})));
    let (s, _) = weft
        .request(reqwest::Method::DELETE, "/instances/r", None)
        .await;
    assert_eq!(s, 404, "purged already");

    // A parent that ended while its children run: purged alone; the children go on.
    weft.start_instance("nest", "t", json!(2)).await;
    weft.history_has("t:0:0", "event_wait_created").await;
    terminate(&weft, "t", "recursive=false").await;
    let (s, body) = weft
        .request(reqwest::Method::DELETE, "/instances/t", None)
        .await;
    assert_eq!((s, &body), (200, &json!({"instancesDeleted": 1})));
    assert_eq!(stored(&weft, "t:", "Running"), 2);
    weft.raise("t:0:0", "go", json!("on")).await;
    let child = weft.finished("t:0").await;
    assert_eq!(child["output"], "on", "{child}");
}
