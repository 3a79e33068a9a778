//! The orchestration context and its tasks.

use crate::Error;
use crate::bindings::weft::workflow::orchestration_context as host;
use crate::bindings::weft::workflow::types::{self, Completion};
use serde::{Serialize, de::DeserializeOwned};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

thread_local! {
    /// Completions the host has handed over but no task has taken yet.
    static COMPLETED: RefCell<HashMap<u32, Completion>> = RefCell::new(HashMap::new());
}

/// How a failed activity is retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_interval: Duration,
    pub backoff_coefficient: f64,
    pub max_interval: Duration,
    /// Error kinds (text before the first `:` of the error) that are never retried.
    pub non_retryable: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            first_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            max_interval: Duration::from_secs(60),
            non_retryable: Vec::new(),
        }
    }
}

/// The orchestration's view of the world. Every call is recorded and replayed.
pub struct Context {
    _private: (),
}

impl Context {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }

    /// This instance's id.
    pub fn instance_id(&self) -> String {
        host::instance_id()
    }

    /// The orchestration's current time, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        host::now()
    }

    /// The orchestration's current time.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_ms())
    }

    /// A new GUID, the same on every replay.
    pub fn new_guid(&self) -> String {
        host::new_guid()
    }

    /// A random number, the same on every replay.
    pub fn random_u64(&self) -> u64 {
        host::random_u64()
    }

    /// True while the code runs against recorded history.
    pub fn is_replaying(&self) -> bool {
        host::is_replaying()
    }

    /// A log line (not repeated while replaying).
    pub fn log(&self, message: impl std::fmt::Display) {
        host::log(&message.to_string());
    }

    /// Sets the custom status shown with the instance's status.
    pub fn set_custom_status(&self, status: &impl Serialize) -> Result<(), Error> {
        host::set_custom_status(&serde_json::to_string(status)?);
        Ok(())
    }

    /// Schedules an activity of this component. Nothing waits until the task is awaited.
    pub fn call_activity<O: DeserializeOwned>(
        &self,
        name: &str,
        input: &impl Serialize,
    ) -> Task<O> {
        self.schedule(name, input, None)
    }

    /// Schedules an activity that is retried by `policy` when it fails.
    pub fn call_activity_with_retry<O: DeserializeOwned>(
        &self,
        name: &str,
        input: &impl Serialize,
        policy: &RetryPolicy,
    ) -> Task<O> {
        let wit = types::RetryPolicy {
            max_attempts: policy.max_attempts,
            first_interval_ms: policy.first_interval.as_millis() as u64,
            backoff_coefficient: policy.backoff_coefficient,
            max_interval_ms: policy.max_interval.as_millis() as u64,
            non_retryable: policy.non_retryable.clone(),
        };
        self.schedule(name, input, Some(wit))
    }

    fn schedule<O>(
        &self,
        name: &str,
        input: &impl Serialize,
        policy: Option<types::RetryPolicy>,
    ) -> Task<O> {
        // Serializing a value to JSON only fails for maps with non-string keys: a bug in the
        // orchestration, reported like a panic.
        let input = serde_json::to_string(input).expect("activity input must serialize to JSON");
        Task::new(host::schedule_activity(name, &input, policy.as_ref()))
    }

    /// Starts orchestration `name` as a child of this one (instance id `{this id}:{position}`).
    /// The task completes with its output, or its failure as an error.
    pub fn call_sub_orchestration<O: DeserializeOwned>(
        &self,
        name: &str,
        input: &impl Serialize,
    ) -> Task<O> {
        let input = serde_json::to_string(input).expect("input must serialize to JSON");
        Task::new(host::call_sub_orchestration(name, None, &input))
    }

    /// Like [`Context::call_sub_orchestration`], with a chosen instance id.
    pub fn call_sub_orchestration_with_id<O: DeserializeOwned>(
        &self,
        name: &str,
        instance_id: &str,
        input: &impl Serialize,
    ) -> Task<O> {
        let input = serde_json::to_string(input).expect("input must serialize to JSON");
        Task::new(host::call_sub_orchestration(
            name,
            Some(instance_id),
            &input,
        ))
    }

    /// Sends `operation` with `input` to entity `name`/`key`, one way. Signals from one
    /// orchestration to one entity arrive in the order they were sent.
    pub fn signal_entity(&self, name: &str, key: &str, operation: &str, input: &impl Serialize) {
        let input = serde_json::to_string(input).expect("input must serialize to JSON");
        host::signal_entity(name, key, operation, &input);
    }

    /// Calls `operation` on entity `name`/`key`: the task completes with the operation's output,
    /// or its error.
    pub fn call_entity<O: DeserializeOwned>(
        &self,
        name: &str,
        key: &str,
        operation: &str,
        input: &impl Serialize,
    ) -> Task<O> {
        let input = serde_json::to_string(input).expect("input must serialize to JSON");
        Task::new(host::call_entity(name, key, operation, &input))
    }

    /// A durable timer firing at `at_ms` (milliseconds since the Unix epoch).
    pub fn create_timer(&self, at_ms: u64) -> Task<()> {
        Task::new(host::create_timer(at_ms))
    }

    /// A durable timer firing `after` from the orchestration's current time.
    pub fn timer(&self, after: Duration) -> Task<()> {
        self.create_timer(self.now_ms() + after.as_millis() as u64)
    }

    /// A signed URL that lets an external system raise event `name` on this instance (an HTTP
    /// POST with the payload as JSON body, no other credentials) for `ttl`.
    pub fn callback_url(&self, name: &str, ttl: Duration) -> String {
        host::callback_url(name, ttl.as_millis() as u64)
    }

    /// Starts this orchestration afresh with `input` once it returns, with a new history (events
    /// not yet taken are carried over). Return its value: `return ctx.continue_as_new(&next);`
    pub fn continue_as_new<T>(&self, input: &impl Serialize) -> Result<T, Error> {
        let input = serde_json::to_string(input).expect("input must serialize to JSON");
        host::continue_as_new(&input);
        Err(Error::new("continued as new"))
    }

    /// Waits for the next event `name` raised to this instance (events raised earlier are
    /// buffered and delivered in order).
    pub fn wait_event<T: DeserializeOwned>(&self, name: &str) -> Task<T> {
        Task::new(host::wait_event(name))
    }

    /// Waits for event `name` for at most `timeout`: `Ok(None)` when the time ran out. A wait
    /// that timed out consumes nothing: a later wait receives the event.
    pub fn wait_event_timeout<T: DeserializeOwned>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<T>, Error> {
        let event = self.wait_event::<T>(name);
        let timer = self.timer(timeout);
        match self.when_any(&[&event, &timer]) {
            0 => event.get().map(Some),
            _ => Ok(None),
        }
    }

    /// Blocks until one of the tasks has completed; returns its index. The others stay pending
    /// and can be awaited again.
    pub fn when_any(&self, tasks: &[&dyn AnyTask]) -> usize {
        assert!(!tasks.is_empty(), "when_any needs at least one task");
        let handles: Vec<u32> = tasks.iter().map(|t| t.handle()).collect();
        if let Some(i) = COMPLETED.with(|c| {
            let c = c.borrow();
            handles.iter().position(|h| c.contains_key(h))
        }) {
            return i;
        }
        let (winner, completion) = host::await_any(&handles);
        COMPLETED.with(|c| c.borrow_mut().insert(winner, completion));
        handles
            .iter()
            .position(|h| *h == winner)
            .expect("the host answered with a handle that was not awaited")
    }

    /// Blocks until all tasks have completed; their outputs in order, or the first error (in
    /// task order). The tasks are taken one by one, so the history grows by one entry per
    /// task however many there are.
    pub fn when_all<T: DeserializeOwned>(&self, tasks: Vec<Task<T>>) -> Result<Vec<T>, Error> {
        let mut outputs = Vec::with_capacity(tasks.len());
        let mut error = None;
        for task in tasks {
            match task.get() {
                Ok(v) => outputs.push(v),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(outputs),
        }
    }
}

/// Something that can be awaited: a [`Task`] of any output type.
pub trait AnyTask {
    fn handle(&self) -> u32;
}

/// A piece of outstanding work: an activity, a child orchestration, an entity call, a timer
/// or an event wait.
///
/// Dropping a task that has not completed cancels it: a timer is disarmed, a wait consumes
/// nothing, an activity's result is ignored.
pub struct Task<T> {
    handle: u32,
    taken: Cell<bool>,
    _output: PhantomData<T>,
}

impl<T> AnyTask for Task<T> {
    fn handle(&self) -> u32 {
        self.handle
    }
}

impl<T> Task<T> {
    fn new(handle: u32) -> Self {
        Self {
            handle,
            taken: Cell::new(false),
            _output: PhantomData,
        }
    }

    /// Whether the task has completed (without blocking).
    pub fn is_completed(&self) -> bool {
        COMPLETED.with(|c| c.borrow().contains_key(&self.handle))
    }

    fn take(self) -> Completion {
        let ready = COMPLETED.with(|c| c.borrow_mut().remove(&self.handle));
        let completion = match ready {
            Some(c) => c,
            None => host::await_any(&[self.handle]).1,
        };
        self.taken.set(true);
        completion
    }
}

impl<T: DeserializeOwned> Task<T> {
    /// Blocks until the task completes; its output or error.
    pub fn get(self) -> Result<T, Error> {
        match self.take() {
            Completion::Success(json) => serde_json::from_str(&json)
                .map_err(|e| Error::new(format!("unexpected payload {json}: {e}"))),
            Completion::Failure(message) => Err(Error::new(message)),
            Completion::Fired => serde_json::from_str("null")
                .map_err(|_| Error::new("a timer has no output; await it as Task<()>")),
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if !self.taken.get() {
            let completed = COMPLETED.with(|c| c.borrow_mut().remove(&self.handle));
            if completed.is_none() {
                host::cancel(self.handle);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_retry_policy_tries_three_times_doubling_from_one_second() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.max_attempts, 3);
        assert_eq!(policy.first_interval, Duration::from_secs(1));
        assert_eq!(policy.backoff_coefficient, 2.0);
        assert_eq!(policy.max_interval, Duration::from_secs(60));
        assert!(policy.non_retryable.is_empty());
    }
}
