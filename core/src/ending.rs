//! How an instance's end reaches others: the event a parent gets when its child ends, the
//! failure a terminated instance reports, and whether an entity's reply still reaches its caller.

use crate::{HistoryEvent, InstanceId, Pos, RuntimeStatus};

/// The event a parent's history gets when its sub-orchestration (started by the call at
/// `handle`) ends with `result`: its output, or its failure message.
pub fn event_for_parent(handle: Pos, result: Result<String, String>) -> HistoryEvent {
    match result {
        Ok(output) => HistoryEvent::SubOrchestrationCompleted { handle, output },
        Err(error) => HistoryEvent::SubOrchestrationFailed { handle, error },
    }
}

/// The failure a terminated instance reports to whoever waits on it (its parent): the
/// kind `terminated`, then the reason.
pub fn terminated_failure(reason: &str) -> String {
    format!("terminated: {reason}")
}

/// The reason a sub-orchestration gets when it is terminated with its parent.
pub fn terminated_with_parent(parent: &InstanceId) -> String {
    format!("parent instance '{parent}' was terminated")
}

/// Why a sub-orchestration cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChildRefused {
    /// No deployed component exports an orchestration of this name.
    NotDeployed(String),
    /// An instance with the child's id exists.
    IdInUse(InstanceId),
}

/// The failure of a sub-orchestration that cannot start: its handle fails at once, in the
/// commit that asked for it.
pub fn child_cannot_start(handle: Pos, why: ChildRefused) -> HistoryEvent {
    let error = match why {
        ChildRefused::NotDeployed(name) => format!("no orchestration named '{name}' is deployed"),
        ChildRefused::IdInUse(id) => format!("instance id '{id}' is already in use"),
    };
    HistoryEvent::SubOrchestrationFailed { handle, error }
}

/// The caller of an entity call as it stands when the entity's operation is applied: its
/// status and the run (generation) it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub status: RuntimeStatus,
    pub generation: u32,
}

/// The event an entity call's result puts into its caller's history, if it still reaches
/// the caller: not when the caller is gone or has ended, nor when the run that made the call
/// (`call_generation`) has since continued as new (the new run never made that call).
pub fn entity_reply(
    caller: Option<Caller>,
    call_generation: u32,
    handle: Pos,
    result: Result<String, String>,
) -> Option<HistoryEvent> {
    let caller = caller?;
    if caller.status.is_terminal() || caller.generation != call_generation {
        return None;
    }
    Some(match result {
        Ok(output) => HistoryEvent::EntityCallCompleted { handle, output },
        Err(error) => HistoryEvent::EntityCallFailed { handle, error },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_ends_answers_the_handle_that_started_it() {
        assert_eq!(
            event_for_parent(3, Ok("42".into())),
            HistoryEvent::SubOrchestrationCompleted {
                handle: 3,
                output: "42".into()
            }
        );
        assert_eq!(
            event_for_parent(4, Err(terminated_failure("stop"))),
            HistoryEvent::SubOrchestrationFailed {
                handle: 4,
                error: "terminated: stop".into()
            }
        );
    }

    #[test]
    fn a_terminated_failure_has_the_kind_terminated() {
        assert_eq!(
            crate::error_kind(&terminated_failure("operator gave up")),
            Some("terminated")
        );
        let parent: InstanceId = "order-7".parse().unwrap();
        assert_eq!(
            terminated_with_parent(&parent),
            "parent instance 'order-7' was terminated"
        );
    }

    fn caller(status: RuntimeStatus, generation: u32) -> Option<Caller> {
        Some(Caller { status, generation })
    }

    #[test]
    fn an_entity_reply_reaches_the_run_that_called() {
        assert_eq!(
            entity_reply(caller(RuntimeStatus::Running, 2), 2, 5, Ok("7".into())),
            Some(HistoryEvent::EntityCallCompleted {
                handle: 5,
                output: "7".into()
            })
        );
        assert_eq!(
            entity_reply(
                caller(RuntimeStatus::Suspended, 0),
                0,
                1,
                Err("app: no".into())
            ),
            Some(HistoryEvent::EntityCallFailed {
                handle: 1,
                error: "app: no".into()
            })
        );
    }

    #[test]
    fn an_entity_reply_is_dropped_for_a_later_run_an_ended_caller_or_none() {
        assert_eq!(
            entity_reply(caller(RuntimeStatus::Running, 3), 2, 5, Ok("7".into())),
            None
        );
        for ended in [
            RuntimeStatus::Completed,
            RuntimeStatus::Failed,
            RuntimeStatus::Terminated,
        ] {
            assert_eq!(entity_reply(caller(ended, 2), 2, 5, Ok("7".into())), None);
        }
        assert_eq!(entity_reply(None, 0, 5, Ok("7".into())), None);
    }

    #[test]
    fn a_child_that_cannot_start_fails_its_handle_saying_why() {
        assert_eq!(
            child_cannot_start(9, ChildRefused::NotDeployed("billing".into())),
            HistoryEvent::SubOrchestrationFailed {
                handle: 9,
                error: "no orchestration named 'billing' is deployed".into()
            }
        );
        assert_eq!(
            child_cannot_start(2, ChildRefused::IdInUse("order-7:child".parse().unwrap())),
            HistoryEvent::SubOrchestrationFailed {
                handle: 2,
                error: "instance id 'order-7:child' is already in use".into()
            }
        );
    }
}
