//! Durable entities: operations on one entity apply one at a time, in order, exactly once,
//! across instances and restarts; orchestrations call and signal them; operators read their
//! state and operation log, signal, list and purge them over HTTP.

mod common;

use common::{Options, Weft};
use reqwest::Method;
use serde_json::{Value, json};

/// The entity once no operation is waiting for it.
async fn settled(weft: &Weft, path: &str) -> Value {
    weft.eventually(&format!("{path} has no operation waiting"), async || {
        let (status, body) = weft.request(Method::GET, path, None).await;
        (status == 200 && body["pendingOperations"] == 0).then_some(body)
    })
    .await
}

async fn operations(weft: &Weft, path: &str) -> Vec<Value> {
    let (status, body) = weft
        .request(Method::GET, &format!("{path}/history?top=1000"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["operations"].as_array().cloned().unwrap_or_default()
}

/// Starts 50 orchestrations that each signal counter `key` 20 times.
async fn start_signallers(weft: &Weft, key: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..50 {
        let id = format!("{key}-{i}");
        weft.start_instance("signal-counter", &id, json!({ "key": key, "times": 20 }))
            .await;
        ids.push(id);
    }
    ids
}

/// Checks that counter `key` saw exactly 1000 additions, one at a time: each answered the
/// value before it plus one.
async fn assert_counted_once_each(weft: &Weft, ids: &[String], key: &str) {
    for id in ids {
        let s = weft.finished(id).await;
        assert_eq!(s["runtimeStatus"], "Completed", "{s}");
    }
    let path = format!("/entities/counter/{key}");
    let entity = settled(weft, &path).await;
    assert_eq!(entity["state"], 1000, "{entity}");
    assert_eq!(entity["operationCount"], 1000);
    let ops = operations(weft, &path).await;
    assert_eq!(ops.len(), 1000);
    for (i, op) in ops.iter().enumerate() {
        assert_eq!(op["seq"], i);
        assert_eq!(op["operation"], "add");
        assert_eq!(
            op["output"],
            i + 1,
            "operation {i} saw the state of the one before"
        );
    }
}

#[tokio::test]
async fn fifty_orchestrations_signal_one_counter_a_thousand_times() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let ids = start_signallers(&weft, "shared").await;
    assert_counted_once_each(&weft, &ids, "shared").await;
}

#[tokio::test]
async fn the_count_is_exact_across_a_restart_in_the_middle() {
    let mut weft = Weft::start(Options::new(&["fixtures"]));
    let ids = start_signallers(&weft, "crash").await;
    weft.eventually("the counter is under way", async || {
        let (status, body) = weft
            .request(Method::GET, "/entities/counter/crash", None)
            .await;
        (status == 200 && body["operationCount"].as_u64() >= Some(100)).then_some(())
    })
    .await;
    weft.kill();
    let applied = weft.query_i64("SELECT operations FROM entities WHERE key = 'crash'");
    let waiting = weft.query_i64("SELECT count(*) FROM entity_inbox")
        + weft.query_i64("SELECT count(*) FROM instances WHERE status IN ('Pending', 'Running')");
    println!(
        "killed with {applied} operations applied and {waiting} operations or instances to go"
    );
    assert!(waiting > 0, "the kill came after all the work was done");
    weft.restart();
    assert_counted_once_each(&weft, &ids, "crash").await;
}

#[tokio::test]
async fn an_orchestration_calls_an_entity_and_handles_its_failures() {
    // Evicted at every wait: the calls replay from history each time.
    let weft = Weft::start(Options::new(&["fixtures"]).evict_always());
    weft.start_instance("call-counter", "caller", json!({ "key": "k", "add": 5 }))
        .await;
    let status = weft.finished("caller").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(
        status["output"],
        json!({
            "added": 5,
            "failed": { "error": "refused: the counter refuses" },
            "after": 5,
            "missing": { "error": "no entity named 'no-such-entity' is deployed" },
        })
    );
    assert!(weft.replays("caller") >= 3, "the calls were replayed");
    let history = status["historyEvents"].as_array().unwrap();
    let kinds: Vec<&str> = history.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "entity_called").count(), 4);
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "entity_call_completed")
            .count(),
        2
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "entity_call_failed").count(),
        2
    );

    // The failed operation is in the log, and it left the state as it was.
    let entity = settled(&weft, "/entities/counter/k").await;
    assert_eq!(entity["state"], 5);
    let ops = operations(&weft, "/entities/counter/k").await;
    assert_eq!(ops[1]["operation"], "add-then-fail");
    assert_eq!(ops[1]["error"], "refused: the counter refuses");
    assert!(ops[1].get("output").is_none());
    assert_eq!(ops[1]["source"], "caller");
    // An entity that is not deployed is never created.
    let (code, _) = weft
        .request(Method::GET, "/entities/no-such-entity/k", None)
        .await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn operators_signal_read_list_and_purge_entities() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let signal = async |key: &str, op: &str, body: Value| {
        weft.request(
            Method::POST,
            &format!("/entities/counter/{key}?op={op}"),
            Some(&body),
        )
        .await
    };
    for (key, n) in [("a", 3), ("b", 4), ("a", 10)] {
        let (code, body) = signal(key, "add", json!(n)).await;
        assert_eq!(code, 202, "{body}");
    }
    let a = settled(&weft, "/entities/counter/a").await;
    assert_eq!(a["state"], 13);
    assert_eq!(a["name"], "counter");
    assert_eq!(a["key"], "a");
    assert_eq!(a["lastModifiedTime"], "2026-01-01T00:00:00.000Z");
    let ops = operations(&weft, "/entities/counter/a").await;
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0]["input"], 3);
    assert_eq!(ops[1]["output"], 13);
    assert!(ops[0].get("source").is_none(), "sent over HTTP: {}", ops[0]);

    // An unknown operation fails in the log and changes nothing.
    let (code, _) = signal("a", "nope", Value::Null).await;
    assert_eq!(code, 202);
    weft.eventually("the unknown operation is logged", async || {
        (operations(&weft, "/entities/counter/a").await.len() == 3).then_some(())
    })
    .await;
    let ops = operations(&weft, "/entities/counter/a").await;
    assert_eq!(
        ops[2]["error"],
        "unknown_operation: no operation 'nope' on this entity"
    );
    assert_eq!(settled(&weft, "/entities/counter/a").await["state"], 13);

    settled(&weft, "/entities/counter/b").await;
    let (code, page) = weft
        .request(Method::GET, "/entities?name=counter&top=1", None)
        .await;
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["entities"][0]["key"], "a");
    let token = page["continuationToken"].as_str().expect("a next page");
    let (_, next) = weft
        .request(
            Method::GET,
            &format!("/entities?name=counter&top=1&continuationToken={token}"),
            None,
        )
        .await;
    assert_eq!(next["entities"][0]["key"], "b");
    assert_eq!(next["entities"][0]["state"], 4);

    let logged = weft.query_i64("SELECT count(*) FROM entity_log WHERE key = 'a'");
    assert!(logged > 0);
    let (code, body) = weft
        .request(Method::DELETE, "/entities/counter/a", None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"entitiesDeleted": 1, "logEntriesDeleted": logged}),
        "what was deleted"
    );
    assert_eq!(
        weft.query_i64("SELECT count(*) FROM entity_log WHERE key = 'a'"),
        0
    );
    let (code, body) = weft.request(Method::GET, "/entities/counter/a", None).await;
    assert_eq!(code, 404);
    assert_eq!(body["error"]["code"], "entity_not_found");
    let (code, body) = weft
        .request(Method::DELETE, "/entities/counter/a", None)
        .await;
    assert_eq!(
        (code, &body["error"]["code"]),
        (404, &json!("entity_not_found"))
    );

    // Bad input: a clear 4xx, nothing stored.
    let (code, body) = signal("c", "add", Value::Null).await;
    assert_eq!(code, 202, "a null input is an input: {body}");
    let (code, body) = weft
        .request(Method::POST, "/entities/counter/c", Some(&json!(1)))
        .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
    let (code, body) = weft
        .request(
            Method::POST,
            "/entities/no-such-entity/c?op=add",
            Some(&json!(1)),
        )
        .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (404, Some("unknown_entity"))
    );
    let resp = weft
        .http
        .post(format!("{}/entities/counter/c?op=add", weft.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (code, _) = weft
        .request(Method::GET, "/entities/counter/c/history?top=0", None)
        .await;
    assert_eq!(code, 400);
    let (code, _) = weft
        .request(Method::GET, "/entities?continuationToken=zz", None)
        .await;
    assert_eq!(code, 400);
    let unauthorized = reqwest::Client::new()
        .get(format!("{}/entities/counter/b", weft.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
}
