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
//! Orchestrations must be deterministic: they see time, GUIDs and randomness only through the
//! [`Context`], and wait only through [`Task`]s. Activities do the real work.

mod context;
pub mod http;

pub use context::{AnyTask, Context, RetryPolicy, Task};

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

/// Exports orchestrations and activities from this component, by name.
#[macro_export]
macro_rules! workflow {
    (
        orchestrations: { $($oname:literal => $ofn:path),* $(,)? },
        activities: { $($aname:literal => $afn:path),* $(,)? } $(,)?
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

        $crate::bindings::export_workflow!(__WeftComponent with_types_in $crate::bindings);
    };
}

#[doc(hidden)]
pub mod __private {
    use super::{Context, Error};
    use serde::{Serialize, de::DeserializeOwned};

    pub fn run_orchestration<I: DeserializeOwned, O: Serialize>(
        f: fn(&Context, I) -> Result<O, Error>,
        input: &str,
    ) -> Result<String, String> {
        let input: I = serde_json::from_str(input).map_err(|e| format!("invalid input: {e}"))?;
        let ctx = Context::new();
        let output = f(&ctx, input).map_err(|e| e.message)?;
        serde_json::to_string(&output).map_err(|e| format!("cannot serialize output: {e}"))
    }

    pub fn run_activity<I: DeserializeOwned, O: Serialize>(
        f: fn(I) -> Result<O, Error>,
        input: &str,
    ) -> Result<String, String> {
        let input: I = serde_json::from_str(input).map_err(|e| format!("invalid input: {e}"))?;
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
