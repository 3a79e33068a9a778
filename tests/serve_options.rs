//! Options of `weft serve` through the real binary: wall-clock timers (no `--manual-clock`),
//! `--public-url` in the links it hands out, `--max-hot` evicting waiting instances.

mod common;

use common::{Options, Weft};
use serde_json::{Value, json};

fn events<'a>(status: &'a Value, kind: &str) -> Vec<&'a Value> {
    status["historyEvents"]
        .as_array()
        .expect("a history")
        .iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

/// An event's time in ms since the epoch, from its RFC 3339 `timestamp`.
fn millis(event: &Value) -> u64 {
    let text = event["timestamp"].as_str().expect("a timestamp");
    weft::clock::parse_rfc3339(text).expect("an RFC 3339 time")
}

#[tokio::test]
async fn on_wall_time_a_timeout_fires_by_itself() {
    let weft = Weft::start(Options::new(&["fixtures"]).wall_clock());
    weft.start_instance("wait-with-timeout", "brief", json!(1.0))
        .await;
    // Nobody raises the event or moves a clock.
    let status = weft.finished("brief").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], Value::Null, "the wait timed out");
    let created = events(&status, "timer_created");
    let fired = events(&status, "timer_fired");
    assert_eq!((created.len(), fired.len()), (1, 1), "{status}");
    // Armed for a second; fired when due, not before, and soon after.
    let due = created[0]["fire_at"].as_u64().expect("the time it is due");
    assert!(due - millis(created[0]) <= 1_000, "{status}");
    let late = millis(fired[0])
        .checked_sub(due)
        .expect("the timer fired when it was due, not before");
    assert!(late < 30_000, "fired {late} ms after it was due");
    assert_eq!(weft.query_i64("SELECT count(*) FROM timers"), 0);
    // The clock is not manual: it cannot be moved.
    let (code, body) = weft
        .request(
            reqwest::Method::POST,
            "/admin/clock/advance",
            Some(&json!({"seconds": 1})),
        )
        .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("clock_not_manual"))
    );
}

const PUBLIC: &str = "https://weft.example.com:8443/flows";

#[tokio::test]
async fn links_and_callback_urls_use_the_public_url() {
    let mut options = Options::new(&["fixtures"]);
    options.args = vec!["--public-url".into(), format!("{PUBLIC}/")];
    let weft = Weft::start(options);
    let resp = weft
        .http
        .post(format!(
            "{}/orchestrations/await-callback?instanceId=pub",
            weft.url
        ))
        .json(&json!(null))
        .send()
        .await
        .expect("start");
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let links: Value = resp.json().await.unwrap();
    let base = format!("{PUBLIC}/instances/pub");
    assert_eq!(location, base);
    assert_eq!(links["statusQueryGetUri"], base.as_str());
    assert_eq!(links["purgeHistoryDeleteUri"], base.as_str());
    for (key, suffix) in [
        ("sendEventPostUri", "/raiseEvent/{eventName}"),
        ("terminatePostUri", "/terminate?reason={text}"),
        ("suspendPostUri", "/suspend?reason={text}"),
        ("resumePostUri", "/resume?reason={text}"),
    ] {
        assert_eq!(links[key], format!("{base}{suffix}"), "{key}");
    }
    // The callback URL an orchestration hands out names the public address too.
    let url = weft
        .eventually("the callback URL is published", async || {
            let s = weft.status("pub").await;
            s["customStatus"]["callbackUrl"]
                .as_str()
                .map(str::to_string)
        })
        .await;
    assert!(
        url.starts_with(&format!("{PUBLIC}/callbacks/pub/Done?expires=")),
        "{url}"
    );
    // ...and, moved back to the listening address, it still raises the event.
    let local = url.replace(PUBLIC, &weft.url);
    let resp = reqwest::Client::new()
        .post(local)
        .json(&json!("called"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let status = weft.finished("pub").await;
    assert_eq!(status["output"]["event"], "called", "{status}");
}

#[tokio::test]
async fn past_max_hot_a_waiting_instance_is_evicted_and_replays_when_woken() {
    let mut options = Options::new(&["fixtures"]);
    options.args = vec!["--max-hot".into(), "1".into()];
    // Without the bound, a waiting instance would stay in memory for a minute.
    assert_eq!(options.idle_timeout, 60.0);
    let weft = Weft::start(options);
    weft.start_instance("wait-for-go", "first", json!(null))
        .await;
    weft.history_has("first", "event_wait_created").await;
    weft.start_instance("wait-for-go", "second", json!(null))
        .await;
    weft.history_has("second", "event_wait_created").await;

    // Two waiting instances, room for one: the second left memory when it started waiting.
    weft.raise("second", "go", json!(2)).await;
    assert_eq!(weft.finished("second").await["output"], 2);
    assert!(
        weft.replays("second") >= 1,
        "woken, the evicted instance replayed its history; log:\n{}",
        weft.log()
    );
    weft.raise("first", "go", json!(1)).await;
    assert_eq!(weft.finished("first").await["output"], 1);
}
