//! More of the `weft` command line against a running server: the `entity` commands, `list`
//! by name and page size, and `upgrade` moving an instance to another component.

mod common;

use common::{Options, Weft, stderr, stdout, weft_cli};
use serde_json::{Value, json};

/// Runs a command that must succeed; its stdout.
fn ok(server: &Weft, args: &[&str]) -> String {
    let out = weft_cli(server, args);
    assert!(out.status.success(), "weft {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Runs a command with `--json` that must succeed; its JSON.
fn ok_json(server: &Weft, args: &[&str]) -> Value {
    let args = [args, &["--json"]].concat();
    let text = ok(server, &args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("weft {args:?}: {e}: {text}"))
}

#[tokio::test]
async fn the_entity_commands_signal_read_list_and_purge() {
    let server = Weft::start(Options::new(&["fixtures"]));
    assert_eq!(
        ok(&server, &["entity", "signal", "counter", "a", "add", "5"]),
        ""
    );
    ok(&server, &["entity", "signal", "counter", "a", "add", "2"]);
    ok(&server, &["entity", "signal", "counter", "b", "add", "1"]);
    server
        .eventually("both operations on a are applied", async || {
            let (code, e) = server
                .request(reqwest::Method::GET, "/entities/counter/a", None)
                .await;
            (code == 200 && e["operationCount"] == 2).then_some(())
        })
        .await;
    server
        .eventually("b is applied", async || {
            let (code, _) = server
                .request(reqwest::Method::GET, "/entities/counter/b", None)
                .await;
            (code == 200).then_some(())
        })
        .await;

    // get: the state; with --json the whole entity.
    assert_eq!(ok(&server, &["entity", "get", "counter", "a"]), "7");
    let a = ok_json(&server, &["entity", "get", "counter", "a"]);
    assert_eq!((&a["key"], &a["state"]), (&json!("a"), &json!(7)));

    // history: one line per operation, oldest first.
    let text = ok(&server, &["entity", "history", "counter", "a"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("add") && lines[0].contains("5 -> 5"),
        "{text}"
    );
    assert!(lines[1].contains("2 -> 7"), "{text}");
    let ops = ok_json(&server, &["entity", "history", "counter", "a"]);
    assert_eq!(ops[1]["output"], 7, "{ops}");

    // list: every counter, or by name.
    let text = ok(&server, &["entity", "list"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("counter") && l.contains(" a "))
    );
    let listed = ok_json(&server, &["entity", "list", "--name", "counter"]);
    let keys: Vec<&Value> = listed["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["key"])
        .collect();
    assert_eq!(keys, [&json!("a"), &json!("b")]);
    let listed = ok_json(&server, &["entity", "list", "--name", "no-such-entity"]);
    assert_eq!(listed["entities"], json!([]));

    // purge: state and log are gone; b stays.
    ok(&server, &["entity", "purge", "counter", "a"]);
    let out = weft_cli(&server, &["entity", "get", "counter", "a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    assert_eq!(
        server.query_i64("SELECT count(*) FROM entity_log WHERE key = 'a'"),
        0
    );
    assert_eq!(ok(&server, &["entity", "get", "counter", "b"]), "1");

    // A signal to an entity that is not deployed fails with the reason.
    let out = weft_cli(&server, &["entity", "signal", "nothing", "k", "add", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
}

#[tokio::test]
async fn list_filters_by_name_and_pages_by_top() {
    let server = Weft::start(Options::new(&["fixtures", "hello-sequence"]));
    for i in 0..3 {
        ok(
            &server,
            &["start", "hello-sequence", "--id", &format!("seq-{i}")],
        );
    }
    for i in 0..2 {
        ok(
            &server,
            &["start", "wait-for-go", "--id", &format!("wait-{i}")],
        );
    }

    let by_name = ok_json(&server, &["list", "--name", "wait-for-go"]);
    let ids: Vec<&Value> = by_name["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["instanceId"])
        .collect();
    assert_eq!(ids, [&json!("wait-0"), &json!("wait-1")], "{by_name}");
    let text = ok(&server, &["list", "--name", "hello-sequence"]);
    assert_eq!(text.lines().count(), 4, "a header and three: {text}");
    assert!(!text.contains("wait-"), "{text}");

    let top = ok_json(&server, &["list", "--top", "2"]);
    let page = top["instances"].as_array().unwrap();
    assert_eq!(page.len(), 2, "{top}");
    assert!(top["continuationToken"].is_string(), "more to come: {top}");
    let all = ok_json(&server, &["list"]);
    assert_eq!(all["instances"].as_array().unwrap().len(), 5);
    assert_eq!(
        page[..],
        all["instances"].as_array().unwrap()[..2],
        "oldest first"
    );
}

#[tokio::test]
async fn upgrade_moves_the_status_to_the_new_component() {
    let server = Weft::start(Options::new(&["fixtures"]));
    ok(&server, &["start", "wait-for-go", "--id", "up"]);
    server.history_has("up", "event_wait_created").await;
    let before = ok_json(&server, &["status", "up"]);
    let file = common::component("fixtures-drift");
    let digest = ok(&server, &["deploy", file.to_str().unwrap()]);
    assert_eq!(digest.len(), 64, "{digest}");
    assert_ne!(before["componentDigest"], digest.as_str());

    let moved = ok(&server, &["upgrade", "up", "--to", &digest]);
    assert!(moved.contains(&format!("to {digest}")), "{moved}");
    let after = ok_json(&server, &["status", "up"]);
    assert_eq!(after["componentDigest"], digest.as_str(), "{after}");
    assert_eq!(after["runtimeStatus"], "Running");
    ok(&server, &["raise", "up", "go", "3"]);
    let status = server.finished("up").await;
    assert_eq!(status["output"], json!({"upgraded": 3}), "{status}");
}
