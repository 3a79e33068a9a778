//! Replay: determinism of what orchestrations see, and nondeterminism detection.

mod common;

use common::{Options, Weft};
use serde_json::{Value, json};

#[tokio::test]
async fn wall_time_hashmap_order_and_guids_replay_identically() {
    // Evicted at every wait: each step after the first replays the run from the start, and a
    // replay that saw other values would schedule `echo` with another input and fail.
    let weft = Weft::start(Options::new(&["fixtures"]).evict_always());
    weft.start_instance("determinism-probe", "probe", json!(null))
        .await;
    weft.history_has("probe", "timer_created").await;
    weft.advance(10.0).await;
    let status = weft.finished("probe").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert!(weft.replays("probe") >= 2, "the probe was replayed");

    let history = status["historyEvents"].as_array().unwrap();
    let started_at = history[0]["at"].as_u64().unwrap();
    let scheduled: Vec<&Value> = history
        .iter()
        .filter(|e| e["type"] == "activity_scheduled")
        .map(|e| &e["input"])
        .collect();
    let output = status["output"].as_array().unwrap();
    assert_eq!(scheduled.len(), 2);
    assert_eq!(output.len(), 2);
    for (sent, echoed) in scheduled.iter().zip(output) {
        assert_eq!(*sent, echoed, "the decision made live is the one replayed");
    }
    // WASI wall time is the recorded orchestration time: the start, then the time the timer's
    // await resolved, ten seconds later on the skipped clock.
    assert_eq!(output[0]["wall_ms"].as_u64(), Some(started_at));
    assert_eq!(output[1]["wall_ms"].as_u64(), Some(started_at + 10_000));
    // GUIDs are the recorded ones.
    let guids: Vec<&Value> = history
        .iter()
        .filter(|e| e["type"] == "guid")
        .map(|e| &e["value"])
        .collect();
    assert_eq!(guids, vec![&output[0]["guid"], &output[1]["guid"]]);
    assert_ne!(output[0]["guid"], output[1]["guid"]);
}

#[tokio::test]
async fn replaying_against_changed_code_fails_with_the_divergent_position() {
    // Both versions are deployed; the instance starts on `fixtures` (the later file wins).
    let mut options = Options::new(&[]);
    options.components = vec![
        ("a-drift.wasm".into(), common::component("fixtures-drift")),
        ("b-fixtures.wasm".into(), common::component("fixtures")),
    ];
    let mut weft = Weft::start(options);
    weft.start_instance("drift", "drifter", json!("hi")).await;
    let status = weft.status("drifter").await;
    let original = status["componentDigest"].as_str().unwrap().to_string();
    weft.history_has("drifter", "event_wait_created").await;
    weft.kill();

    // A botched deploy: the instance is moved to the changed code without a check.
    let changed = sha256_hex(&std::fs::read(common::component("fixtures-drift")).unwrap());
    assert_ne!(original, changed);
    let conn = rusqlite::Connection::open(weft.db()).unwrap();
    conn.execute(
        "UPDATE instances SET digest = ?1 WHERE id = 'drifter'",
        [&changed],
    )
    .unwrap();
    drop(conn);

    weft.restart();
    let status = weft.finished("drifter").await;
    assert_eq!(status["runtimeStatus"], "Failed", "{status}");
    let message = status["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains("nondeterminism: at position 0"),
        "{message}"
    );
    assert!(
        message.contains("'echo'"),
        "names the recorded command: {message}"
    );
    assert!(
        message.contains("'shout'"),
        "names the new command: {message}"
    );
}

#[tokio::test]
async fn orchestrations_see_no_environment_files_or_network() {
    // A listener that would answer if the request got through.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let weft = Weft::start(Options::new(&["fixtures"]).env("SECRET_SETTING", "x"));
    weft.start_instance("sandbox-probe", "sandbox", json!(url))
        .await;
    let status = weft.finished("sandbox").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    let seen = &status["output"];
    assert_eq!(seen["env"], json!([]), "no environment: {seen}");
    assert!(seen["file"]["Err"].is_string(), "no filesystem: {seen}");
    assert!(seen["socket"]["Err"].is_string(), "no sockets: {seen}");
    let http = seen["http"]["Err"].as_str().unwrap_or_default();
    assert!(
        http.contains("HttpRequestDenied"),
        "outbound HTTP refused: {seen}"
    );
    assert!(weft.log().contains("refused outbound HTTP"), "and logged");
}

#[tokio::test]
async fn a_wait_that_timed_out_leaves_the_event_to_the_next_wait() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("wait-twice", "twice", json!(null))
        .await;
    weft.history_has("twice", "timer_created").await;
    weft.advance(31.0).await;
    let history = weft.history_has_n("twice", "timer_created", 2).await;
    assert!(
        history.iter().any(|e| e["type"] == "cancelled"),
        "the first wait was given up"
    );
    weft.raise("twice", "answer", json!(42)).await;
    let status = weft.finished("twice").await;
    assert_eq!(status["output"], json!([null, 42]), "{status}");
    assert_eq!(weft.query_i64("SELECT count(*) FROM timers"), 0);
}

fn sha256_hex(bytes: &[u8]) -> String {
    weft::history::digest_of(bytes).to_string()
}
