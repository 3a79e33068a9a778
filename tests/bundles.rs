//! Replay bundles: `weft export` (and `GET /instances/{id}/bundle`) writes one instance's
//! component, input and every run's history in one file; `weft replay` replays it with no
//! server and no database, prints the timeline and the guest's log lines, and with
//! `--component` names the first call a changed component makes differently. A redacted
//! bundle holds no payload and still replays by call kind and name.

mod common;

use base64::Engine as _;
use common::{Options, Weft, stderr, stdout, weft_cli};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest as _;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `weft replay` with no server to talk to (the address is a closed port).
fn replay(file: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("replay")
        .arg(file)
        .args(extra)
        .env("WEFT_SERVER", "http://127.0.0.1:9")
        .env_remove("WEFT_TOKEN")
        .output()
        .expect("run weft replay")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("bundle written")).expect("JSON")
}

/// Starts `drift` as `id` with `input`, lets it complete with `go`, and exports it to `file`.
async fn completed_drift(weft: &Weft, id: &str, input: &str, go: &str, file: &Path, redact: bool) {
    weft.start_instance("drift", id, json!(input)).await;
    weft.history_has(id, "event_wait_created").await;
    weft.raise(id, "go", json!(go)).await;
    let status = weft.finished(id).await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    let mut args = vec!["export", id, "-o", file.to_str().unwrap()];
    if redact {
        args.push("--redact");
    }
    let out = weft_cli(weft, &args);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn an_exported_instance_replays_offline_and_a_changed_component_is_caught() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.bundle.json");
    completed_drift(&weft, "d", "hi", "go!", &file, false).await;
    let status = weft.status("d").await;

    // One self-contained file: the component's bytes and digest, the input, every event.
    let bundle = read_json(&file);
    assert_eq!(bundle["format"], "weft-bundle/1");
    assert_eq!(bundle["instanceId"], "d");
    assert_eq!(bundle["name"], "drift");
    assert_eq!(bundle["runtimeStatus"], "Completed");
    assert_eq!(bundle["input"], "\"hi\"");
    assert_eq!(bundle["output"], "\"hi go!\"");
    assert_eq!(bundle["component"]["digest"], status["componentDigest"]);
    let wasm = base64::engine::general_purpose::STANDARD
        .decode(bundle["component"]["wasm"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&wasm)),
        bundle["component"]["digest"].as_str().unwrap()
    );
    assert_eq!(wasm, std::fs::read(common::component("fixtures")).unwrap());
    let runs = bundle["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let kinds = |events: &Value| -> Vec<String> {
        events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kinds(&runs[0]["history"]), kinds(&status["historyEvents"]));

    // The same bundle over HTTP, as an attachment.
    let resp = common::authorized_client(common::TOKEN)
        .get(format!("{}/instances/d/bundle", weft.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let disposition = resp.headers()["content-disposition"].to_str().unwrap();
    assert_eq!(disposition, "attachment; filename=\"d.bundle.json\"");
    assert_eq!(resp.json::<Value>().await.unwrap(), bundle);
    drop(weft);

    // Offline: the timeline, the guest's log line (logged during the replay), the verdict.
    let out = replay(&file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("d (drift), Completed, replayed against its own component"));
    assert!(text.contains("log: echoed hi"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("activity_scheduled") && l.contains("echo")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.contains("completed")), "{text}");
    let calls = runs[0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("pos").is_some())
        .count();
    assert!(
        text.contains(&format!(
            "replays: the code made all {calls} recorded calls"
        )),
        "{text}"
    );

    // A component that schedules another activity first: exit 1, the position, both calls.
    let drift = common::component("fixtures-drift");
    let out = replay(&file, &["--component", drift.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("run 0 diverges: nondeterminism: at position 0 the history records activity_scheduled 'echo'")
            && err.contains("but the code now did activity_scheduled 'shout'"),
        "{err}"
    );
    assert!(stdout(&out).contains("diverges: "), "{}", stdout(&out));

    // The same check as JSON.
    let out = replay(&file, &["--json", "--component", drift.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["runs"][0]["replayedCalls"], 0, "{report}");
    assert!(
        report["runs"][0]["divergence"]
            .as_str()
            .unwrap()
            .contains("'shout'")
    );
}

#[tokio::test]
async fn a_redacted_bundle_holds_no_payload_and_replays_by_kind_and_name() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.bundle.json");
    completed_drift(
        &weft,
        "r",
        "secret-input-41",
        "secret-answer-42",
        &file,
        true,
    )
    .await;
    drop(weft);

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("secret-"), "a payload is left: {text}");
    let bundle = read_json(&file);
    assert_eq!(bundle["redacted"], true);
    assert!(
        bundle["input"].as_str().unwrap().starts_with("\"sha256:"),
        "{}",
        bundle["input"]
    );
    // Names stay: the activity and the event are still there to match by.
    assert!(text.contains("\"name\":\"echo\"") && text.contains("\"name\":\"go\""));

    let out = replay(&file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.contains("payloads redacted: calls are matched by kind and name"),
        "{shown}"
    );
    assert!(shown.contains("replays: the code made all"), "{shown}");
    assert!(!shown.contains("secret-"), "{shown}");

    // Another activity by name is still a divergence.
    let drift = common::component("fixtures-drift");
    let out = replay(&file, &["--component", drift.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("'shout'"), "{}", stderr(&out));
}

#[tokio::test]
async fn every_run_of_a_continued_instance_is_bundled_and_replayed() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("ticker", "t", json!(0)).await;
    weft.tick_ticker("t").await;
    assert_eq!(weft.finished("t").await["output"], 3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.json");
    let out = weft_cli(&weft, &["export", "t", "-o", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bundle = read_json(&file);
    let generations: Vec<_> = bundle["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["generation"].clone())
        .collect();
    assert_eq!(generations, [json!(0), json!(1), json!(2)]);

    let out = replay(&file, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for run in ["run 0", "run 1", "run 2"] {
        assert!(text.lines().any(|l| l == run), "{text}");
    }
    assert_eq!(
        text.matches("replays: the code made all").count(),
        3,
        "{text}"
    );
}

#[tokio::test]
async fn bad_bundles_and_missing_instances_get_clear_errors() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let (s, body) = weft
        .request(Method::GET, "/instances/nope/bundle", None)
        .await;
    assert_eq!(s, 404, "{body}");
    assert_eq!(body["error"]["code"], "instance_not_found", "{body}");
    let (s, body) = weft
        .request(Method::GET, "/instances/nope/bundle?redact=maybe", None)
        .await;
    assert_eq!(s, 400, "{body}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.json");
    completed_drift(&weft, "d", "hi", "go", &file, false).await;
    drop(weft);

    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{not json").unwrap();
    let out = replay(&garbage, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a weft bundle"),
        "{}",
        stderr(&out)
    );

    let mut bundle = read_json(&file);
    bundle["format"] = json!("weft-bundle/99");
    let future = dir.path().join("future.json");
    std::fs::write(&future, bundle.to_string()).unwrap();
    let out = replay(&future, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the bundle's format is 'weft-bundle/99'"),
        "{}",
        stderr(&out)
    );

    // A component whose bytes are not the ones the digest names is refused, not replayed.
    let mut bundle = read_json(&file);
    bundle["format"] = json!("weft-bundle/1");
    bundle["component"]["wasm"] = json!(base64::engine::general_purpose::STANDARD.encode(b"x"));
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, bundle.to_string()).unwrap();
    let out = replay(&tampered, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not match its digest"),
        "{}",
        stderr(&out)
    );

    let out = replay(&dir.path().join("absent.json"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("reading "), "{}", stderr(&out));
}
