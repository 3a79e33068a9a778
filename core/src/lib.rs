//! weft's domain, as plain data and functions: ids, history events, the run state folded from
//! them, replay matching, await resolution and retry policies. No I/O, no clock, no randomness,
//! no wasmtime, no SQL: Cargo keeps it so (it depends on serde and thiserror only).

pub mod attempts;
pub mod continuing;
pub mod ending;
mod ids;
mod run_state;
#[cfg(test)]
mod testing;
pub mod timeline;

pub use ids::{ComponentDigest, InstanceId, InvalidId};
pub use run_state::{Resolution, RunState, Step, UsageError};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// The position of a recorded host call in an instance's run: 0 for the first call.
/// Handles are the positions of the calls that created them.
pub type Pos = u32;

/// The position of an event in an instance's history: 0 for `started`.
pub type Seq = u64;

/// How a failed activity is retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_interval_ms: u64,
    pub backoff_coefficient: f64,
    pub max_interval_ms: u64,
    pub non_retryable: Vec<String>,
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`, if a failure of attempt `attempt` with `error`
    /// is to be retried (see [`error_kind`]).
    pub fn retry_delay(&self, attempt: u32, error: &str) -> Option<Millis> {
        let kind = error_kind(error);
        if attempt >= self.max_attempts
            || self.non_retryable.iter().any(|k| Some(k.as_str()) == kind)
        {
            return None;
        }
        let factor = self
            .backoff_coefficient
            .max(1.0)
            .powi(attempt.saturating_sub(1) as i32);
        let delay = (self.first_interval_ms as f64 * factor).min(self.max_interval_ms as f64);
        Some(delay.max(0.0) as Millis)
    }
}

/// The kind of an error message `kind: text`: its one-word prefix (letters, digits, `_`, `-`,
/// `.`), if it has one. Retry policies and failure statuses tell errors apart by it.
pub fn error_kind(message: &str) -> Option<&str> {
    let (kind, _) = message.split_once(':')?;
    let word = !kind.is_empty()
        && kind
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    word.then_some(kind)
}

/// How an awaited handle ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Completion {
    /// An activity's JSON output or an event's JSON payload.
    Success(String),
    /// An activity's error message.
    Failure(String),
    /// A timer fired.
    Fired,
}

/// One entry of an instance's append-only history.
///
/// Three groups: lifecycle (`started`, `completed`, `failed`, `terminated`); what the
/// orchestration did (each host call, with its position `pos`); and arrivals from outside
/// (activity results, fired timers, raised events), each naming the `handle` it answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HistoryEvent {
    Started {
        name: String,
        input: String,
        digest: ComponentDigest,
        /// Seeds the deterministic WASI random sources.
        seed: u64,
        /// The orchestration's time at its start.
        at: Millis,
        /// The run's trace context, a W3C `traceparent`: every span of the instance, on any
        /// node and after any restart, is a child of it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace: Option<String>,
    },

    Now {
        pos: Pos,
        value: Millis,
    },
    Guid {
        pos: Pos,
        value: String,
    },
    Random {
        pos: Pos,
        value: u64,
    },
    CustomStatusSet {
        pos: Pos,
        status: String,
    },
    ActivityScheduled {
        pos: Pos,
        name: String,
        input: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry: Option<RetryPolicy>,
    },
    TimerCreated {
        pos: Pos,
        fire_at: Millis,
    },
    /// A child orchestration started with this instance id.
    SubOrchestrationScheduled {
        pos: Pos,
        name: String,
        instance_id: String,
        input: String,
    },
    EventWaitCreated {
        pos: Pos,
        name: String,
    },
    /// A one-way operation sent to entity `name`/`key`.
    EntitySignalled {
        pos: Pos,
        name: String,
        key: String,
        operation: String,
        input: String,
    },
    /// An operation sent to entity `name`/`key` whose output completes the handle.
    EntityCalled {
        pos: Pos,
        name: String,
        key: String,
        operation: String,
        input: String,
    },
    Cancelled {
        pos: Pos,
        handle: Pos,
    },
    /// The orchestration asked to start afresh with `input` once it returns.
    ContinueAsNewRequested {
        pos: Pos,
        input: String,
    },
    /// A signed URL that raises `event` on this instance until `expires_at`.
    CallbackUrlCreated {
        pos: Pos,
        event: String,
        expires_at: Millis,
        url: String,
    },
    /// An `await-any` returned: `winner` among `handles`, answered by the arrival at history
    /// position `arrival`, at orchestration time `at`.
    AwaitResolved {
        pos: Pos,
        handles: Vec<Pos>,
        winner: Pos,
        completion: Completion,
        arrival: Seq,
        at: Millis,
    },

    ActivityCompleted {
        handle: Pos,
        output: String,
    },
    ActivityFailed {
        handle: Pos,
        error: String,
    },
    /// An attempt of an activity with a retry policy failed; the next runs at `retry_at`.
    ActivityAttemptFailed {
        handle: Pos,
        attempt: u32,
        error: String,
        retry_at: Millis,
    },
    TimerFired {
        handle: Pos,
    },
    SubOrchestrationCompleted {
        handle: Pos,
        output: String,
    },
    SubOrchestrationFailed {
        handle: Pos,
        error: String,
    },
    EntityCallCompleted {
        handle: Pos,
        output: String,
    },
    EntityCallFailed {
        handle: Pos,
        error: String,
    },
    EventRaised {
        name: String,
        payload: String,
    },

    Completed {
        output: String,
    },
    Failed {
        error: String,
    },
    Terminated {
        reason: String,
    },
    /// This run ended by continuing as new with `input`; its history was archived as
    /// `generation` and a new run started.
    ContinuedAsNew {
        input: String,
        generation: u32,
    },
    /// An operator paused the instance: arrivals are recorded but not delivered.
    Suspended {
        reason: String,
    },
    Resumed {
        reason: String,
    },
}

/// Rules about how instances end, as other instances see it.
impl HistoryEvent {
    /// The position of the host call this event records, if it records one.
    pub fn call_pos(&self) -> Option<Pos> {
        use HistoryEvent::*;
        match self {
            Now { pos, .. }
            | Guid { pos, .. }
            | Random { pos, .. }
            | CustomStatusSet { pos, .. }
            | ActivityScheduled { pos, .. }
            | TimerCreated { pos, .. }
            | SubOrchestrationScheduled { pos, .. }
            | EventWaitCreated { pos, .. }
            | EntitySignalled { pos, .. }
            | EntityCalled { pos, .. }
            | Cancelled { pos, .. }
            | CallbackUrlCreated { pos, .. }
            | ContinueAsNewRequested { pos, .. }
            | AwaitResolved { pos, .. } => Some(*pos),
            _ => None,
        }
    }

    /// The handle this arrival completes, and how: for activity results, fired timers, child
    /// results and entity call results.
    pub fn completes(&self) -> Option<(Pos, Completion)> {
        use HistoryEvent::*;
        Some(match self {
            ActivityCompleted { handle, output }
            | SubOrchestrationCompleted { handle, output }
            | EntityCallCompleted { handle, output } => {
                (*handle, Completion::Success(output.clone()))
            }
            ActivityFailed { handle, error }
            | SubOrchestrationFailed { handle, error }
            | EntityCallFailed { handle, error } => (*handle, Completion::Failure(error.clone())),
            TimerFired { handle } => (*handle, Completion::Fired),
            _ => return None,
        })
    }

    /// The event's `type` tag, as serialized.
    pub fn kind(&self) -> &'static str {
        use HistoryEvent::*;
        match self {
            Started { .. } => "started",
            Now { .. } => "now",
            Guid { .. } => "guid",
            Random { .. } => "random",
            CustomStatusSet { .. } => "custom_status_set",
            ActivityScheduled { .. } => "activity_scheduled",
            TimerCreated { .. } => "timer_created",
            SubOrchestrationScheduled { .. } => "sub_orchestration_scheduled",
            EventWaitCreated { .. } => "event_wait_created",
            EntitySignalled { .. } => "entity_signalled",
            EntityCalled { .. } => "entity_called",
            Cancelled { .. } => "cancelled",
            CallbackUrlCreated { .. } => "callback_url_created",
            ContinueAsNewRequested { .. } => "continue_as_new_requested",
            AwaitResolved { .. } => "await_resolved",
            ActivityCompleted { .. } => "activity_completed",
            ActivityFailed { .. } => "activity_failed",
            ActivityAttemptFailed { .. } => "activity_attempt_failed",
            TimerFired { .. } => "timer_fired",
            SubOrchestrationCompleted { .. } => "sub_orchestration_completed",
            SubOrchestrationFailed { .. } => "sub_orchestration_failed",
            EntityCallCompleted { .. } => "entity_call_completed",
            EntityCallFailed { .. } => "entity_call_failed",
            EventRaised { .. } => "event_raised",
            Completed { .. } => "completed",
            Failed { .. } => "failed",
            Terminated { .. } => "terminated",
            ContinuedAsNew { .. } => "continued_as_new",
            Suspended { .. } => "suspended",
            Resumed { .. } => "resumed",
        }
    }

    /// The name a call is made with: the activity, child orchestration, event or entity (with
    /// its operation) it names.
    pub fn call_name(&self) -> Option<String> {
        use HistoryEvent::*;
        match self {
            ActivityScheduled { name, .. }
            | SubOrchestrationScheduled { name, .. }
            | EventWaitCreated { name, .. } => Some(name.clone()),
            EntitySignalled {
                name, operation, ..
            }
            | EntityCalled {
                name, operation, ..
            } => Some(format!("{name}.{operation}")),
            CallbackUrlCreated { event, .. } => Some(event.clone()),
            _ => None,
        }
    }

    /// A short description for messages: kind and the arguments that identify the call.
    pub fn describe(&self) -> String {
        use HistoryEvent::*;
        match self {
            ActivityScheduled { name, input, .. } => {
                format!("activity_scheduled '{name}' with input {}", short(input))
            }
            TimerCreated { fire_at, .. } => format!("timer_created firing at {fire_at}"),
            SubOrchestrationScheduled {
                name, instance_id, ..
            } => format!("sub_orchestration_scheduled '{name}' as '{instance_id}'"),
            EventWaitCreated { name, .. } => format!("event_wait_created '{name}'"),
            EntitySignalled {
                name,
                key,
                operation,
                input,
                ..
            }
            | EntityCalled {
                name,
                key,
                operation,
                input,
                ..
            } => format!(
                "{} '{operation}' on entity '{name}/{key}' with input {}",
                self.kind(),
                short(input)
            ),
            Cancelled { handle, .. } => format!("cancelled handle {handle}"),
            CallbackUrlCreated { event, .. } => format!("callback_url_created for '{event}'"),
            AwaitResolved { handles, .. } => format!("await_any {handles:?}"),
            CustomStatusSet { status, .. } => format!("custom_status_set {}", short(status)),
            other => other.kind().to_string(),
        }
    }
}

/// Shortens a payload for messages.
fn short(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A history event with its place and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub seq: Seq,
    pub recorded_at: Millis,
    #[serde(flatten)]
    pub event: HistoryEvent,
}

/// The lifecycle state of an instance, as the status API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuntimeStatus {
    Pending,
    Running,
    Suspended,
    Completed,
    Failed,
    Terminated,
    ContinuedAsNew,
}

impl RuntimeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Suspended => "Suspended",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Terminated => "Terminated",
            Self::ContinuedAsNew => "ContinuedAsNew",
        }
    }

    /// Every status, in lifecycle order.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Running,
        Self::Suspended,
        Self::Completed,
        Self::Failed,
        Self::Terminated,
        Self::ContinuedAsNew,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Whether the instance has ended and takes no more events.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Terminated | Self::ContinuedAsNew
        )
    }
}
