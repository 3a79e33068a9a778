//! A guest of each kind that calls the context of another kind, for the tests: each of those
//! calls must fail, saying whose context it is.

use weft_sdk::{Context, Entity, Error};

/// Calls into the context of another guest kind, from the kind `input` names: `orchestration`
/// (asks for its attempt), `activity` (which asks for the instance id) or `entity` (whose
/// operation asks for its attempt).
fn wrong_context(ctx: &Context, input: String) -> Result<serde_json::Value, Error> {
    match input.as_str() {
        "orchestration" => Ok(weft_sdk::activity::attempt().into()),
        "activity" => {
            let once = weft_sdk::RetryPolicy {
                max_attempts: 1,
                ..weft_sdk::RetryPolicy::default()
            };
            ctx.call_activity_with_retry("wrong-context", &(), &once)
                .get()
        }
        _ => ctx.call_entity("wrong-context", "k", "attempt", &()).get(),
    }
}

/// An activity that calls `orchestration-context`.
fn wrong_context_activity(_input: serde_json::Value) -> Result<String, Error> {
    Ok(weft_sdk::bindings::weft::workflow::orchestration_context::instance_id())
}

/// An entity whose operations call `activity-context`.
fn wrong_context_entity(_entity: &mut Entity<u32>) -> Result<u32, Error> {
    Ok(weft_sdk::activity::attempt())
}

weft_sdk::workflow! {
    orchestrations: { "wrong-context" => wrong_context },
    activities: { "wrong-context" => wrong_context_activity },
    entities: { "wrong-context" => wrong_context_entity },
}
