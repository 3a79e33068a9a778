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
