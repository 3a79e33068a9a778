//! Changed copies of orchestrations of `fixtures`. `drift` schedules another activity first, so
//! replaying an old history against it must fail as nondeterministic; `wait-for-go` makes the
//! same calls and only shapes its output differently, so old histories replay on it.

use weft_sdk::{Context, Error};

fn drift(ctx: &Context, input: String) -> Result<String, Error> {
    let echoed: String = ctx.call_activity("shout", &input).get()?;
    let go: String = ctx.wait_event("go").get()?;
    Ok(format!("{echoed} {go}"))
}

fn wait_for_go(ctx: &Context, _input: serde_json::Value) -> Result<serde_json::Value, Error> {
    let go: serde_json::Value = ctx.wait_event("go").get()?;
    Ok(serde_json::json!({ "upgraded": go }))
}

fn shout(value: String) -> Result<String, Error> {
    Ok(value.to_uppercase())
}

weft_sdk::workflow! {
    orchestrations: { "drift" => drift, "wait-for-go" => wait_for_go },
    activities: { "shout" => shout },
}
