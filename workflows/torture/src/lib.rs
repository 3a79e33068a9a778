//! The workflows `tests/torture.rs` drives while it SIGKILLs the host: a phone-verification-like
//! orchestration answered with events, three activities in sequence, and a fan-out/fan-in.
//!
//! Every activity reports its side effect to an "effects" server (app setting `EffectsUrl`)
//! with the header `idempotency-key: {instance}/{position}` (and `incarnation: N` when the app
//! setting `EffectsIncarnation` is set), so the test can count how often each scheduled call
//! really ran, and in which host process.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use weft_sdk::http::Request;
use weft_sdk::{Context, Error};

/// How long the person has to answer. The test runs on a manual clock it never moves, so this
/// timer never fires: it is there to race the waits as phone verification does.
const WINDOW: Duration = Duration::from_secs(90);

/// An answer to a verification: the code, and a tag that makes each raise unique.
#[derive(Serialize, Deserialize)]
struct Answer {
    code: u32,
    #[serde(default)]
    raise: String,
}

/// Sends a code, then takes answers until one matches (or the window closes). Wrong answers
/// are not limited: a raise retried after a crash may be recorded twice, and must not use up
/// the tries. Output: whether the code was matched.
fn verify(ctx: &Context, phone: String) -> Result<bool, Error> {
    let code: u32 = ctx.call_activity("send-code", &phone).get()?;
    let deadline = ctx.timer(WINDOW);
    loop {
        let answer = ctx.wait_event::<Answer>("answer");
        if ctx.when_any(&[&answer, &deadline]) == 1 {
            return Ok(false);
        }
        if answer.get()?.code == code {
            return Ok(true);
        }
    }
}

/// Greets three cities one after another. Output: the three greetings.
fn sequence(ctx: &Context, _input: serde_json::Value) -> Result<Vec<String>, Error> {
    let mut greetings = Vec::new();
    for city in ["Tokyo", "Seattle", "London"] {
        greetings.push(ctx.call_activity("greet", &city).get()?);
    }
    Ok(greetings)
}

/// Input: how many activities to run at once. Output: the sum of their squares.
fn fan_out(ctx: &Context, count: u64) -> Result<u64, Error> {
    let tasks = (1..=count)
        .map(|i| ctx.call_activity::<u64>("square", &i))
        .collect();
    Ok(ctx.when_all(tasks)?.into_iter().sum())
}

/// FNV-1a, 64 bits: the test computes the same.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Reports this run of the activity to the effects server.
fn effect(activity: &str, detail: serde_json::Value) -> Result<(), Error> {
    let url = std::env::var("EffectsUrl")
        .map_err(|_| Error::with_kind("config", "EffectsUrl is not set"))?;
    let key = weft_sdk::activity::idempotency_key();
    let mut request = Request::post(url).header("idempotency-key", &key);
    // The test numbers each host process it starts: the hit then says which one ran it.
    if let Ok(incarnation) = std::env::var("EffectsIncarnation") {
        request = request.header("incarnation", &incarnation);
    }
    let response = request
        .json(&serde_json::json!({ "activity": activity, "detail": detail }))?
        .send()?;
    if !response.is_success() {
        return Err(Error::with_kind(
            "effects",
            format!("the effects server answered {}", response.status),
        ));
    }
    Ok(())
}

/// "Sends" a 4-digit code derived from the idempotency key, so every run of one scheduled
/// call sends the same code.
fn send_code(phone: String) -> Result<u32, Error> {
    let code = 1000 + (fnv1a(&weft_sdk::activity::idempotency_key()) % 9000) as u32;
    effect(
        "send-code",
        serde_json::json!({ "to": phone, "code": code }),
    )?;
    Ok(code)
}

fn greet(city: String) -> Result<String, Error> {
    effect("greet", serde_json::json!(city))?;
    Ok(format!("Hello {city}!"))
}

fn square(n: u64) -> Result<u64, Error> {
    effect("square", serde_json::json!(n))?;
    Ok(n * n)
}

weft_sdk::workflow! {
    orchestrations: {
        "verify" => verify,
        "sequence" => sequence,
        "fan-out" => fan_out,
    },
    activities: {
        "send-code" => send_code,
        "greet" => greet,
        "square" => square,
    },
}
