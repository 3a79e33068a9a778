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

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(operation: &str, input: &str, state: Option<u32>) -> Entity<u32> {
        Entity::new("k-1".into(), operation.into(), input.into(), state)
    }

    #[test]
    fn an_operation_sees_its_key_name_input_and_state() {
        let e = entity("add", "5", Some(2));
        assert_eq!((e.key(), e.operation()), ("k-1", "add"));
        assert_eq!(e.input::<u32>().unwrap(), 5);
        assert_eq!(e.state(), Some(&2));
    }

    #[test]
    fn an_input_that_does_not_fit_is_invalid_input() {
        let e = entity("add", r#""five""#, None);
        let message = e.input::<u32>().unwrap_err().message().to_string();
        assert!(
            message.starts_with("invalid_input: operation 'add': invalid type"),
            "{message}"
        );
    }

    #[test]
    fn state_mut_starts_from_the_default_and_delete_removes_the_state() {
        let mut e = entity("add", "1", None);
        assert_eq!(e.state(), None);
        *e.state_mut() += 3;
        assert_eq!(e.state(), Some(&3));
        e.set_state(7);
        assert_eq!(e.state(), Some(&7));
        e.delete_state();
        assert_eq!(e.into_state(), None);
    }

    #[test]
    fn an_unknown_operation_is_named_in_its_error() {
        let e = entity("frobnicate", "null", None);
        assert_eq!(
            e.unknown_operation().message(),
            "unknown_operation: no operation 'frobnicate' on this entity"
        );
    }
}
