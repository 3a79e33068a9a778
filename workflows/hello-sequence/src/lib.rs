//! The classic first workflows: three activities in sequence, and a fan-out/fan-in.

use weft_sdk::{Context, Error};

/// Greets three cities one after another. Output: the three greetings.
fn hello_sequence(ctx: &Context, _input: serde_json::Value) -> Result<Vec<String>, Error> {
    let mut greetings = Vec::new();
    for city in ["Tokyo", "Seattle", "London"] {
        greetings.push(ctx.call_activity("say-hello", &city).get()?);
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

/// Waits for the event `go`; its payload is the output.
fn wait_for_event(ctx: &Context, _input: serde_json::Value) -> Result<serde_json::Value, Error> {
    ctx.wait_event("go").get()
}

/// Runs `count` activities in parallel, then waits for the event `go`: a long history that
/// ends waiting.
fn fan_out_then_wait(ctx: &Context, count: u64) -> Result<u64, Error> {
    let sum = fan_out(ctx, count)?;
    let _: serde_json::Value = ctx.wait_event("go").get()?;
    Ok(sum)
}

fn say_hello(name: String) -> Result<String, Error> {
    Ok(format!("Hello {name}!"))
}

fn square(n: u64) -> Result<u64, Error> {
    Ok(n * n)
}

weft_sdk::workflow! {
    orchestrations: {
        "hello-sequence" => hello_sequence,
        "fan-out" => fan_out,
        "wait-for-event" => wait_for_event,
        "fan-out-then-wait" => fan_out_then_wait,
    },
    activities: { "say-hello" => say_hello, "square" => square },
}
