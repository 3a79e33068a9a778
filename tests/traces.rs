//! Traces through OpenTelemetry: weft exports OTLP/HTTP to a small collector of the test's own
//! (`common::otlp`), configured only by the standard `OTEL_*` variables. One trace per
//! instance, under the start request's `traceparent`; kept in the history, so the spans of a
//! life after a SIGKILL join the same trace; an activity's outbound HTTP carries the context.

mod common;

use common::jobs::{JobService, Plan};
use common::otlp::{Collector, Span};
use common::{Options, Weft};
use serde_json::{Value, json};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// The `trace` of the instance's `started` event, as its history shows it.
async fn started_trace(weft: &Weft, id: &str) -> String {
    let started = weft.history_has(id, "started").await;
    started[0]["trace"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace in {}", started[0]))
        .to_string()
}

/// Starts `name` as `id`, sending `traceparent` if given.
async fn start(weft: &Weft, name: &str, id: &str, input: &Value, traceparent: Option<&str>) {
    let mut req = weft
        .http
        .post(format!(
            "{}/orchestrations/{name}?instanceId={id}",
            weft.url
        ))
        .json(input);
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let resp = req.send().await.expect("start");
    assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
}

#[tokio::test]
async fn an_instance_is_one_trace_across_a_kill_and_the_job_service_joins_it() {
    let collector = Collector::start().await;
    let jobs = JobService::start(&[Plan::Silent, Plan::Silent]).await;
    let mut weft = Weft::start(
        Options::new(&["retry-callback"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50"),
    );
    let input = json!({
        "jobUrl": jobs.url,
        "payload": { "notebook": "/jobs/nightly" },
        "timeoutSeconds": 60,
        "retryLimit": 3,
    });
    let caller = format!("00-{TRACE}-{CALLER}-01");
    start(&weft, "retry-callback", "crash", &input, Some(&caller)).await;
    // The first attempt's job is never answered: its timeout fires, a second attempt starts.
    jobs.nth(1).await;
    weft.history_has("crash", "timer_created").await;
    weft.advance(61.0).await;
    jobs.nth(2).await;
    weft.history_has_n("crash", "timer_created", 2).await;
    let first_life = collector
        .until("the spans of the first life", |s| {
            named(s, "start retry-callback").len() == 1
                && named(s, "activity start-job").len() == 2
                && named(s, "timer").len() == 1
        })
        .await;
    // The trace context is durable: the history holds it.
    let kept = started_trace(&weft, "crash").await;
    assert!(kept.starts_with(&format!("00-{TRACE}-")), "{kept}");

    weft.kill();
    weft.restart();
    assert_eq!(jobs.call_back(2, true, "after the crash").await, 202);
    let status = weft.finished("crash").await;
    assert_eq!(status["output"], json!({ "success": true, "attempts": 2 }));
    let spans = collector
        .until("the spans of the life after the kill", |s| {
            named(s, "event JobCallback").len() == 1
                && named(s, "activation retry-callback")
                    .iter()
                    .any(|a| a.attr("weft.replayed_calls") != Some("0"))
        })
        .await;
    assert!(spans.len() > first_life.len());

    // One trace, the caller's, from both lives.
    for s in &spans {
        assert_eq!(s.trace_id, TRACE, "{s:?}");
        assert_eq!(s.service, "weft", "{s:?}");
    }
    assert!(
        collector
            .content_types()
            .iter()
            .all(|c| c == "application/x-protobuf"),
        "http/protobuf by default: {:?}",
        collector.content_types()
    );
    let [root] = named(&spans, "start retry-callback")[..] else {
        panic!("one start span: {spans:#?}")
    };
    assert_eq!(
        root.parent_id, CALLER,
        "the start request's span is its parent"
    );
    assert_eq!(root.kind, 2, "a server span");
    assert_eq!(root.attr("weft.instance_id"), Some("crash"));
    assert_eq!(root.attr("weft.orchestration"), Some("retry-callback"));
    assert_eq!(kept, format!("00-{TRACE}-{}-01", root.span_id));

    // Each activity attempt is a span under the instance, and the job service was called with
    // that span as the parent of its work.
    let attempts = named(&spans, "activity start-job");
    let received = jobs.received();
    assert_eq!(received.len(), 2);
    for (job, attempt) in received.iter().zip(&attempts) {
        assert_eq!(attempt.parent_id, root.span_id);
        assert_eq!(attempt.attr("weft.instance_id"), Some("crash"));
        assert_eq!(attempt.attr("weft.activity"), Some("start-job"));
        assert_eq!(attempt.attr("weft.orchestration"), Some("retry-callback"));
        assert_eq!(attempt.attr("weft.attempt"), Some("1"));
        let tp = job
            .traceparent
            .as_deref()
            .expect("the job POST carries traceparent");
        assert!(
            attempts
                .iter()
                .any(|a| tp == format!("00-{TRACE}-{}-01", a.span_id)),
            "{tp} is one of the attempts' spans"
        );
    }
    assert_ne!(received[0].traceparent, received[1].traceparent);

    // The timeout's wait, from the timer's creation to its firing (61 s of the manual clock).
    let [timer] = named(&spans, "timer")[..] else {
        panic!("one timer span")
    };
    assert_eq!(timer.attr("weft.instance_id"), Some("crash"));
    assert!(timer.attr("weft.fire_at").is_some());
    let waited = timer.end_unix_nano - timer.start_unix_nano;
    assert!(waited >= 60_000_000_000, "the wait lasted {waited} ns");

    // After the kill: an activation that replayed the recorded calls, under the instance's
    // span, and the callback's delivery under it.
    let resumed: Vec<&Span> = named(&spans, "activation retry-callback")
        .into_iter()
        .filter(|a| a.attr("weft.replayed_calls") != Some("0"))
        .collect();
    let [resumed] = resumed[..] else {
        panic!("one resumed activation: {resumed:#?}")
    };
    assert_eq!(resumed.parent_id, root.span_id);
    assert_eq!(resumed.attr("weft.instance_id"), Some("crash"));
    let [event] = named(&spans, "event JobCallback")[..] else {
        panic!("one event span")
    };
    assert_eq!(event.parent_id, resumed.span_id);
    assert_eq!(event.attr("weft.event"), Some("JobCallback"));
    assert_eq!(event.attr("weft.orchestration"), Some("retry-callback"));
}

#[tokio::test]
async fn children_join_their_parents_trace_over_http_json() {
    let collector = Collector::start().await;
    let weft = Weft::start(
        Options::new(&["fixtures", "hello-sequence"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
            .env("OTEL_SERVICE_NAME", "weft-ops")
            .env("OTEL_BSP_SCHEDULE_DELAY", "50"),
    );
    start(&weft, "parent", "parent", &json!(null), None).await;
    weft.history_has("the-child", "event_wait_created").await;
    weft.raise("the-child", "go", json!("now")).await;
    assert_eq!(weft.finished("parent").await["runtimeStatus"], "Completed");
    // A traceparent that is not one is ignored: the instance gets a trace of its own.
    start(
        &weft,
        "hello-sequence",
        "seq",
        &json!(null),
        Some("00-nonsense-01"),
    )
    .await;
    assert_eq!(weft.finished("seq").await["runtimeStatus"], "Completed");

    let spans = collector
        .until("the spans of the parent, its children and seq", |s| {
            ["parent", "parent:0", "parent:1", "the-child", "seq"]
                .iter()
                .all(|id| {
                    s.iter().any(|x| {
                        x.name.starts_with("activation ") && x.attr("weft.instance_id") == Some(id)
                    })
                })
                && named(s, "activity say-hello").len() == 3
        })
        .await;
    assert!(
        collector
            .content_types()
            .iter()
            .all(|c| c == "application/json"),
        "{:?}",
        collector.content_types()
    );
    assert!(spans.iter().all(|s| s.service == "weft-ops"));
    let [root] = named(&spans, "start parent")[..] else {
        panic!("one start span for parent")
    };
    assert_eq!(
        root.parent_id, "",
        "with no traceparent the instance's trace is its own"
    );
    let parent_activations: Vec<&str> = named(&spans, "activation parent")
        .iter()
        .map(|a| {
            assert_eq!(a.parent_id, root.span_id);
            a.span_id.as_str()
        })
        .collect();
    for child in ["parent:0", "parent:1", "the-child"] {
        let activation = spans
            .iter()
            .find(|s| {
                s.name.starts_with("activation ") && s.attr("weft.instance_id") == Some(child)
            })
            .unwrap();
        assert_eq!(
            activation.trace_id, root.trace_id,
            "{child} is in its parent's trace"
        );
        // Its start is in the history under the parent's activation.
        let kept = started_trace(&weft, child).await;
        let under = kept.split('-').nth(2).unwrap();
        assert!(parent_activations.contains(&under), "{child}: {kept}");
        assert_eq!(activation.parent_id, under);
    }
    let [seq_root] = named(&spans, "start hello-sequence")[..] else {
        panic!("one start span for seq")
    };
    assert_eq!(seq_root.parent_id, "");
    assert_ne!(
        seq_root.trace_id, root.trace_id,
        "another instance, another trace"
    );
    for hello in named(&spans, "activity say-hello") {
        assert_eq!(hello.trace_id, seq_root.trace_id);
        assert_eq!(hello.parent_id, seq_root.span_id);
    }
}
