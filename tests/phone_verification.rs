//! The first seed end to end: SMS phone verification with a 90-second window and four tries,
//! on the real host, a real SQLite file, real HTTP and a fake SMS provider on loopback.

mod common;

use common::sms::{self, SmsProvider};
use common::{Options, Weft, normalized};
use serde_json::{Value, json};

const PHONE: &str = "+14255550123";

fn options(provider: &SmsProvider) -> Options {
    let mut o = Options::new(&["phone-verification"]);
    for (k, v) in provider.settings() {
        o = o.env(&k, &v);
    }
    o
}

/// Starts a verification and returns the code the person received.
async fn start(weft: &Weft, provider: &SmsProvider, id: &str, nth_sms: usize) -> u32 {
    let links = weft
        .start_instance("phone-verification", id, json!(PHONE))
        .await;
    assert_eq!(links["id"], id);
    for key in [
        "statusQueryGetUri",
        "sendEventPostUri",
        "terminatePostUri",
        "purgeHistoryDeleteUri",
    ] {
        assert!(
            links[key].as_str().is_some_and(|u| u.contains(id)),
            "{key} in {links}"
        );
    }
    provider.nth(nth_sms).await.code()
}

/// A wrong answer for `code`.
fn wrong(code: u32, k: u32) -> u32 {
    if code == 1000 + k { 9999 - k } else { 1000 + k }
}

fn kinds(history: &[Value]) -> Vec<&str> {
    history.iter().filter_map(|e| e["type"].as_str()).collect()
}

#[tokio::test]
async fn two_wrong_answers_then_the_right_one_verify() {
    let provider = SmsProvider::start().await;
    let weft = Weft::start(options(&provider));
    let code = start(&weft, &provider, "happy", 1).await;

    let sms = &provider.messages()[0];
    assert_eq!(sms.account, sms::ACCOUNT_SID);
    assert_eq!(sms.authorization.as_deref(), Some(sms::EXPECTED_AUTH));
    assert_eq!(sms.to, PHONE);
    assert_eq!(sms.from, sms::FROM);
    assert!((1000..=9999).contains(&code));

    weft.raise("happy", "SmsChallengeResponse", json!(wrong(code, 1)))
        .await;
    weft.raise("happy", "SmsChallengeResponse", json!(wrong(code, 2)))
        .await;
    weft.raise("happy", "SmsChallengeResponse", json!(code))
        .await;
    let status = weft.finished("happy").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], true);
    assert_eq!(status["input"], PHONE);
    assert_eq!(provider.messages().len(), 1);
    // The timer was still armed when the code matched: finishing disarmed it.
    assert_eq!(weft.query_i64("SELECT count(*) FROM timers"), 0);
}

#[tokio::test]
async fn four_wrong_answers_fail_the_verification() {
    let provider = SmsProvider::start().await;
    let weft = Weft::start(options(&provider));
    let code = start(&weft, &provider, "wrong", 1).await;
    for k in 1..=4 {
        weft.raise("wrong", "SmsChallengeResponse", json!(wrong(code, k)))
            .await;
    }
    let status = weft.finished("wrong").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], false);
    // A fifth answer finds the instance finished.
    let (s, body) = weft
        .request(
            reqwest::Method::POST,
            "/instances/wrong/raiseEvent/SmsChallengeResponse",
            Some(&json!(code)),
        )
        .await;
    assert_eq!(s, 410, "{body}");
    assert_eq!(body["error"]["code"], "instance_finished");
}

#[tokio::test]
async fn no_answer_within_90_seconds_fails_and_leaves_no_timer() {
    let provider = SmsProvider::start().await;
    let weft = Weft::start(options(&provider));
    let code = start(&weft, &provider, "silent", 1).await;
    weft.history_has("silent", "timer_created").await;
    assert_eq!(weft.query_i64("SELECT count(*) FROM timers"), 1);

    // Advancing fires every due timer before it answers: inside the window the timer is still
    // stored and nothing fired.
    weft.advance(89.0).await;
    assert_eq!(
        weft.query_i64("SELECT count(*) FROM timers WHERE instance_id = 'silent'"),
        1,
        "still inside the window"
    );
    assert_eq!(weft.stored_events("silent", "timer_fired"), 0);

    weft.advance(2.0).await;
    let status = weft.finished("silent").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], false);
    let history = status["historyEvents"].as_array().unwrap();
    assert!(kinds(history).contains(&"timer_fired"));
    assert_eq!(weft.query_i64("SELECT count(*) FROM timers"), 0);

    // The right code after the window is refused: the instance has ended.
    let (s, _) = weft
        .request(
            reqwest::Method::POST,
            "/instances/silent/raiseEvent/SmsChallengeResponse",
            Some(&json!(code)),
        )
        .await;
    assert_eq!(s, 410);
}

#[tokio::test]
async fn an_answer_raised_before_the_wait_is_not_lost() {
    // The provider holds its answer, so the activity is still running when the person answers.
    let provider = SmsProvider::gated().await;
    let weft = Weft::start(options(&provider));
    let code = start(&weft, &provider, "early", 1).await;
    weft.raise("early", "SmsChallengeResponse", json!(code))
        .await;
    provider.release();

    let status = weft.finished("early").await;
    assert_eq!(status["output"], true, "{status}");
    let history = status["historyEvents"].as_array().unwrap();
    let at = |kind: &str| history.iter().position(|e| e["type"] == kind).unwrap();
    assert!(
        at("event_raised") < at("event_wait_created"),
        "the event arrived before the orchestration waited: {:?}",
        kinds(history)
    );
}

#[tokio::test]
async fn a_killed_host_resumes_without_sending_the_sms_again() {
    let provider = SmsProvider::start().await;
    let mut weft = Weft::start(options(&provider));
    let code = start(&weft, &provider, "crash", 1).await;
    weft.history_has("crash", "timer_created").await;
    weft.raise("crash", "SmsChallengeResponse", json!(wrong(code, 1)))
        .await;
    weft.history_has("crash", "await_resolved").await;

    weft.restart(); // SIGKILL, then start again on the same database

    weft.raise("crash", "SmsChallengeResponse", json!(code))
        .await;
    let status = weft.finished("crash").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], true);
    assert_eq!(
        provider.messages().len(),
        1,
        "the SMS was sent exactly once"
    );
    assert!(
        weft.replays("crash") >= 1,
        "the restarted host replayed the instance"
    );
}

#[tokio::test]
async fn a_killed_host_still_times_out() {
    let provider = SmsProvider::start().await;
    let mut weft = Weft::start(options(&provider));
    start(&weft, &provider, "crash-timeout", 1).await;
    weft.history_has("crash-timeout", "timer_created").await;
    weft.restart();
    weft.advance(91.0).await;
    let status = weft.finished("crash-timeout").await;
    assert_eq!(status["output"], false, "{status}");
    assert_eq!(provider.messages().len(), 1);
}

#[tokio::test]
async fn terminating_a_waiting_instance_drops_its_timer() {
    let provider = SmsProvider::start().await;
    let weft = Weft::start(options(&provider));
    let code = start(&weft, &provider, "stop", 1).await;
    weft.history_has("stop", "timer_created").await;
    let (s, body) = weft
        .request(
            reqwest::Method::POST,
            "/instances/stop/terminate?reason=operator",
            None,
        )
        .await;
    assert_eq!(s, 202, "{body}");
    let status = weft.finished("stop").await;
    assert_eq!(status["runtimeStatus"], "Terminated", "{status}");
    assert_eq!(status["failure"]["message"], "operator");
    assert_eq!(status["failure"]["kind"], "terminated");
    assert_eq!(weft.query_i64("SELECT count(*) FROM timers"), 0);
    let (s, _) = weft
        .request(
            reqwest::Method::POST,
            "/instances/stop/raiseEvent/SmsChallengeResponse",
            Some(&json!(code)),
        )
        .await;
    assert_eq!(s, 410);
}

/// Runs the happy path with a given eviction policy; returns the history and the code.
async fn scenario(evict: bool) -> (Vec<Value>, u32, usize) {
    let provider = SmsProvider::start().await;
    let mut options = options(&provider);
    if evict {
        options = options.evict_always();
    }
    let weft = Weft::start(options);
    let code = start(&weft, &provider, "same", 1).await;
    weft.history_has("same", "timer_created").await;
    for (n, answer) in [wrong(code, 1), wrong(code, 2), code]
        .into_iter()
        .enumerate()
    {
        weft.raise("same", "SmsChallengeResponse", json!(answer))
            .await;
        // One step at a time, so both runs see the same arrivals in the same order.
        // (The first await took the activity's result.)
        weft.history_has_n("same", "await_resolved", n + 2).await;
    }
    let status = weft.finished("same").await;
    assert_eq!(status["output"], true, "{status}");
    (
        status["historyEvents"].as_array().unwrap().clone(),
        code,
        weft.replays("same"),
    )
}

#[tokio::test]
async fn evicted_instances_replay_to_the_same_history_as_hot_ones() {
    let (hot, hot_code, hot_replays) = scenario(false).await;
    let (cold, cold_code, cold_replays) = scenario(true).await;
    assert_eq!(hot_replays, 0, "kept hot: never replayed");
    assert!(
        cold_replays >= 3,
        "evicted at every wait: replayed {cold_replays} times"
    );
    let placeholders = |code: u32| [(json!(code), "CODE"), (json!(code.to_string()), "CODE")];
    let hot = normalized(&hot, &placeholders(hot_code));
    let cold = normalized(&cold, &placeholders(cold_code));
    assert_eq!(hot, cold);
}
