//! Management routes through the real `weft` binary: the start response's `Location`, an
//! upgrade refused while the instance keeps moving, filtered purges, the entity log's paging
//! and its purge; the rules the OpenAPI document states on query values (a value outside one
//! gets `400`, one inside it is taken) and the answers it lists for every operation.

mod common;

use common::{Options, Weft};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn the_start_response_locates_the_instance() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let resp = weft
        .http
        .post(format!(
            "{}/orchestrations/wait-for-go?instanceId=loc",
            weft.url
        ))
        .json(&json!({"n": 1}))
        .send()
        .await
        .expect("start");
    assert_eq!(resp.status(), 202);
    let location = resp
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string();
    let links: Value = resp.json().await.unwrap();
    assert_eq!(location, format!("{}/instances/loc", weft.url));
    assert_eq!(links["statusQueryGetUri"], location.as_str());
    // It is where the status is.
    let status: Value = weft
        .http
        .get(&location)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["instanceId"], "loc");
    assert_eq!(status["input"], json!({"n": 1}));
}

#[tokio::test]
async fn an_upgrade_is_refused_while_the_history_keeps_growing() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("churn", "busy", json!(null)).await;
    let digest = weft.status("busy").await["componentDigest"]
        .as_str()
        .unwrap()
        .to_string();
    // A history long enough that replaying it takes longer than one more activity does.
    weft.history_has_n("busy", "activity_completed", 100).await;
    let mut answers = Vec::new();
    for _ in 0..20 {
        let (code, body) = weft
            .request(
                Method::POST,
                &format!("/instances/busy/upgrade?to={digest}"),
                None,
            )
            .await;
        assert!(code == 200 || code == 409, "{code} {body}");
        let busy = code == 409;
        answers.push((code, body));
        if busy {
            break;
        }
    }
    let (code, body) = answers.last().unwrap();
    assert_eq!(
        (*code, body["error"]["code"].as_str()),
        (409, Some("instance_busy")),
        "every history replayed was outgrown before the move: {answers:?}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("kept recording while it was checked"),
        "{body}"
    );
    let (code, _) = weft
        .request(Method::POST, "/instances/busy/terminate", None)
        .await;
    assert_eq!(code, 202);
    weft.finished("busy").await;
}

#[tokio::test]
async fn a_filtered_purge_deletes_only_the_ended_instances_that_match() {
    let weft = Weft::start(Options::new(&["fixtures", "hello-sequence"]));
    for i in 0..3 {
        weft.start_instance("hello-sequence", &format!("seq-{i}"), json!(null))
            .await;
    }
    for id in ["wait-0", "wait-1", "wait-done"] {
        weft.start_instance("wait-for-go", id, json!(null)).await;
    }
    weft.start_instance("child-double", "double", json!(4))
        .await;
    weft.raise("wait-done", "go", json!(1)).await;
    for id in ["seq-0", "seq-1", "seq-2", "wait-done", "double"] {
        weft.finished(id).await;
    }
    weft.history_has("wait-0", "event_wait_created").await;
    weft.history_has("wait-1", "event_wait_created").await;
    let rows = |id: &str| {
        weft.query_i64(&format!(
            "SELECT (SELECT count(*) FROM instances WHERE id = '{id}')
                  + (SELECT count(*) FROM history WHERE instance_id = '{id}')"
        ))
    };

    // Status and name: the completed hello-sequences only.
    let (code, body) = weft
        .request(
            Method::DELETE,
            "/instances?runtimeStatus=Completed&name=hello-sequence",
            None,
        )
        .await;
    assert_eq!(
        (code, &body["instancesDeleted"]),
        (200, &json!(3)),
        "{body}"
    );
    for id in ["seq-0", "seq-1", "seq-2"] {
        assert_eq!(rows(id), 0, "{id} and its history are gone");
    }
    for id in ["wait-0", "wait-1", "wait-done", "double"] {
        assert!(rows(id) > 0, "{id} stays");
    }

    // A name only: the ended one of that name; the waiting ones stay, running.
    let (code, body) = weft
        .request(Method::DELETE, "/instances?name=wait-for-go", None)
        .await;
    assert_eq!(
        (code, &body["instancesDeleted"]),
        (200, &json!(1)),
        "{body}"
    );
    assert_eq!(rows("wait-done"), 0);
    for id in ["wait-0", "wait-1"] {
        assert_eq!(weft.status(id).await["runtimeStatus"], "Running");
    }
    assert!(rows("double") > 0, "another name stays");

    // Nothing left that matches: nothing deleted.
    let (code, body) = weft
        .request(Method::DELETE, "/instances?runtimeStatus=Failed", None)
        .await;
    assert_eq!(
        (code, &body["instancesDeleted"]),
        (200, &json!(0)),
        "{body}"
    );
    assert!(rows("double") > 0);
}

async fn signal(weft: &Weft, key: &str, n: i64) {
    let (code, body) = weft
        .request(
            Method::POST,
            &format!("/entities/counter/{key}?op=add"),
            Some(&json!(n)),
        )
        .await;
    assert_eq!(code, 202, "{body}");
}

/// The operations of counter `key` from `query` (e.g. `?from=2&top=2`).
async fn log_page(weft: &Weft, key: &str, query: &str) -> (u16, Vec<Value>) {
    let (code, body) = weft
        .request(
            Method::GET,
            &format!("/entities/counter/{key}/history{query}"),
            None,
        )
        .await;
    let ops = body["operations"].as_array().cloned().unwrap_or_default();
    (code, ops)
}

/// Waits until counter `key` has applied `n` operations; its log.
async fn applied(weft: &Weft, key: &str, n: usize) -> Vec<Value> {
    weft.eventually(&format!("counter {key} applied {n}"), async || {
        let (_, ops) = log_page(weft, key, "").await;
        (ops.len() >= n).then_some(ops)
    })
    .await
}

#[tokio::test]
async fn the_entity_log_pages_from_a_seq() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    for n in 1..=5 {
        signal(&weft, "paged", n).await;
    }
    let all = applied(&weft, "paged", 5).await;
    let inputs: Vec<&Value> = all.iter().map(|op| &op["input"]).collect();
    assert_eq!(
        inputs,
        [&json!(1), &json!(2), &json!(3), &json!(4), &json!(5)]
    );

    let from = all[2]["seq"].as_u64().unwrap();
    let (code, page) = log_page(&weft, "paged", &format!("?from={from}&top=2")).await;
    assert_eq!(code, 200);
    assert_eq!(page, all[2..4], "two operations from the third");
    let (_, rest) = log_page(&weft, "paged", &format!("?from={from}")).await;
    assert_eq!(rest, all[2..], "from the third to the end");
    let (_, first) = log_page(&weft, "paged", "?top=1").await;
    assert_eq!(first, all[..1]);
    let after = all[4]["seq"].as_u64().unwrap() + 1;
    let (code, none) = log_page(&weft, "paged", &format!("?from={after}")).await;
    assert_eq!((code, none.len()), (200, 0), "past the end: nothing");
}

#[tokio::test]
async fn purging_an_entity_removes_its_log() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    for n in [1, 2, 3] {
        signal(&weft, "gone", n).await;
    }
    signal(&weft, "kept", 7).await;
    applied(&weft, "gone", 3).await;
    applied(&weft, "kept", 1).await;
    let logged = |key: &str| {
        weft.query_i64(&format!(
            "SELECT count(*) FROM entity_log WHERE name = 'counter' AND key = '{key}'"
        ))
    };
    assert_eq!(logged("gone"), 3);

    let (code, body) = weft
        .request(Method::DELETE, "/entities/counter/gone", None)
        .await;
    assert_eq!((code, &body["entitiesDeleted"]), (200, &json!(1)), "{body}");
    assert_eq!(logged("gone"), 0, "the log rows are deleted");
    let (code, ops) = log_page(&weft, "gone", "").await;
    assert!(
        code == 404 || (code == 200 && ops.is_empty()),
        "{code} {ops:?}"
    );
    let (code, _) = weft
        .request(Method::GET, "/entities/counter/gone", None)
        .await;
    assert_eq!(code, 404);
    // Another key's log is untouched.
    assert_eq!(logged("kept"), 1);
    assert_eq!(log_page(&weft, "kept", "").await.1.len(), 1);
}

/// The hex form of a continuation token's text.
fn token(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn ids(page: &Value) -> Vec<&str> {
    page["instances"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["instanceId"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn values_outside_the_documented_rules_get_400() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let refused = [
        // Times are RFC 3339 date-times: a `T`, a zone, a date that exists.
        (Method::GET, "/instances?createdFrom=2026-01-01%2000:00:00Z"),
        (Method::GET, "/instances?createdFrom=2026-01-01T00:00:00"),
        (Method::GET, "/instances?createdTo=2026-02-29T00:00:00Z"),
        (Method::GET, "/instances?createdFrom=2026-01-01T24:00:00Z"),
        (Method::GET, "/instances?createdFrom=2026-01-01T00:00:00.Z"),
        (
            Method::GET,
            "/instances?createdFrom=2026-01-01T00:00:00%2B24:00",
        ),
        (
            Method::GET,
            "/instances?createdFrom=2026-01-01T00:00:00.5%2B99:99",
        ),
        (Method::DELETE, "/instances?createdTo=2026-01-01%2000:00:00"),
        // Statuses by name, commas between, only spaces around.
        (Method::GET, "/instances?runtimeStatus=Running,%09Completed"),
        (Method::GET, "/instances?runtimeStatus=Running,,Completed"),
        (Method::GET, "/instances?runtimeStatus=%20"),
        (Method::DELETE, "/instances?runtimeStatus=Completed%0A"),
        // Page sizes and the entity log's start.
        (Method::GET, "/entities?top=0"),
        (Method::GET, "/entities?top=1001"),
        (Method::GET, "/entities/counter/a/history?top=1001"),
        (
            Method::GET,
            "/entities/counter/a/history?from=9223372036854775808",
        ),
        // An entity token is hex.
        (Method::GET, "/entities?continuationToken=abc"),
        (Method::GET, "/entities?continuationToken=zz"),
    ];
    for (method, path) in refused {
        let (status, body) = weft.request(method.clone(), path, None).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{method} {path}");
    }
    // An instance token is the hex of 1 to 18 digits, `:` and an instance id.
    for text in ["+5:abc", "1234567890123456789:a", "12:", "12:a b", "x:a"] {
        let path = format!("/instances?continuationToken={}", token(text));
        let (status, body) = weft.request(Method::GET, &path, None).await;
        assert_eq!(status, 400, "{text:?}: {body}");
    }
}

#[tokio::test]
async fn values_inside_the_documented_rules_are_taken() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    // The manual clock starts at 2026-01-01T00:00:00Z.
    weft.start_instance("wait-for-go", "w", json!({})).await;
    let cases = [
        // Any zone; lowercase `t` and `z`; before 1970 counts as 1970.
        ("/instances?createdFrom=2026-01-01T01:00:00%2B01:00", true),
        // The zone counts also after a fraction.
        ("/instances?createdFrom=2026-01-01T04:59:59.5%2B05:00", true),
        (
            "/instances?createdTo=2026-01-01T00:59:59.999%2B01:00",
            false,
        ),
        ("/instances?createdTo=2025-12-31T23:00:00.001-01:00", true),
        ("/instances?createdFrom=2026-01-01t00:00:00z", true),
        ("/instances?createdFrom=1969-12-31T23:59:59Z", true),
        ("/instances?createdTo=1969-12-31T23:59:59Z", false),
        (
            "/instances?runtimeStatus=Pending%20,Running%20,%20Completed",
            true,
        ),
        ("/instances?runtimeStatus=", true),
        ("/instances?runtimeStatus=Completed", false),
    ];
    for (path, listed) in cases {
        let (status, page) = weft.request(Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert_eq!(ids(&page) == ["w"], listed, "{path}: {page}");
    }
    // Any hex is a position in (name, key) order, also bytes that are not text.
    for t in ["", "ff", "00", &token("counter\0a")] {
        let path = format!("/entities?continuationToken={t}");
        let (status, body) = weft.request(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, body) = weft
        .request(
            Method::GET,
            "/entities/counter/a/history?from=9223372036854775807&top=1000",
            None,
        )
        .await;
    assert_ne!(status, 400, "{body}");
}

/// The schema of query parameter `name` of `method` on `path`.
fn query_schema<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name && p["in"] == "query"))
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("{method} {path} documents {name}"))
}

#[tokio::test]
async fn the_document_states_the_rules_and_every_answer() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    let (status, doc) = weft.request(Method::GET, "/openapi.json", None).await;
    assert_eq!(status, 200);

    for (path, method) in [
        ("/instances", "get"),
        ("/entities", "get"),
        ("/entities/{name}/{key}/history", "get"),
    ] {
        let top = query_schema(&doc, path, method, "top");
        assert_eq!(
            (&top["minimum"], &top["maximum"]),
            (&json!(1), &json!(1000))
        );
    }
    let from = query_schema(&doc, "/entities/{name}/{key}/history", "get", "from");
    assert_eq!(from["maximum"], json!(i64::MAX));
    for method in ["get", "delete"] {
        for name in ["createdFrom", "createdTo"] {
            assert_eq!(
                query_schema(&doc, "/instances", method, name)["format"],
                "date-time"
            );
        }
        let statuses = query_schema(&doc, "/instances", method, "runtimeStatus");
        assert!(
            statuses["pattern"]
                .as_str()
                .is_some_and(|p| p.contains("Suspended")),
            "{statuses}"
        );
    }
    for path in ["/instances", "/entities"] {
        let t = query_schema(&doc, path, "get", "continuationToken");
        assert!(t["pattern"].is_string(), "{path}: {t}");
    }

    // An empty body is null: the body is optional.
    for (path, method) in [
        ("/orchestrations/{name}", "post"),
        ("/entities/{name}/{key}", "post"),
        ("/instances/{id}/raiseEvent/{event}", "post"),
        ("/callbacks/{id}/{event}", "post"),
    ] {
        let body = &doc["paths"][path][method]["requestBody"];
        assert_ne!(body["required"], true, "{method} {path}: {body}");
    }

    // An ended instance: 410.
    for path in [
        "/instances/{id}/raiseEvent/{event}",
        "/instances/{id}/terminate",
        "/instances/{id}/suspend",
        "/instances/{id}/resume",
        "/instances/{id}/upgrade",
    ] {
        let gone = &doc["paths"][path]["post"]["responses"]["410"];
        assert_eq!(
            gone["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
            "{path}"
        );
    }

    // Every operation: the limits on the request head, a store that cannot take it; with a
    // body, the limits on the body.
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("operations") {
            let answers = &op["responses"];
            let mut expected = vec!["414", "431", "503"];
            if op.get("requestBody").is_some() {
                expected.extend(["408", "413"]);
            }
            for status in expected {
                assert_eq!(
                    answers[status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} documents {status}"
                );
            }
        }
    }
}
