//! A changed copy of the `drift` orchestration of `fixtures`: it schedules another activity
//! first, so replaying an old history against it must fail as nondeterministic.

use weft_sdk::{Context, Error};

fn drift(ctx: &Context, input: String) -> Result<String, Error> {
    let echoed: String = ctx.call_activity("shout", &input).get()?;
    let go: String = ctx.wait_event("go").get()?;
    Ok(format!("{echoed} {go}"))
}

fn shout(value: String) -> Result<String, Error> {
    Ok(value.to_uppercase())
}

weft_sdk::workflow! {
    orchestrations: { "drift" => drift },
    activities: { "shout" => shout },
}
