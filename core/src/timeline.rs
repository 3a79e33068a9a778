//! An instance's history read as a timeline: each thing the orchestration waited on (an
//! activity, a timer, a child, an entity call, an event) as a lane from when it was asked for
//! to when it was answered, with the attempts that failed on the way; the awaits and which
//! handle won each; and what happened at one moment (events raised, the start, the end).

use crate::{HistoryEvent, Millis, Pos, Recorded};

/// What a lane waited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneKind {
    Activity,
    Timer,
    Child,
    EntityCall,
    Event,
}

impl LaneKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activity => "activity",
            Self::Timer => "timer",
            Self::Child => "child",
            Self::EntityCall => "entity",
            Self::Event => "event",
        }
    }
}

/// How a lane ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Open,
    Completed,
    Failed,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// An attempt of an activity that failed and was retried.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub number: u32,
    pub failed_at: Millis,
    /// When the next attempt was due: the retry wait runs from `failed_at` to here.
    pub retry_at: Millis,
    pub error: String,
}

/// One handle of the orchestration, from its creation to its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub handle: Pos,
    pub kind: LaneKind,
    /// The activity's or child's name, the entity operation, the event's name, or `timer`.
    pub label: String,
    pub from: Millis,
    /// When it was answered or cancelled; `None` while it is open.
    pub to: Option<Millis>,
    pub outcome: Outcome,
    pub attempts: Vec<Attempt>,
    /// A sub-orchestration's instance id.
    pub child: Option<String>,
    /// When an await returned with this handle as its winner.
    pub won: Vec<Millis>,
}

/// An await that returned: which of its handles won, when.
#[derive(Debug, Clone, PartialEq)]
pub struct Await {
    pub at: Millis,
    pub handles: Vec<Pos>,
    pub winner: Pos,
}

/// What a mark shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    Started,
    EventRaised,
    Signal,
    CustomStatus,
    Suspended,
    Resumed,
    Ended,
}

impl MarkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::EventRaised => "event",
            Self::Signal => "signal",
            Self::CustomStatus => "status",
            Self::Suspended => "suspended",
            Self::Resumed => "resumed",
            Self::Ended => "ended",
        }
    }
}

/// Something that happened at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub at: Millis,
    pub kind: MarkKind,
    pub label: String,
}

/// A history as lanes, awaits and marks, between `from` and `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub from: Millis,
    pub to: Millis,
    pub lanes: Vec<Lane>,
    pub awaits: Vec<Await>,
    pub marks: Vec<Mark>,
}

/// The timeline of `history`, drawn up to `until` at least (the present, for an instance that
/// is still running: its open lanes reach it).
pub fn timeline(history: &[Recorded], until: Millis) -> Timeline {
    let mut t = Timeline {
        from: history.first().map_or(until, |r| r.recorded_at),
        to: until,
        lanes: Vec::new(),
        awaits: Vec::new(),
        marks: Vec::new(),
    };
    for r in history {
        t.to = t.to.max(r.recorded_at);
        t.read(r);
    }
    t
}

impl Timeline {
    fn open(&mut self, handle: Pos, kind: LaneKind, label: String, at: Millis) {
        self.lanes.push(Lane {
            handle,
            kind,
            label,
            from: at,
            to: None,
            outcome: Outcome::Open,
            attempts: Vec::new(),
            child: None,
            won: Vec::new(),
        });
    }

    fn lane(&mut self, handle: Pos) -> Option<&mut Lane> {
        self.lanes.iter_mut().rev().find(|l| l.handle == handle)
    }

    /// Ends the lane of `handle` with `outcome`, unless it has ended already.
    fn close(&mut self, handle: Pos, outcome: Outcome, at: Millis) {
        if let Some(lane) = self.lane(handle).filter(|l| l.to.is_none()) {
            lane.to = Some(at);
            lane.outcome = outcome;
        }
    }

    fn mark(&mut self, at: Millis, kind: MarkKind, label: impl Into<String>) {
        self.marks.push(Mark {
            at,
            kind,
            label: label.into(),
        });
    }

    fn read(&mut self, r: &Recorded) {
        use HistoryEvent::*;
        let at = r.recorded_at;
        match &r.event {
            Started { name, .. } => self.mark(at, MarkKind::Started, name.clone()),
            ActivityScheduled { pos, name, .. } => {
                self.open(*pos, LaneKind::Activity, name.clone(), at)
            }
            TimerCreated { pos, .. } => self.open(*pos, LaneKind::Timer, "timer".into(), at),
            SubOrchestrationScheduled {
                pos,
                name,
                instance_id,
                ..
            } => {
                self.open(*pos, LaneKind::Child, name.clone(), at);
                if let Some(lane) = self.lane(*pos) {
                    lane.child = Some(instance_id.clone());
                }
            }
            EventWaitCreated { pos, name } => self.open(*pos, LaneKind::Event, name.clone(), at),
            EntityCalled {
                pos,
                name,
                key,
                operation,
                ..
            } => self.open(
                *pos,
                LaneKind::EntityCall,
                format!("{name}/{key} {operation}"),
                at,
            ),
            EntitySignalled {
                name,
                key,
                operation,
                ..
            } => self.mark(at, MarkKind::Signal, format!("{name}/{key} {operation}")),
            CustomStatusSet { status, .. } => self.mark(at, MarkKind::CustomStatus, status.clone()),
            Cancelled { handle, .. } => self.close(*handle, Outcome::Cancelled, at),
            AwaitResolved {
                handles, winner, ..
            } => {
                self.awaits.push(Await {
                    at,
                    handles: handles.clone(),
                    winner: *winner,
                });
                if let Some(lane) = self.lane(*winner) {
                    lane.won.push(at);
                    // An event wait is answered by the await that returns it.
                    if lane.kind == LaneKind::Event && lane.to.is_none() {
                        lane.to = Some(at);
                        lane.outcome = Outcome::Completed;
                    }
                }
            }
            ActivityCompleted { handle, .. }
            | TimerFired { handle }
            | SubOrchestrationCompleted { handle, .. }
            | EntityCallCompleted { handle, .. } => self.close(*handle, Outcome::Completed, at),
            ActivityFailed { handle, .. }
            | SubOrchestrationFailed { handle, .. }
            | EntityCallFailed { handle, .. } => self.close(*handle, Outcome::Failed, at),
            ActivityAttemptFailed {
                handle,
                attempt,
                error,
                retry_at,
            } => {
                if let Some(lane) = self.lane(*handle) {
                    lane.attempts.push(Attempt {
                        number: *attempt,
                        failed_at: at,
                        retry_at: *retry_at,
                        error: error.clone(),
                    });
                }
            }
            EventRaised { name, .. } => self.mark(at, MarkKind::EventRaised, name.clone()),
            Suspended { reason } => self.mark(at, MarkKind::Suspended, reason.clone()),
            Resumed { reason } => self.mark(at, MarkKind::Resumed, reason.clone()),
            Completed { .. } => self.mark(at, MarkKind::Ended, "completed"),
            Failed { .. } => self.mark(at, MarkKind::Ended, "failed"),
            Terminated { .. } => self.mark(at, MarkKind::Ended, "terminated"),
            ContinuedAsNew { .. } => self.mark(at, MarkKind::Ended, "continued as new"),
            Now { .. }
            | Guid { .. }
            | Random { .. }
            | ContinueAsNewRequested { .. }
            | CallbackUrlCreated { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{raised, started};
    use crate::{Completion, RetryPolicy};

    /// The history of `events`, the first recorded at 0 and each next one 10 ms later.
    fn at_tens(events: Vec<HistoryEvent>) -> Vec<Recorded> {
        let mut h = started();
        for e in events {
            h = h.with(e);
        }
        h.0.into_iter()
            .enumerate()
            .map(|(n, mut r)| {
                r.recorded_at = 10 * n as Millis;
                r
            })
            .collect()
    }

    #[test]
    fn an_activity_is_a_span_from_scheduled_to_completed_with_its_retry_waits() {
        let h = at_tens(vec![
            HistoryEvent::ActivityScheduled {
                pos: 0,
                name: "send".into(),
                input: "1".into(),
                retry: Some(RetryPolicy {
                    max_attempts: 3,
                    first_interval_ms: 5,
                    backoff_coefficient: 1.0,
                    max_interval_ms: 5,
                    non_retryable: Vec::new(),
                }),
            },
            HistoryEvent::ActivityAttemptFailed {
                handle: 0,
                attempt: 1,
                error: "busy".into(),
                retry_at: 25,
            },
            HistoryEvent::ActivityCompleted {
                handle: 0,
                output: "2".into(),
            },
            HistoryEvent::Completed { output: "2".into() },
        ]);
        let t = timeline(&h, 0);
        assert_eq!((t.from, t.to), (0, 40));
        let [lane] = &t.lanes[..] else {
            panic!("{t:?}")
        };
        assert_eq!(
            (lane.kind, lane.label.as_str(), lane.from, lane.to),
            (LaneKind::Activity, "send", 10, Some(30))
        );
        assert_eq!(lane.outcome, Outcome::Completed);
        assert_eq!(
            lane.attempts,
            [Attempt {
                number: 1,
                failed_at: 20,
                retry_at: 25,
                error: "busy".into()
            }]
        );
        let marks: Vec<_> = t.marks.iter().map(|m| (m.at, m.kind)).collect();
        assert_eq!(marks, [(0, MarkKind::Started), (40, MarkKind::Ended)]);
    }

    #[test]
    fn an_await_names_its_winner_and_the_loser_stays_open_until_cancelled() {
        let h = at_tens(vec![
            HistoryEvent::EventWaitCreated {
                pos: 0,
                name: "answer".into(),
            },
            HistoryEvent::TimerCreated {
                pos: 1,
                fire_at: 1000,
            },
            raised("answer", "7"),
            HistoryEvent::AwaitResolved {
                pos: 2,
                handles: vec![0, 1],
                winner: 0,
                completion: Completion::Success("7".into()),
                arrival: 3,
                at: 30,
            },
        ]);
        let t = timeline(&h, 100);
        assert_eq!(t.to, 100, "drawn up to the present");
        assert_eq!(
            t.awaits,
            [Await {
                at: 40,
                handles: vec![0, 1],
                winner: 0
            }]
        );
        let event = &t.lanes[0];
        assert_eq!(
            (event.kind, event.to, event.outcome, &event.won[..]),
            (LaneKind::Event, Some(40), Outcome::Completed, &[40][..])
        );
        let timer = &t.lanes[1];
        assert_eq!(
            (timer.kind, timer.to, timer.outcome),
            (LaneKind::Timer, None, Outcome::Open)
        );
        assert!(timer.won.is_empty());
        assert!(
            t.marks
                .iter()
                .any(|m| m.kind == MarkKind::EventRaised && m.label == "answer" && m.at == 30)
        );

        let mut cancelled = h.clone();
        cancelled.push(Recorded {
            seq: 5,
            recorded_at: 50,
            event: HistoryEvent::Cancelled { pos: 3, handle: 1 },
        });
        let t = timeline(&cancelled, 0);
        assert_eq!(
            (t.lanes[1].to, t.lanes[1].outcome),
            (Some(50), Outcome::Cancelled)
        );
    }

    #[test]
    fn a_child_lane_names_the_child_and_a_failure_ends_it() {
        let h = at_tens(vec![
            HistoryEvent::SubOrchestrationScheduled {
                pos: 0,
                name: "verify".into(),
                instance_id: "p:0".into(),
                input: "null".into(),
            },
            HistoryEvent::EntityCalled {
                pos: 1,
                name: "counter".into(),
                key: "k".into(),
                operation: "add".into(),
                input: "1".into(),
            },
            HistoryEvent::SubOrchestrationFailed {
                handle: 0,
                error: "boom".into(),
            },
            HistoryEvent::EntityCallCompleted {
                handle: 1,
                output: "1".into(),
            },
        ]);
        let t = timeline(&h, 0);
        let child = &t.lanes[0];
        assert_eq!(
            (child.kind, child.child.as_deref(), child.outcome, child.to),
            (LaneKind::Child, Some("p:0"), Outcome::Failed, Some(30))
        );
        assert_eq!(t.lanes[1].label, "counter/k add");
        assert_eq!(t.lanes[1].outcome, Outcome::Completed);
    }
}
