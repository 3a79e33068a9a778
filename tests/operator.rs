//! The operator surface through the real `weft` binary: auth, signed callback URLs,
//! suspend and resume, and the command line.

mod common;

use common::{Options, TOKEN, Weft};
use serde_json::{Value, json};
use std::process::{Command, Output};

fn cli(server: &Weft, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.args(args)
        .args(["--server", &server.url])
        .env_remove("WEFT_TOKEN");
    if let Some(t) = token {
        cmd.env("WEFT_TOKEN", t);
    }
    cmd.output().expect("run weft")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

async fn callback_url(weft: &Weft, id: &str) -> String {
    weft.eventually("the callback URL is published", async || {
        let s = weft.status(id).await;
        s["customStatus"]["callbackUrl"]
            .as_str()
            .map(str::to_string)
    })
    .await
}

/// Posts to a URL with no credentials.
async fn post_anonymously(url: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_callback_url_raises_its_event_and_nothing_else() {
    // Evicted at every wait: the URL the orchestration returns at the end comes from replay.
    let weft = Weft::start(Options::new(&["fixtures"]).evict_always());
    weft.start_instance("await-callback", "cb-1", json!(null))
        .await;
    weft.start_instance("await-callback", "cb-2", json!(null))
        .await;
    let url1 = callback_url(&weft, "cb-1").await;
    let url2 = callback_url(&weft, "cb-2").await;
    assert!(
        url1.starts_with(&format!("{}/callbacks/cb-1/Done?", weft.url)),
        "{url1}"
    );

    // Tampered: one character of the signature changed.
    let last = url1.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &url1[..url1.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let (s, b) = post_anonymously(&tampered, json!(1)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("invalid_signature"))
    );
    // For another instance, and for another event.
    let other_instance = url1.replace("/callbacks/cb-1/", "/callbacks/cb-2/");
    assert_eq!(post_anonymously(&other_instance, json!(1)).await.0, 403);
    let other_event = url1.replace("/Done?", "/Other?");
    assert_eq!(post_anonymously(&other_event, json!(1)).await.0, 403);
    // A later expiry with the old signature.
    let later = url1.replace("expires=", "expires=9");
    assert_eq!(post_anonymously(&later, json!(1)).await.0, 403);

    // Used as given, without a bearer token.
    let (s, b) = post_anonymously(&url1, json!({"result": "done"})).await;
    assert_eq!(s, 202, "{b}");
    let status = weft.finished("cb-1").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"]["event"], json!({"result": "done"}));
    assert_eq!(
        status["output"]["url"], url1,
        "replay yields the recorded URL"
    );
    assert!(weft.replays("cb-1") >= 1);
    let history = status["historyEvents"].as_array().unwrap();
    assert!(
        history
            .iter()
            .any(|e| e["type"] == "callback_url_created" && e["url"] == url1),
        "the URL is in the history"
    );
    // After completion.
    let (s, b) = post_anonymously(&url1, json!(2)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (410, Some("instance_finished"))
    );

    // Expired: the URL lives 60 s on weft's clock.
    weft.advance(61.0).await;
    let (s, b) = post_anonymously(&url2, json!(3)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("callback_expired"))
    );
    assert_eq!(
        weft.stored_events("cb-2", "event_raised"),
        0,
        "the expired URL raised nothing"
    );
}

#[tokio::test]
async fn suspended_instances_hold_events_and_timers_until_resumed() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    weft.start_instance("wait-twice", "sus", json!(null)).await;
    weft.history_has("sus", "timer_created").await;
    let (s, _) = weft
        .request(
            reqwest::Method::POST,
            "/instances/sus/suspend?reason=maintenance",
            None,
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(weft.status("sus").await["runtimeStatus"], "Suspended");

    // The timer fires, then an event arrives, while suspended.
    weft.advance(31.0).await;
    weft.raise("sus", "answer", json!(7)).await;
    weft.eventually("the instance holds what arrived", async || {
        weft.log()
            .lines()
            .any(|l| l.contains("suspended: holding") && l.contains("sus"))
            .then_some(())
    })
    .await;
    let status = weft.status("sus").await;
    assert_eq!(status["runtimeStatus"], "Suspended");
    let kinds: Vec<&str> = status["historyEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert!(
        kinds.contains(&"timer_fired") && kinds.contains(&"event_raised"),
        "{kinds:?}"
    );
    assert!(
        !kinds.contains(&"await_resolved"),
        "nothing delivered: {kinds:?}"
    );

    let (s, _) = weft
        .request(reqwest::Method::POST, "/instances/sus/resume", None)
        .await;
    assert_eq!(s, 202);
    let status = weft.finished("sus").await;
    // The timer fired first: the first wait timed out, the event went to the second.
    assert_eq!(status["output"], json!([null, 7]), "{status}");
}

#[tokio::test]
async fn a_server_without_a_token_makes_one_on_loopback() {
    let mut options = Options::new(&["hello-sequence"]);
    options.token = None;
    let weft = Weft::start(options);
    let log = weft.log();
    let token = log
        .lines()
        .find_map(|l| l.strip_prefix("weft: no WEFT_TOKEN set; this server's token is "))
        .expect("the token is printed")
        .trim()
        .to_string();
    let (s, _) = weft.request(reqwest::Method::GET, "/instances", None).await;
    assert_eq!(s, 401, "no token");
    let resp = common::authorized_client(&token)
        .get(format!("{}/instances", weft.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the printed token");
    let resp = common::authorized_client("wrong")
        .get(format!("{}/instances", weft.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a wrong token");
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let mut options = Options::new(&["hello-sequence"]);
    options.args = vec!["--max-body".into(), "100".into()];
    let weft = Weft::start(options);
    let small = json!("x".repeat(50));
    let (s, _) = weft
        .request(
            reqwest::Method::POST,
            "/orchestrations/hello-sequence",
            Some(&small),
        )
        .await;
    assert_eq!(s, 202);
    let resp = common::authorized_client(TOKEN)
        .post(format!("{}/orchestrations/hello-sequence", weft.url))
        .json(&json!("x".repeat(200)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[test]
fn a_server_without_a_token_refuses_other_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--listen", "0.0.0.0:0", "--db"])
        .arg(dir.path().join("weft.db"))
        .env_remove("WEFT_TOKEN")
        .output()
        .expect("run weft");
    assert!(!out.status.success());
    assert!(err(&out).contains("refusing to listen"), "{}", err(&out));
}

#[tokio::test]
async fn the_command_line_manages_instances() {
    let weft = Weft::start(Options::new(&["fixtures", "hello-sequence"]));
    let token = Some(TOKEN);
    let started = cli(&weft, token, &["start", "wait-twice", "--id", "op-1"]);
    assert!(started.status.success(), "{}", err(&started));
    weft.history_has("op-1", "timer_created").await;
    cli(&weft, token, &["start", "hello-sequence", "--id", "op-2"]);
    weft.finished("op-2").await;

    let list = cli(&weft, token, &["list"]);
    assert!(list.status.success(), "{}", err(&list));
    assert!(
        out(&list).contains("op-1") && out(&list).contains("op-2"),
        "{}",
        out(&list)
    );
    let list = cli(&weft, token, &["list", "--status", "Completed", "--json"]);
    let v: Value = serde_json::from_str(&out(&list)).expect("JSON");
    assert_eq!(v["instances"].as_array().unwrap().len(), 1);
    assert_eq!(v["instances"][0]["instanceId"], "op-2");

    let history = cli(&weft, token, &["history", "op-2"]);
    let text = out(&history);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("started") && lines[0].contains("hello-sequence"),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains("activity_scheduled")
            && l.contains("say-hello")
            && l.contains("\"Tokyo\"")),
        "{text}"
    );
    assert!(lines.last().unwrap().contains("completed"), "{text}");

    for (action, expected) in [("suspend", "Suspended"), ("resume", "Running")] {
        let o = cli(&weft, token, &[action, "op-1", "--reason", "test"]);
        assert!(o.status.success(), "{action}: {}", err(&o));
        assert_eq!(weft.status("op-1").await["runtimeStatus"], expected);
    }
    let o = cli(&weft, token, &["status", "op-1"]);
    assert!(
        out(&o).contains("runtimeStatus") && out(&o).contains("Running"),
        "{}",
        out(&o)
    );
    let o = cli(
        &weft,
        token,
        &["terminate", "op-1", "--reason", "done here"],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(weft.status("op-1").await["output"], "done here");
    let o = cli(&weft, token, &["purge", "op-1"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = cli(&weft, token, &["status", "op-1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("not found"), "{}", err(&o));
    assert_eq!(
        weft.query_i64("SELECT count(*) FROM history WHERE instance_id = 'op-1'"),
        0,
        "purge removed the history"
    );

    // Without the token: a one-line reason and exit code 1.
    let o = cli(&weft, None, &["list"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err(&o).lines().count(), 1, "{}", err(&o));
    assert!(err(&o).contains("401"), "{}", err(&o));
}

#[tokio::test]
async fn an_ended_instance_restarts_as_a_new_one_with_its_first_input() {
    let weft = Weft::start(Options::new(&["fixtures"]));
    // A ticker continues as new twice: its last run's input is 2, its first run's 0.
    weft.start_instance("ticker", "t", json!(0)).await;
    let (s, _) = weft
        .request(reqwest::Method::POST, "/instances/t/restart", None)
        .await;
    assert_eq!(s, 409, "running: refused");
    assert_eq!(
        weft.query_i64("SELECT count(*) FROM instances"),
        1,
        "nothing started"
    );
    weft.tick_ticker("t").await;
    let ended = weft.finished("t").await;
    assert_eq!(ended["input"], 2);

    let (s, body) = weft
        .request(
            reqwest::Method::POST,
            "/instances/t/restart?instanceId=t-again",
            None,
        )
        .await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["id"], "t-again");
    let again = weft.status("t-again").await;
    assert_eq!(again["name"], "ticker");
    assert_eq!(again["input"], 0, "the first run's input");
    weft.history_has("t-again", "event_wait_created").await;
    assert_eq!(
        weft.status("t").await,
        ended,
        "the ended one is left as it was"
    );

    // The same id again is the same instance; another instance's id is a conflict.
    weft.start_instance("wait-for-go", "other", json!("x"))
        .await;
    let (s, body) = weft
        .request(
            reqwest::Method::POST,
            "/instances/t/restart?instanceId=other",
            None,
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"]["code"], "instance_exists");
    let (s, body) = weft
        .request(reqwest::Method::POST, "/instances/nope/restart", None)
        .await;
    assert_eq!(s, 404, "{body}");

    // From the command line: a new id each time.
    let o = cli(&weft, Some(TOKEN), &["restart", "t"]);
    assert!(o.status.success(), "{}", err(&o));
    let new = out(&o).trim().to_string();
    assert!(new.len() == 32 && new != "t-again", "{new}");
    assert_eq!(weft.status(&new).await["input"], 0);
    let o = cli(&weft, Some(TOKEN), &["restart", "other"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("has not ended"), "{}", err(&o));
}
