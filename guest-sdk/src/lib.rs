//! `weft-sdk`: write weft orchestrations and activities in plain Rust.
//!
//! An orchestration is a function `fn(&Context, Input) -> Result<Output, Error>`; an activity is
//! a function `fn(Input) -> Result<Output, Error>`. Inputs and outputs are any serde types. The
//! [`workflow!`] macro exports them from the component:
//!
//! ```ignore
//! use weft_sdk::{Context, Error};
//!
//! fn greet(ctx: &Context, name: String) -> Result<String, Error> {
//!     ctx.call_activity::<String>("say-hello", &name).get()
//! }
//! fn say_hello(name: String) -> Result<String, Error> {
//!     Ok(format!("Hello {name}!"))
//! }
//! weft_sdk::workflow! {
//!     orchestrations: { "greet" => greet },
//!     activities: { "say-hello" => say_hello },
//! }
//! ```
//!
//! An entity is a function `fn(&mut Entity<State>) -> Result<Output, Error>` that applies one
//! operation to a keyed, durable state; export it under `entities: { "name" => f }`.
//!
//! Orchestrations must be deterministic: they see time, GUIDs and randomness only through the
//! [`Context`], and wait only through [`Task`]s. Activities do the real work.

mod context;
mod entity;
pub mod http;

pub use context::{AnyTask, Context, RetryPolicy, Task};
pub use entity::Entity;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "workflow",
        pub_export_macro: true,
        export_macro_name: "export_workflow",
        default_bindings_module: "weft_sdk::bindings",
    });
}

use std::fmt;

/// An orchestration's or activity's error: a message, optionally led by a kind
/// (`"kind: message"`), which retry policies use to tell errors apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// An error of a kind, shown as `kind: message`.
    pub fn with_kind(kind: &str, message: impl fmt::Display) -> Self {
        Self {
            message: format!("{kind}: {message}"),
        }
    }

    /// The whole message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        Self::new(e.to_string())
    }
}

/// Exports orchestrations, activities and (optionally) entities from this component, by name.
#[macro_export]
macro_rules! workflow {
    (
        orchestrations: { $($oname:literal => $ofn:path),* $(,)? },
        activities: { $($aname:literal => $afn:path),* $(,)? } $(,)?
        $(entities: { $($ename:literal => $efn:path),* $(,)? } $(,)?)?
    ) => {
        struct __WeftComponent;

        impl $crate::bindings::exports::weft::workflow::orchestrations::Guest for __WeftComponent {
            fn names() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![$(::std::string::String::from($oname)),*]
            }
            fn run(
                name: ::std::string::String,
                input: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                match name.as_str() {
                    $($oname => $crate::__private::run_orchestration($ofn, &input),)*
                    other => ::std::result::Result::Err(::std::format!(
                        "unknown orchestration '{other}'"
                    )),
                }
            }
        }

        impl $crate::bindings::exports::weft::workflow::activities::Guest for __WeftComponent {
            fn names() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![$(::std::string::String::from($aname)),*]
            }
            fn execute(
                name: ::std::string::String,
                input: ::std::string::String,
            ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                match name.as_str() {
                    $($aname => $crate::__private::run_activity($afn, &input),)*
                    other => ::std::result::Result::Err(::std::format!(
                        "unknown activity '{other}'"
                    )),
                }
            }
        }

        impl $crate::bindings::exports::weft::workflow::entities::Guest for __WeftComponent {
            fn names() -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![$($(::std::string::String::from($ename)),*)?]
            }
            fn apply(
                name: ::std::string::String,
                key: ::std::string::String,
                state: ::std::option::Option<::std::string::String>,
                operation: ::std::string::String,
                input: ::std::string::String,
            ) -> ::std::result::Result<
                $crate::bindings::weft::workflow::types::EntityOutcome,
                ::std::string::String,
            > {
                #[allow(unused_variables, reason = "a component may export no entities")]
                let call = (key, state, operation, input);
                match name.as_str() {
                    $($($ename => $crate::__private::run_entity($efn, call),)*)?
                    other => ::std::result::Result::Err(::std::format!(
                        "unknown entity '{other}'"
                    )),
                }
            }
        }

        $crate::bindings::export_workflow!(__WeftComponent with_types_in $crate::bindings);
    };
}

#[doc(hidden)]
pub mod __private {
    use super::{Context, Entity, Error};
    use crate::bindings::weft::workflow::types::EntityOutcome;
    use serde::{Serialize, de::DeserializeOwned};

    pub fn run_orchestration<I: DeserializeOwned, O: Serialize>(
        f: fn(&Context, I) -> Result<O, Error>,
        input: &str,
    ) -> Result<String, String> {
        let input: I = serde_json::from_str(input).map_err(|e| format!("invalid_input: {e}"))?;
        let ctx = Context::new();
        let output = f(&ctx, input).map_err(|e| e.message)?;
        serde_json::to_string(&output).map_err(|e| format!("cannot serialize output: {e}"))
    }

    pub fn run_entity<S: Serialize + DeserializeOwned, O: Serialize>(
        f: fn(&mut Entity<S>) -> Result<O, Error>,
        (key, state, operation, input): (String, Option<String>, String, String),
    ) -> Result<EntityOutcome, String> {
        let state: Option<S> = state
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| format!("stored state does not fit this entity: {e}"))?;
        let mut entity = Entity::new(key, operation, input, state);
        let output = f(&mut entity).map_err(|e| e.message)?;
        let output =
            serde_json::to_string(&output).map_err(|e| format!("cannot serialize output: {e}"))?;
        let state = entity
            .into_state()
            .map(|s| serde_json::to_string(&s))
            .transpose()
            .map_err(|e| format!("cannot serialize state: {e}"))?;
        Ok(EntityOutcome { state, output })
    }

    pub fn run_activity<I: DeserializeOwned, O: Serialize>(
        f: fn(I) -> Result<O, Error>,
        input: &str,
    ) -> Result<String, String> {
        let input: I = serde_json::from_str(input).map_err(|e| format!("invalid_input: {e}"))?;
        let output = f(input).map_err(|e| e.message)?;
        serde_json::to_string(&output).map_err(|e| format!("cannot serialize output: {e}"))
    }
}

/// What an activity knows about the call it is running for.
pub mod activity {
    use crate::bindings::weft::workflow::activity_context as host;

    /// `{instance-id}/{position}`: the same for every attempt and re-run of one scheduled call;
    /// use it to deduplicate side effects.
    pub fn idempotency_key() -> String {
        host::idempotency_key()
    }

    /// 1 for the first attempt.
    pub fn attempt() -> u32 {
        host::attempt()
    }

    /// A random number from the host's secure source (activities are not replayed).
    pub fn random_u64() -> u64 {
        wasip2::random::random::get_random_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::__private::{run_activity, run_entity};
    use super::*;
    use crate::bindings::exports::weft::workflow::{activities, entities, orchestrations};

    #[test]
    fn an_error_of_a_kind_reads_kind_colon_message() {
        let e = Error::with_kind("rate_limited", format_args!("try in {} s", 30));
        assert_eq!(e.message(), "rate_limited: try in 30 s");
        assert_eq!(e.to_string(), e.message());
        assert_eq!(Error::new("plain").message(), "plain");
    }

    #[test]
    fn any_std_error_converts_with_its_message() {
        let parse = "x".parse::<u32>().unwrap_err();
        assert_eq!(Error::from(parse.clone()).message(), parse.to_string());
    }

    fn double(n: u32) -> Result<u32, Error> {
        if n > 100 {
            return Err(Error::with_kind("too_big", n));
        }
        Ok(n * 2)
    }

    #[test]
    fn an_activity_takes_and_gives_json() {
        assert_eq!(run_activity(double, "21"), Ok("42".to_string()));
        assert_eq!(run_activity(double, "101"), Err("too_big: 101".into()));
    }

    #[test]
    fn an_activity_input_that_does_not_fit_is_invalid_input() {
        let e = run_activity(double, r#"{"n": 1}"#).unwrap_err();
        assert!(e.starts_with("invalid_input: invalid type"), "{e}");
    }

    fn counter(entity: &mut Entity<u32>) -> Result<u32, Error> {
        match entity.operation() {
            "add" => {
                let by: u32 = entity.input()?;
                *entity.state_mut() += by;
                Ok(*entity.state_mut())
            }
            "reset" => {
                entity.delete_state();
                Ok(0)
            }
            _ => Err(entity.unknown_operation()),
        }
    }

    /// Applies `operation` to `counter` in `state`: "OUTPUT STATE", or "error MESSAGE".
    fn apply(state: Option<&str>, operation: &str, input: &str) -> String {
        let call = (
            "k".to_string(),
            state.map(str::to_string),
            operation.to_string(),
            input.to_string(),
        );
        match run_entity(counter, call) {
            Ok(o) => format!("{} {:?}", o.output, o.state),
            Err(e) => format!("error {e}"),
        }
    }

    #[test]
    fn an_entity_operation_gives_its_output_and_the_new_state() {
        assert_eq!(apply(None, "add", "2"), r#"2 Some("2")"#);
        assert_eq!(apply(Some("5"), "add", "2"), r#"7 Some("7")"#);
        assert_eq!(apply(Some("5"), "reset", "null"), "0 None");
    }

    #[test]
    fn a_failed_entity_operation_or_a_state_that_does_not_fit_is_an_error() {
        assert_eq!(
            apply(Some("5"), "nope", "null"),
            "error unknown_operation: no operation 'nope' on this entity"
        );
        let wrong_state = apply(Some(r#""five""#), "add", "1");
        assert!(
            wrong_state.starts_with("error stored state does not fit this entity"),
            "{wrong_state}"
        );
    }

    fn hello(_ctx: &Context, name: String) -> Result<String, Error> {
        Ok(format!("Hello {name}!"))
    }

    workflow! {
        orchestrations: { "hello" => hello },
        activities: { "double" => double },
        entities: { "counter" => counter },
    }

    #[test]
    fn the_macro_exports_each_function_under_its_name() {
        assert_eq!(
            <__WeftComponent as orchestrations::Guest>::names(),
            ["hello"]
        );
        assert_eq!(<__WeftComponent as activities::Guest>::names(), ["double"]);
        assert_eq!(<__WeftComponent as entities::Guest>::names(), ["counter"]);
        let out = <__WeftComponent as activities::Guest>::execute("double".into(), "4".into());
        assert_eq!(out, Ok("8".into()));
        let outcome = <__WeftComponent as entities::Guest>::apply(
            "counter".into(),
            "k".into(),
            Some("1".into()),
            "add".into(),
            "2".into(),
        )
        .unwrap();
        assert_eq!(
            (outcome.output, outcome.state),
            ("3".into(), Some("3".into()))
        );
    }

    #[test]
    fn the_macro_refuses_unknown_names_naming_them() {
        let run = <__WeftComponent as orchestrations::Guest>::run("bye".into(), "null".into());
        assert_eq!(run, Err("unknown orchestration 'bye'".into()));
        let exec = <__WeftComponent as activities::Guest>::execute("halve".into(), "4".into());
        assert_eq!(exec, Err("unknown activity 'halve'".into()));
        let apply = <__WeftComponent as entities::Guest>::apply(
            "gauge".into(),
            "k".into(),
            None,
            "add".into(),
            "1".into(),
        );
        assert_eq!(
            apply.map(|o| o.output),
            Err("unknown entity 'gauge'".into())
        );
    }
}
