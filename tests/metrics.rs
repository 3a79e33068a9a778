//! What operators plug in: `/metrics` in the Prometheus text format, moving with the work it
//! counts, behind the token; and `--log-format json`, one object a line with the instance id.

mod common;

use common::{Options, Weft, bounded_client};
use reqwest::Method;
use serde_json::{Value, json};

/// The metrics page, scraped as Prometheus would (with the token).
async fn scrape(weft: &Weft) -> String {
    let resp = weft
        .http
        .get(format!("{}/metrics", weft.url))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let kind = resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = resp.text().await.expect("the page");
    assert!(
        text.ends_with("# EOF\n"),
        "an OpenMetrics page ends with # EOF"
    );
    text
}

/// The value of sample `series` (its name and labels, as written), 0 when it is absent.
fn value(page: &str, series: &str) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            (name == series).then(|| v.parse().expect("a number"))
        })
        .unwrap_or(0.0)
}

/// How much each of `series` grew from `before` to `after`.
fn growth(before: &str, after: &str, series: &[&str]) -> Vec<(String, f64)> {
    series
        .iter()
        .map(|s| (s.to_string(), value(after, s) - value(before, s)))
        .collect()
}

#[tokio::test]
async fn the_metrics_move_with_the_work_they_count() {
    let mut weft = Weft::start(Options::new(&["hello-sequence", "fixtures"]));
    let before = scrape(&weft).await;

    // Three activities that complete, one instance that completes.
    weft.start_instance("hello-sequence", "seq", json!(null))
        .await;
    assert_eq!(weft.finished("seq").await["runtimeStatus"], "Completed");
    // An attempt that fails and is retried, then one that completes.
    weft.start_instance(
        "retry-probe",
        "retry",
        json!({"failures": 1, "kind": "busy"}),
    )
    .await;
    weft.history_has("retry", "activity_attempt_failed").await;
    weft.advance(5.0).await;
    assert_eq!(weft.finished("retry").await["runtimeStatus"], "Completed");
    // An attempt that fails for good, and its instance with it.
    weft.start_instance(
        "retry-probe",
        "fatal",
        json!({"failures": 9, "kind": "fatal"}),
    )
    .await;
    assert_eq!(weft.finished("fatal").await["runtimeStatus"], "Failed");
    // A timer that fires.
    weft.start_instance("wait-with-timeout", "timer", json!(10.0))
        .await;
    weft.history_has("timer", "timer_created").await;
    weft.advance(10.0).await;
    assert_eq!(weft.finished("timer").await["runtimeStatus"], "Completed");
    // An instance left waiting in memory.
    weft.start_instance("wait-for-go", "hot", json!(null)).await;
    weft.history_has("hot", "event_wait_created").await;

    let after = scrape(&weft).await;
    let moved = growth(
        &before,
        &after,
        &[
            "weft_instances_started_total{orchestration=\"hello-sequence\"}",
            "weft_instances_started_total{orchestration=\"retry-probe\"}",
            "weft_instances_finished_total{orchestration=\"hello-sequence\",status=\"completed\"}",
            "weft_instances_finished_total{orchestration=\"retry-probe\",status=\"completed\"}",
            "weft_instances_finished_total{orchestration=\"retry-probe\",status=\"failed\"}",
            "weft_activity_attempts_total{activity=\"say-hello\",outcome=\"completed\"}",
            "weft_activity_attempts_total{activity=\"flaky\",outcome=\"retried\"}",
            "weft_activity_attempts_total{activity=\"flaky\",outcome=\"completed\"}",
            "weft_activity_attempts_total{activity=\"flaky\",outcome=\"failed\"}",
            "weft_timers_fired_total",
        ],
    );
    let expected = [1.0, 2.0, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 1.0];
    let got: Vec<f64> = moved.iter().map(|(_, v)| *v).collect();
    assert_eq!(got, expected, "{moved:#?}\n{after}");
    assert!(value(&after, "weft_hot_instances") >= 1.0, "{after}");
    for histogram in [
        "weft_activation_seconds_count",
        "weft_store_commit_seconds_count",
        "weft_store_batch_size_count",
    ] {
        assert!(
            value(&after, histogram) > value(&before, histogram),
            "{histogram} did not move:\n{after}"
        );
    }

    // An event raised, and (after a restart) a history replayed.
    weft.restart();
    let before = scrape(&weft).await;
    weft.raise("hot", "go", json!("went")).await;
    assert_eq!(weft.finished("hot").await["runtimeStatus"], "Completed");
    let after = scrape(&weft).await;
    let moved = growth(
        &before,
        &after,
        &[
            "weft_events_raised_total",
            "weft_instances_finished_total{orchestration=\"wait-for-go\",status=\"completed\"}",
        ],
    );
    let got: Vec<f64> = moved.iter().map(|(_, v)| *v).collect();
    assert_eq!(got, [1.0, 1.0], "{moved:#?}\n{after}");
    // The waiting instance came back into memory by replaying its history (at the restart or
    // at the event, before or after the first scrape): counted since the process began.
    assert!(value(&after, "weft_replays_total") >= 1.0, "{after}");
    assert!(value(&after, "weft_replay_seconds_count") >= 1.0, "{after}");
}

#[tokio::test]
async fn the_metrics_need_the_token() {
    let weft = Weft::start(Options::new(&["hello-sequence"]));
    let resp = bounded_client()
        .get(format!("{}/metrics", weft.url))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
}

#[tokio::test]
async fn json_logs_are_one_object_a_line_with_the_instance_id() {
    let weft = Weft::start(Options::new(&["fixtures"]).arg("--log-format").arg("json"));
    weft.start_instance(
        "retry-probe",
        "logged",
        json!({"failures": 9, "kind": "fatal"}),
    )
    .await;
    assert_eq!(weft.finished("logged").await["runtimeStatus"], "Failed");
    let (status, _) = weft.request(Method::GET, "/instances/logged", None).await;
    assert_eq!(status, 200);
    let log = weft.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.starts_with("weft listening on "))
        .collect();
    assert!(!lines.is_empty(), "weft logged nothing:\n{log}");
    let objects: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    for o in &objects {
        assert!(o["timestamp"].is_string() && o["level"].is_string(), "{o}");
    }
    let failed = objects
        .iter()
        .find(|o| o["instance"] == "logged" && o["activity"] == "flaky")
        .unwrap_or_else(|| panic!("no line names the instance and its activity:\n{log}"));
    assert!(
        failed["message"]
            .as_str()
            .is_some_and(|m| m.contains("activity failed")),
        "{failed}"
    );
}
