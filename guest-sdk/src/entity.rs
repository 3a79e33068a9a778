//! Entities: keyed pieces of durable state that change one operation at a time.

use crate::Error;
use serde::de::DeserializeOwned;

/// One operation on an entity: its key, the operation's name and input, and the entity's
/// state, which the operation may change. The host applies operations on one entity one at a
/// time, in the order they were sent, and stores the new state with the operation's output in
/// one write; an operation that returns an error leaves the state as it was.
pub struct Entity<S> {
    key: String,
    operation: String,
    input: String,
    state: Option<S>,
}

impl<S> Entity<S> {
    pub(crate) fn new(key: String, operation: String, input: String, state: Option<S>) -> Self {
        Self {
            key,
            operation,
            input,
            state,
        }
    }

    /// The entity's key (for an entity per instance, say, the instance id).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operation's name.
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The operation's input.
    pub fn input<I: DeserializeOwned>(&self) -> Result<I, Error> {
        serde_json::from_str(&self.input).map_err(|e| {
            Error::with_kind(
                "invalid_input",
                format_args!("operation '{}': {e}", self.operation),
            )
        })
    }

    /// The state, if the entity has one.
    pub fn state(&self) -> Option<&S> {
        self.state.as_ref()
    }

    /// The state, made from `S::default()` if the entity has none yet.
    pub fn state_mut(&mut self) -> &mut S
    where
        S: Default,
    {
        self.state.get_or_insert_with(S::default)
    }

    /// Replaces the state.
    pub fn set_state(&mut self, state: S) {
        self.state = Some(state);
    }

    /// Deletes the state: the entity is gone once this operation is stored.
    pub fn delete_state(&mut self) {
        self.state = None;
    }

    /// The error for an operation this entity does not know.
    pub fn unknown_operation(&self) -> Error {
        Error::with_kind(
            "unknown_operation",
            format_args!("no operation '{}' on this entity", self.operation),
        )
    }

    pub(crate) fn into_state(self) -> Option<S> {
        self.state
    }
}
