//! The second seed end to end: an orchestration hands a long-running job service a signed
//! callback URL, waits for the callback with a per-attempt timeout, retries up to a limit, and
//! records each attempt in an `attempts` entity watched over HTTP. Real host, real SQLite
//! file, a fake job service on loopback, time moved by the manual clock.

mod common;

use common::jobs::{JobService, Plan};
use common::{Options, Weft};
use serde_json::{Value, json};

fn input(jobs: &JobService, timeout_seconds: u64, retry_limit: u32) -> Value {
    json!({
        "jobUrl": jobs.url,
        "payload": { "cluster": "blue", "notebook": "/jobs/nightly" },
        "timeoutSeconds": timeout_seconds,
        "retryLimit": retry_limit,
    })
}

/// The `attempts` entity of instance `id` once every operation sent to it has been applied
/// and it holds `n` attempts.
async fn attempts(weft: &Weft, id: &str, n: usize) -> Value {
    weft.eventually(
        &format!("the attempts entity of {id} holds {n}"),
        async || {
            let (status, body) = weft
                .request(
                    reqwest::Method::GET,
                    &format!("/entities/attempts/{id}"),
                    None,
                )
                .await;
            let settled = status == 200
                && body["pendingOperations"] == 0
                && body["state"]["attempts"].as_object().map(|a| a.len()) == Some(n);
            settled.then_some(body)
        },
    )
    .await
}

/// The attempts, in the order they started.
fn entries(entity: &Value) -> Vec<Value> {
    entity["state"]["attempts"]
        .as_object()
        .expect("attempts by id")
        .values()
        .cloned()
        .collect()
}

fn count(history: &[Value], kind: &str) -> usize {
    history.iter().filter(|e| e["type"] == kind).count()
}

fn history(status: &Value) -> Vec<Value> {
    status["historyEvents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_timed_out_attempt_is_retried_and_the_second_succeeds() {
    let jobs = JobService::start(&[Plan::Silent, Plan::CallBack { success: true }]).await;
    let weft = Weft::start(Options::new(&["retry-callback"]));
    weft.start_instance("retry-callback", "rc", input(&jobs, 60, 3))
        .await;
    let first = jobs.nth(1).await;
    weft.history_has("rc", "timer_created").await;

    // While it waits, an operator sees the attempt executing.
    let running = attempts(&weft, "rc", 1).await;
    let entry = &entries(&running)[0];
    assert_eq!(entry["state"], "Executing", "{running}");
    assert_eq!(entry["id"], first.attempt_id.as_str());
    assert_eq!(entry["started"], "2026-01-01T00:00:00.000Z");
    assert_eq!(entry["timeoutDue"], "2026-01-01T00:01:00.000Z");

    weft.advance(61.0).await;
    let status = weft.finished("rc").await;
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["output"], json!({ "success": true, "attempts": 2 }));

    let second = jobs.nth(2).await;
    assert_eq!(jobs.received().len(), 2, "one POST per attempt");
    assert_eq!(jobs.callback_statuses(), vec![202]);
    assert_ne!(first.attempt_id, second.attempt_id);
    for job in [&first, &second] {
        assert_eq!(job.payload["notebook"], "/jobs/nightly");
        assert!(
            job.callback_url
                .starts_with(&format!("{}/callbacks/rc/JobCallback?", weft.url)),
            "{}",
            job.callback_url
        );
        assert!(
            job.idempotency_key
                .as_deref()
                .is_some_and(|k| k.starts_with("rc/"))
        );
    }
    assert_ne!(first.idempotency_key, second.idempotency_key);

    let entity = attempts(&weft, "rc", 2).await;
    let [timed_out, succeeded] = entries(&entity).try_into().expect("two attempts");
    assert_eq!(timed_out["id"], first.attempt_id.as_str());
    assert_eq!(timed_out["state"], "TimedOut");
    assert_eq!(
        timed_out["message"],
        "Event Callback not received in 00:01:00"
    );
    assert_eq!(timed_out["isSuccess"], false);
    assert_eq!(timed_out["stateSet"], "2026-01-01T00:01:01.000Z");
    assert_eq!(succeeded["id"], second.attempt_id.as_str());
    assert_eq!(succeeded["state"], "CallbackSuccess");
    assert_eq!(succeeded["isSuccess"], true);
    assert_eq!(succeeded["started"], "2026-01-01T00:01:01.000Z");
    assert_eq!(succeeded["timeoutDue"], "2026-01-01T00:02:01.000Z");
    assert_eq!(
        succeeded["message"],
        "External system called back with CallbackSuccess: job done"
    );
    assert_eq!(
        entity["state"]["overallState"],
        "Completed API request after 2 attempts. Final state CallbackSuccess, status text: External system called back with CallbackSuccess: job done"
    );

    // The operation log says what happened, in order, and who sent it.
    let (code, log) = weft
        .request(reqwest::Method::GET, "/entities/attempts/rc/history", None)
        .await;
    assert_eq!(code, 200, "{log}");
    let ops: Vec<&str> = log["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert_eq!(o["source"], "rc");
            assert!(
                o["time"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("2026-01-01T"))
            );
            o["operation"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        ops,
        [
            "add-attempt",
            "set-state",
            "add-attempt",
            "set-state",
            "set-overall-state"
        ]
    );
}

#[tokio::test]
async fn every_attempt_times_out_and_a_late_callback_is_recorded_not_taken() {
    let jobs = JobService::start(&[Plan::Silent, Plan::Silent, Plan::Silent]).await;
    let weft = Weft::start(Options::new(&["retry-callback"]));
    weft.start_instance("retry-callback", "late", input(&jobs, 30, 3))
        .await;
    jobs.nth(1).await;
    weft.history_has("late", "timer_created").await;
    weft.advance(31.0).await;
    jobs.nth(2).await;
    weft.history_has_n("late", "timer_created", 2).await;

    // Attempt 1's callback arrives during attempt 2: recorded in attempt 1's entry only.
    assert_eq!(jobs.call_back(1, true, "finished late").await, 202);
    let entity = weft
        .eventually("the late callback is recorded", async || {
            let e = attempts(&weft, "late", 2).await;
            entries(&e)[0]["lateCallback"].is_object().then_some(e)
        })
        .await;
    let [first, second] = entries(&entity).try_into().expect("two attempts");
    assert_eq!(first["state"], "TimedOut");
    assert_eq!(first["lateCallback"]["success"], true);
    assert_eq!(first["lateCallback"]["message"], "finished late");
    assert_eq!(
        second["state"], "Executing",
        "the late callback did not end attempt 2"
    );
    assert_eq!(weft.status("late").await["runtimeStatus"], "Running");

    // A forged signature is refused, and so is attempt 2's URL moved to another event.
    let url = jobs.received()[1].callback_url.clone();
    let (base, sig) = url.split_once("&sig=").expect("a signature");
    let mut forged = sig.to_string();
    let last = if forged.ends_with('0') { "1" } else { "0" };
    forged.replace_range(forged.len() - 1.., last);
    let attempt = jobs.received()[1].attempt_id.clone();
    let forged_url = format!("{base}&sig={forged}");
    assert_eq!(
        common::jobs::call_back(&forged_url, &attempt, true, "").await,
        403
    );
    let moved = url.replace("/JobCallback?", "/OtherEvent?");
    assert_eq!(
        common::jobs::call_back(&moved, &attempt, true, "").await,
        403
    );

    weft.advance(31.0).await;
    jobs.nth(3).await;
    weft.history_has_n("late", "timer_created", 4).await;
    weft.advance(31.0).await;
    let status = weft.finished("late").await;
    assert_eq!(status["output"], json!({ "success": false, "attempts": 3 }));
    assert_eq!(jobs.received().len(), 3);

    let entity = attempts(&weft, "late", 3).await;
    assert!(
        entries(&entity)
            .iter()
            .all(|a| a["state"] == "TimedOut" && a["isSuccess"] == false),
        "{entity}"
    );
    assert_eq!(
        entity["state"]["overallState"],
        "Completed API request after 3 attempts. Final state TimedOut, status text: Event Callback not received in 00:00:30"
    );
    // The instance has ended: its callback URLs answer 410.
    assert_eq!(jobs.call_back(3, true, "too late").await, 410);
}

#[tokio::test]
async fn a_busy_job_service_is_retried_with_growing_delays() {
    let jobs = JobService::start(&[
        Plan::Refuse(503),
        Plan::Refuse(503),
        Plan::CallBack { success: true },
    ])
    .await;
    let weft = Weft::start(Options::new(&["retry-callback"]));
    weft.start_instance("retry-callback", "busy", input(&jobs, 60, 2))
        .await;
    weft.history_has("busy", "activity_attempt_failed").await;
    weft.advance(2.0).await;
    weft.history_has_n("busy", "activity_attempt_failed", 2)
        .await;
    weft.advance(4.0).await;
    let status = weft.finished("busy").await;
    assert_eq!(status["output"], json!({ "success": true, "attempts": 1 }));

    let failed: Vec<Value> = history(&status)
        .into_iter()
        .filter(|e| e["type"] == "activity_attempt_failed")
        .collect();
    const T0: u64 = 1_767_225_600_000;
    assert_eq!(failed[0]["retry_at"], T0 + 2_000);
    assert_eq!(
        failed[1]["retry_at"],
        T0 + 2_000 + 4_000,
        "the delay doubled"
    );
    assert_eq!(
        failed[0]["error"],
        "unavailable: the job service answered 503"
    );

    let posts = jobs.received();
    assert_eq!(
        posts.iter().map(|p| p.status).collect::<Vec<_>>(),
        [503, 503, 202]
    );
    assert!(
        posts.iter().all(|p| p.attempt_id == posts[0].attempt_id
            && p.idempotency_key == posts[0].idempotency_key),
        "one attempt, three tries to start it"
    );
}

#[tokio::test]
async fn a_rejected_job_fails_its_attempt_at_once() {
    let jobs = JobService::start(&[Plan::Refuse(400), Plan::CallBack { success: true }]).await;
    let weft = Weft::start(Options::new(&["retry-callback"]));
    weft.start_instance("retry-callback", "rej", input(&jobs, 60, 2))
        .await;
    let status = weft.finished("rej").await;
    assert_eq!(status["output"], json!({ "success": true, "attempts": 2 }));
    let h = history(&status);
    assert_eq!(count(&h, "activity_attempt_failed"), 0, "not retried");
    assert_eq!(count(&h, "activity_failed"), 1);
    let entity = attempts(&weft, "rej", 2).await;
    let [rejected, ok] = entries(&entity).try_into().expect("two attempts");
    assert_eq!(rejected["state"], "Error");
    assert_eq!(
        rejected["message"],
        "The job could not be started: rejected: the job service answered 400: "
    );
    assert_eq!(ok["state"], "CallbackSuccess");
}

#[tokio::test]
async fn a_failure_callback_is_retried_and_a_second_callback_is_ignored() {
    let jobs = JobService::start(&[Plan::CallBack { success: false }, Plan::Twice]).await;
    let weft = Weft::start(Options::new(&["retry-callback"]));
    weft.start_instance("retry-callback", "twice", input(&jobs, 60, 3))
        .await;
    let status = weft.finished("twice").await;
    assert_eq!(status["output"], json!({ "success": true, "attempts": 2 }));
    let entity = attempts(&weft, "twice", 2).await;
    let [failed, ok] = entries(&entity).try_into().expect("two attempts");
    assert_eq!(failed["state"], "CallbackFailure");
    assert_eq!(ok["state"], "CallbackSuccess");
    // The second callback of attempt 2 found the instance waiting no more: taken by nobody
    // (202 while it still ran) or refused as ended (410); never a third attempt.
    weft.eventually("both callbacks of attempt 2 are answered", async || {
        (jobs.callback_statuses().len() == 3).then_some(())
    })
    .await;
    let statuses = jobs.callback_statuses();
    assert!(matches!(statuses[2], 202 | 410), "{statuses:?}");
    assert_eq!(jobs.received().len(), 2);
}

#[tokio::test]
async fn a_killed_host_resumes_the_wait_and_takes_the_callback() {
    let jobs = JobService::start(&[Plan::Silent, Plan::Silent]).await;
    let mut weft = Weft::start(Options::new(&["retry-callback"]));
    weft.start_instance("retry-callback", "crash", input(&jobs, 60, 3))
        .await;
    jobs.nth(1).await;
    weft.history_has("crash", "timer_created").await;
    weft.advance(61.0).await;
    jobs.nth(2).await;
    weft.history_has_n("crash", "timer_created", 2).await;

    weft.kill();
    weft.restart();
    assert_eq!(jobs.call_back(2, true, "after the crash").await, 202);
    let status = weft.finished("crash").await;
    assert_eq!(status["output"], json!({ "success": true, "attempts": 2 }));

    // Each recorded attempt's job was POSTed once: the restart started none again.
    let h = history(&status);
    assert_eq!(count(&h, "activity_completed"), 2);
    let posts = jobs.received();
    assert_eq!(posts.len(), 2, "{posts:?}");
    let entity = attempts(&weft, "crash", 2).await;
    let ids: Vec<Value> = entries(&entity).iter().map(|a| a["id"].clone()).collect();
    assert_eq!(
        ids,
        posts
            .iter()
            .map(|p| json!(p.attempt_id))
            .collect::<Vec<_>>()
    );
    assert_eq!(entries(&entity)[1]["state"], "CallbackSuccess");
}
