//! Calling a long-running external system: the orchestration hands a job service a signed
//! callback URL, waits for the callback with a per-attempt timeout, and tries again up to a
//! limit. Every attempt is recorded in an `attempts` entity (keyed by the instance id) that an
//! operator can watch over HTTP while the orchestration runs.

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};
use std::time::{Duration, UNIX_EPOCH};
use weft_sdk::http::Request;
use weft_sdk::{Context, Entity, Error, RetryPolicy};

/// The orchestration's input.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    /// Where the job service takes jobs (an HTTP POST).
    job_url: String,
    /// Passed to the job service as it is.
    #[serde(default)]
    payload: Value,
    /// How long each attempt waits for its callback.
    timeout_seconds: u64,
    /// How many attempts at most.
    retry_limit: u32,
}

/// What the job service POSTs to the callback URL.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Callback {
    attempt_id: String,
    success: bool,
    #[serde(default)]
    message: String,
}

/// The orchestration's output.
#[derive(Serialize)]
struct Outcome {
    success: bool,
    attempts: u32,
}

/// How an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum AttemptState {
    Executing,
    TimedOut,
    CallbackSuccess,
    CallbackFailure,
    Error,
}

/// What `start-job` sends: the job service's URL and the body it POSTs there.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartJob {
    job_url: String,
    attempt_id: String,
    callback_url: String,
    payload: Value,
}

const ENTITY: &str = "attempts";
const EVENT: &str = "JobCallback";

/// Retries for starting a job: a busy job service (5xx, 429, unreachable) is tried again after
/// 2, 4, 8 s; a job service that rejects the job (other 4xx) is not.
fn start_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        first_interval: Duration::from_secs(2),
        backoff_coefficient: 2.0,
        max_interval: Duration::from_secs(30),
        non_retryable: vec!["rejected".into()],
    }
}

fn retry_callback(ctx: &Context, job: Job) -> Result<Outcome, Error> {
    let key = ctx.instance_id();
    let timeout = Duration::from_secs(job.timeout_seconds);
    // A callback URL outlives the whole run, so a late callback is still taken and recorded.
    let ttl = timeout * (job.retry_limit + 1) + Duration::from_secs(3600);
    let mut last = (AttemptState::Error, String::from("no attempt was made"));
    let mut attempts = 0;
    while attempts < job.retry_limit {
        attempts += 1;
        let attempt_id = ctx.new_guid();
        let started = ctx.now_ms();
        let due = started + timeout.as_millis() as u64;
        ctx.signal_entity(
            ENTITY,
            &key,
            "add-attempt",
            &json!({ "id": attempt_id, "started": time(started), "timeoutDue": time(due) }),
        );
        let request = StartJob {
            job_url: job.job_url.clone(),
            attempt_id: attempt_id.clone(),
            callback_url: ctx.callback_url(EVENT, ttl),
            payload: job.payload.clone(),
        };
        let started_job = ctx
            .call_activity_with_retry::<()>("start-job", &request, &start_policy())
            .get();
        let (state, message) = match started_job {
            Err(e) => (
                AttemptState::Error,
                format!("The job could not be started: {e}"),
            ),
            Ok(()) => wait_for_callback(ctx, &key, &attempt_id, due, timeout),
        };
        ctx.signal_entity(
            ENTITY,
            &key,
            "set-state",
            &json!({
                "id": attempt_id,
                "state": state,
                "message": message,
                "stateSet": time(ctx.now_ms()),
            }),
        );
        last = (state, message);
        if state == AttemptState::CallbackSuccess {
            break;
        }
    }
    let (state, message) = last;
    let overall = format!(
        "Completed API request after {attempts} attempts. Final state {state:?}, status text: {message}"
    );
    ctx.signal_entity(ENTITY, &key, "set-overall-state", &overall);
    Ok(Outcome {
        success: state == AttemptState::CallbackSuccess,
        attempts,
    })
}

/// Waits until `due` for the callback of attempt `attempt_id`. Callbacks for earlier attempts
/// are recorded in their own entries and do not end this one's wait.
fn wait_for_callback(
    ctx: &Context,
    key: &str,
    attempt_id: &str,
    due: u64,
    timeout: Duration,
) -> (AttemptState, String) {
    loop {
        let left = Duration::from_millis(due.saturating_sub(ctx.now_ms()));
        let payload = match ctx.wait_event_timeout::<Value>(EVENT, left) {
            Ok(Some(payload)) => payload,
            Ok(None) | Err(_) => {
                return (
                    AttemptState::TimedOut,
                    format!("Event Callback not received in {}", hms(timeout)),
                );
            }
        };
        let callback: Callback = match serde_json::from_value(payload.clone()) {
            Ok(c) => c,
            Err(e) => {
                ctx.log(format_args!("ignoring a malformed callback {payload}: {e}"));
                continue;
            }
        };
        if callback.attempt_id != attempt_id {
            ctx.signal_entity(
                ENTITY,
                key,
                "late-callback",
                &json!({
                    "id": callback.attempt_id,
                    "success": callback.success,
                    "message": callback.message,
                    "receivedAt": time(ctx.now_ms()),
                }),
            );
            continue;
        }
        let state = if callback.success {
            AttemptState::CallbackSuccess
        } else {
            AttemptState::CallbackFailure
        };
        let mut message = format!("External system called back with {state:?}");
        if !callback.message.is_empty() {
            message = format!("{message}: {}", callback.message);
        }
        return (state, message);
    }
}

/// POSTs `{attemptId, callbackUrl, payload}` to the job service, with the call's idempotency
/// key so the service can tell a re-run from a new job.
fn start_job(request: StartJob) -> Result<(), Error> {
    let body = json!({
        "attemptId": request.attempt_id,
        "callbackUrl": request.callback_url,
        "payload": request.payload,
    });
    let response = Request::post(&request.job_url)
        .header("idempotency-key", &weft_sdk::activity::idempotency_key())
        .json(&body)?
        .send()
        .map_err(|e| Error::with_kind("unreachable", e))?;
    match response.status {
        200..=299 => Ok(()),
        429 | 500..=599 => Err(Error::with_kind(
            "unavailable",
            format!("the job service answered {}", response.status),
        )),
        status => Err(Error::with_kind(
            "rejected",
            format!("the job service answered {status}: {}", response.text()),
        )),
    }
}

/// One attempt, as the entity shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attempt {
    id: String,
    started: String,
    state_set: String,
    timeout_due: String,
    state: AttemptState,
    message: String,
    is_success: bool,
    /// A callback that came after this attempt had ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    late_callback: Option<Value>,
}

/// The `attempts` entity's state: every attempt by id, in the order they started, and a
/// sentence on how the whole run ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attempts {
    #[serde(serialize_with = "by_id", deserialize_with = "in_order")]
    attempts: Vec<Attempt>,
    #[serde(default)]
    overall_state: String,
}

/// Operations: `add-attempt`, `set-state`, `late-callback`, `set-overall-state` (each answers
/// nothing), and `get` (answers the state).
fn attempts(entity: &mut Entity<Attempts>) -> Result<Option<Attempts>, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct StateSet {
        id: String,
        state: AttemptState,
        message: String,
        state_set: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Added {
        id: String,
        started: String,
        timeout_due: String,
    }
    match entity.operation() {
        "add-attempt" => {
            let a: Added = entity.input()?;
            entity.state_mut().attempts.push(Attempt {
                id: a.id,
                state_set: a.started.clone(),
                started: a.started,
                timeout_due: a.timeout_due,
                state: AttemptState::Executing,
                message: String::new(),
                is_success: false,
                late_callback: None,
            });
        }
        "set-state" => {
            let s: StateSet = entity.input()?;
            let attempt = find(entity.state_mut(), &s.id)?;
            attempt.state = s.state;
            attempt.message = s.message;
            attempt.state_set = s.state_set;
            attempt.is_success = s.state == AttemptState::CallbackSuccess;
        }
        "late-callback" => {
            let mut callback: Value = entity.input()?;
            let id = callback["id"].as_str().unwrap_or_default().to_string();
            if let Some(c) = callback.as_object_mut() {
                c.remove("id");
            }
            find(entity.state_mut(), &id)?.late_callback = Some(callback);
        }
        "set-overall-state" => entity.state_mut().overall_state = entity.input()?,
        "get" => return Ok(entity.state().cloned()),
        _ => return Err(entity.unknown_operation()),
    }
    Ok(None)
}

fn find<'a>(state: &'a mut Attempts, id: &str) -> Result<&'a mut Attempt, Error> {
    state
        .attempts
        .iter_mut()
        .find(|a| a.id == id)
        .ok_or_else(|| Error::with_kind("unknown_attempt", format!("no attempt {id}")))
}

fn by_id<S: Serializer>(attempts: &[Attempt], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(attempts.iter().map(|a| (&a.id, a)))
}

fn in_order<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Attempt>, D::Error> {
    struct InOrder;
    impl<'de> Visitor<'de> for InOrder {
        type Value = Vec<Attempt>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of attempts by id")
        }
        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
            let mut v = Vec::new();
            while let Some((_, a)) = map.next_entry::<String, Attempt>()? {
                v.push(a);
            }
            Ok(v)
        }
    }
    d.deserialize_map(InOrder)
}

/// RFC 3339, to the millisecond.
fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `hh:mm:ss`, as the attempt messages show a timeout.
fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

weft_sdk::workflow! {
    orchestrations: { "retry-callback" => retry_callback },
    activities: { "start-job" => start_job },
    entities: { "attempts" => attempts },
}
