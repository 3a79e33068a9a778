//! The state of a run, folded from its history: what the orchestration asked for, what has
//! arrived, and which arrivals are consumed. Replay matching and `await-any` resolution live
//! here so they can be tested without wasm or SQL.

use super::{Completion, HistoryEvent, Pos, Recorded, Seq};
use crate::Millis;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A mistake of the orchestration code, which fails the instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error(
        "nondeterminism: at position {pos} the history records {recorded}, but the code now did {attempted}"
    )]
    Nondeterminism {
        pos: Pos,
        recorded: String,
        attempted: String,
    },
    #[error(
        "nondeterminism: the code finished after {made} calls, but the history records {recorded}"
    )]
    FinishedEarly { made: usize, recorded: usize },
    #[error("misuse: await on unknown handle {0}")]
    UnknownHandle(Pos),
    #[error("misuse: await on cancelled handle {0}")]
    CancelledHandle(Pos),
    #[error("misuse: await on an empty list of handles")]
    EmptyAwait,
    #[error("history_limit: the run's history reached {0} events")]
    HistoryLimit(usize),
    #[error("payload_too_large: {what} is {size} bytes, over the {max}-byte limit")]
    PayloadTooLarge {
        what: &'static str,
        size: usize,
        max: usize,
    },
}

impl UsageError {
    /// A `payload_too_large` misuse if `payload` is over `max` bytes.
    pub fn check_size(what: &'static str, payload: &str, max: usize) -> Result<(), Self> {
        if payload.len() > max {
            return Err(Self::PayloadTooLarge {
                what,
                size: payload.len(),
                max,
            });
        }
        Ok(())
    }
}

/// What an `await-any` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub winner: Pos,
    pub completion: Completion,
    pub arrival: Seq,
}

/// Whether a host call at some position replays a recorded one or runs live.
#[derive(Debug)]
pub enum Step<'a> {
    Replay(&'a HistoryEvent),
    Live,
}

#[derive(Debug, Clone)]
enum HandleKind {
    /// Completed by a result that names the handle: an activity, a child orchestration, an
    /// entity call.
    Activity,
    Timer,
    Wait(String),
}

/// The state of one run.
#[derive(Debug, Default, Clone)]
pub struct RunState {
    /// The recorded host calls, in position order.
    calls: Vec<HistoryEvent>,
    handles: HashMap<Pos, HandleKind>,
    cancelled: HashSet<Pos>,
    /// Results of activities and fired timers, by handle.
    results: HashMap<Pos, (Seq, Completion)>,
    /// Raised events not yet consumed, by name, oldest first.
    unconsumed: HashMap<String, BTreeMap<Seq, String>>,
    /// Handles an `await-any` returned, with what they returned.
    bound: HashMap<Pos, (Seq, Completion)>,
    /// The last history position applied.
    last_seq: Option<Seq>,
    /// The lifecycle end, once there is one.
    end: Option<HistoryEvent>,
    started_at: Millis,
    suspended: bool,
    /// Match calls by kind and name only (a history whose payloads were redacted).
    by_kind_and_name: bool,
}

impl RunState {
    /// Folds a whole history.
    pub fn from_history<'a>(history: impl IntoIterator<Item = &'a Recorded>) -> Self {
        let mut state = Self::default();
        for r in history {
            state.apply(r.seq, &r.event);
        }
        state
    }

    /// Applies one history event at position `seq`.
    pub fn apply(&mut self, seq: Seq, event: &HistoryEvent) {
        use HistoryEvent::*;
        self.last_seq = Some(self.last_seq.map_or(seq, |s| s.max(seq)));
        match event {
            Started { at, .. } => self.started_at = *at,
            ActivityCompleted { .. }
            | ActivityFailed { .. }
            | TimerFired { .. }
            | SubOrchestrationCompleted { .. }
            | SubOrchestrationFailed { .. }
            | EntityCallCompleted { .. }
            | EntityCallFailed { .. } => {
                if let Some((handle, completion)) = event.completes() {
                    self.results.entry(handle).or_insert((seq, completion));
                }
            }
            EventRaised { name, payload } => {
                self.unconsumed
                    .entry(name.clone())
                    .or_default()
                    .insert(seq, payload.clone());
            }
            Completed { .. } | Failed { .. } | Terminated { .. } => {
                self.end = Some(event.clone());
            }
            // Not an arrival: the activity runs again and its handle stays open.
            ActivityAttemptFailed { .. } => {}
            Suspended { .. } => self.suspended = true,
            Resumed { .. } => self.suspended = false,
            call => self.apply_call(call),
        }
    }

    fn apply_call(&mut self, call: &HistoryEvent) {
        use HistoryEvent::*;
        let Some(pos) = call.call_pos() else { return };
        match call {
            ActivityScheduled { .. } | SubOrchestrationScheduled { .. } | EntityCalled { .. } => {
                self.handles.insert(pos, HandleKind::Activity);
            }
            TimerCreated { .. } => {
                self.handles.insert(pos, HandleKind::Timer);
            }
            EventWaitCreated { name, .. } => {
                self.handles.insert(pos, HandleKind::Wait(name.clone()));
            }
            Cancelled { handle, .. } => {
                self.cancelled.insert(*handle);
            }
            AwaitResolved {
                winner,
                completion,
                arrival,
                ..
            } => {
                if let Some(HandleKind::Wait(name)) = self.handles.get(winner)
                    && let Some(queue) = self.unconsumed.get_mut(name)
                {
                    queue.remove(arrival);
                }
                self.bound.insert(*winner, (*arrival, completion.clone()));
            }
            _ => {}
        }
        self.calls.push(call.clone());
    }

    /// Records a live host call (one the history did not hold yet).
    pub fn record_call(&mut self, call: &HistoryEvent) {
        debug_assert_eq!(call.call_pos(), Some(self.calls.len() as Pos));
        self.apply_call(call);
    }

    /// How many host calls are recorded.
    pub fn recorded_calls(&self) -> usize {
        self.calls.len()
    }

    /// The last history position applied.
    pub fn last_seq(&self) -> Option<Seq> {
        self.last_seq
    }

    /// The lifecycle end, if the run has ended.
    pub fn end(&self) -> Option<&HistoryEvent> {
        self.end.as_ref()
    }

    /// Whether an operator has suspended the run: nothing is delivered until it resumes.
    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// The orchestration's time at its start.
    pub fn started_at(&self) -> Millis {
        self.started_at
    }

    /// From now on, matches calls by their kind and name only: for a history whose payloads
    /// were replaced by hashes, which the code cannot make again.
    pub fn match_by_kind_and_name(&mut self) {
        self.by_kind_and_name = true;
    }

    /// Matches the call the code makes now at `pos` against the history.
    pub fn step(&self, pos: Pos, attempted: &HistoryEvent) -> Result<Step<'_>, UsageError> {
        let Some(recorded) = self.calls.get(pos as usize) else {
            return Ok(Step::Live);
        };
        let same = if self.by_kind_and_name {
            recorded.kind() == attempted.kind() && recorded.call_name() == attempted.call_name()
        } else {
            same_call(recorded, attempted)
        };
        if same {
            Ok(Step::Replay(recorded))
        } else {
            let (recorded, attempted) = describe_pair(recorded, attempted);
            Err(UsageError::Nondeterminism {
                pos,
                recorded,
                attempted,
            })
        }
    }

    /// Whether a handle names a live (created, not cancelled) timer.
    pub fn is_timer(&self, handle: Pos) -> bool {
        matches!(self.handles.get(&handle), Some(HandleKind::Timer))
    }

    /// Checks that a handle may be cancelled.
    pub fn check_handle(&self, handle: Pos) -> Result<(), UsageError> {
        if self.handles.contains_key(&handle) {
            Ok(())
        } else {
            Err(UsageError::UnknownHandle(handle))
        }
    }

    /// Which of `handles` an `await-any` returns now, if any has completed: the one whose
    /// completion reached the history first. A wait takes the oldest unconsumed event of its
    /// name; two waits for one name in the same set take the first and the second.
    pub fn resolve(&self, handles: &[Pos]) -> Result<Option<Resolution>, UsageError> {
        if handles.is_empty() {
            return Err(UsageError::EmptyAwait);
        }
        let mut claimed: HashMap<&str, usize> = HashMap::new();
        let mut best: Option<Resolution> = None;
        for &h in handles {
            let kind = self.handles.get(&h).ok_or(UsageError::UnknownHandle(h))?;
            if self.cancelled.contains(&h) {
                return Err(UsageError::CancelledHandle(h));
            }
            let candidate = if let Some((seq, c)) = self.bound.get(&h) {
                Some((*seq, c.clone()))
            } else {
                match kind {
                    HandleKind::Activity | HandleKind::Timer => {
                        self.results.get(&h).map(|(s, c)| (*s, c.clone()))
                    }
                    HandleKind::Wait(name) => {
                        let n = claimed.entry(name.as_str()).or_default();
                        let event = self
                            .unconsumed
                            .get(name)
                            .and_then(|q| q.iter().nth(*n))
                            .map(|(s, p)| (*s, Completion::Success(p.clone())));
                        *n += 1;
                        event
                    }
                }
            };
            if let Some((arrival, completion)) = candidate
                && best.as_ref().is_none_or(|b| arrival < b.arrival)
            {
                best = Some(Resolution {
                    winner: h,
                    completion,
                    arrival,
                });
            }
        }
        Ok(best)
    }

    /// The input a `continue-as-new` call asked for, if the run made one.
    pub fn continue_as_new(&self) -> Option<&str> {
        self.calls.iter().rev().find_map(|c| match c {
            HistoryEvent::ContinueAsNewRequested { input, .. } => Some(input.as_str()),
            _ => None,
        })
    }

    /// Raised events no wait has taken, oldest first, as (name, payload).
    pub fn unconsumed_events(&self) -> Vec<(String, String)> {
        let mut all: Vec<(Seq, &String, &String)> = self
            .unconsumed
            .iter()
            .flat_map(|(name, q)| q.iter().map(move |(seq, p)| (*seq, name, p)))
            .collect();
        all.sort_by_key(|(seq, _, _)| *seq);
        all.into_iter()
            .map(|(_, n, p)| (n.clone(), p.clone()))
            .collect()
    }

    /// Timers created and neither fired nor cancelled.
    pub fn pending_timers(&self) -> Vec<Pos> {
        let mut v: Vec<Pos> = self
            .handles
            .iter()
            .filter(|(h, k)| {
                matches!(k, HandleKind::Timer)
                    && !self.results.contains_key(h)
                    && !self.cancelled.contains(h)
            })
            .map(|(h, _)| *h)
            .collect();
        v.sort_unstable();
        v
    }
}

/// Describes two calls that differ. When only an activity's input differs, both inputs are
/// shown from a little before their first difference, so long payloads still show it.
fn describe_pair(recorded: &HistoryEvent, attempted: &HistoryEvent) -> (String, String) {
    use HistoryEvent::ActivityScheduled;
    if let (
        ActivityScheduled {
            name: a, input: ai, ..
        },
        ActivityScheduled {
            name: b, input: bi, ..
        },
    ) = (recorded, attempted)
        && a == b
        && ai != bi
    {
        let at = ai
            .char_indices()
            .zip(bi.chars())
            .find(|((_, x), y)| x != y)
            .map(|((i, _), _)| i)
            .unwrap_or(ai.len().min(bi.len()));
        let from = at.saturating_sub(20);
        let window = |s: &str| {
            let mut start = from.min(s.len());
            while !s.is_char_boundary(start) {
                start -= 1;
            }
            let tail = super::short(&s[start..]);
            if start > 0 {
                format!("…{tail}")
            } else {
                tail
            }
        };
        return (
            format!("activity_scheduled '{a}' with input {}", window(ai)),
            format!("activity_scheduled '{b}' with input {}", window(bi)),
        );
    }
    (recorded.describe(), attempted.describe())
}

/// Whether the call made now is the one recorded: same kind and same identifying arguments.
/// Values the host chose (time, GUIDs, random numbers, await results) are not compared.
fn same_call(recorded: &HistoryEvent, attempted: &HistoryEvent) -> bool {
    use HistoryEvent::*;
    match (recorded, attempted) {
        (Now { .. }, Now { .. }) | (Guid { .. }, Guid { .. }) | (Random { .. }, Random { .. }) => {
            true
        }
        (CustomStatusSet { status: a, .. }, CustomStatusSet { status: b, .. }) => a == b,
        (
            ActivityScheduled {
                name: a,
                input: ai,
                retry: ar,
                ..
            },
            ActivityScheduled {
                name: b,
                input: bi,
                retry: br,
                ..
            },
        ) => a == b && ai == bi && ar == br,
        (TimerCreated { fire_at: a, .. }, TimerCreated { fire_at: b, .. }) => a == b,
        (
            SubOrchestrationScheduled {
                name: a,
                instance_id: ai,
                input: ax,
                ..
            },
            SubOrchestrationScheduled {
                name: b,
                instance_id: bi,
                input: bx,
                ..
            },
        ) => a == b && ai == bi && ax == bx,
        (EventWaitCreated { name: a, .. }, EventWaitCreated { name: b, .. }) => a == b,
        (
            EntitySignalled {
                name: a,
                key: ak,
                operation: ao,
                input: ai,
                ..
            },
            EntitySignalled {
                name: b,
                key: bk,
                operation: bo,
                input: bi,
                ..
            },
        )
        | (
            EntityCalled {
                name: a,
                key: ak,
                operation: ao,
                input: ai,
                ..
            },
            EntityCalled {
                name: b,
                key: bk,
                operation: bo,
                input: bi,
                ..
            },
        ) => a == b && ak == bk && ao == bo && ai == bi,
        (Cancelled { handle: a, .. }, Cancelled { handle: b, .. }) => a == b,
        (CallbackUrlCreated { event: a, .. }, CallbackUrlCreated { event: b, .. }) => a == b,
        (ContinueAsNewRequested { input: a, .. }, ContinueAsNewRequested { input: b, .. }) => {
            a == b
        }
        (AwaitResolved { handles: a, .. }, AwaitResolved { handles: b, .. }) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{raised, started};
    use HistoryEvent::*;

    fn wait(pos: Pos, name: &str) -> HistoryEvent {
        EventWaitCreated {
            pos,
            name: name.into(),
        }
    }

    #[test]
    fn event_raised_before_the_wait_is_delivered() {
        let h = started().with(raised("e", "1")).with(wait(0, "e"));
        let r = h.state().resolve(&[0]).unwrap().unwrap();
        assert_eq!(r.winner, 0);
        assert_eq!(r.completion, Completion::Success("1".into()));
        assert_eq!(r.arrival, 1);
    }

    #[test]
    fn earliest_arrival_wins_the_race() {
        let h = started()
            .with(TimerCreated { pos: 0, fire_at: 5 })
            .with(wait(1, "e"))
            .with(TimerFired { handle: 0 })
            .with(raised("e", "1"));
        let r = h.state().resolve(&[1, 0]).unwrap().unwrap();
        assert_eq!(r.winner, 0, "the timer fired before the event was raised");
    }

    #[test]
    fn a_wait_that_lost_consumes_nothing() {
        let h = started()
            .with(TimerCreated { pos: 0, fire_at: 5 })
            .with(wait(1, "e"))
            .with(TimerFired { handle: 0 })
            .with(AwaitResolved {
                pos: 2,
                handles: vec![1, 0],
                winner: 0,
                completion: Completion::Fired,
                arrival: 3,
                at: 5,
            })
            .with(raised("e", "7"))
            .with(wait(3, "e"));
        let r = h.state().resolve(&[3]).unwrap().unwrap();
        assert_eq!(r.completion, Completion::Success("7".into()));
    }

    #[test]
    fn events_of_one_name_are_delivered_in_order_and_once() {
        let h = started()
            .with(raised("e", "1"))
            .with(raised("e", "2"))
            .with(wait(0, "e"))
            .with(AwaitResolved {
                pos: 1,
                handles: vec![0],
                winner: 0,
                completion: Completion::Success("1".into()),
                arrival: 1,
                at: 0,
            })
            .with(wait(2, "e"));
        let s = h.state();
        let r = s.resolve(&[2]).unwrap().unwrap();
        assert_eq!(r.completion, Completion::Success("2".into()));
        assert_eq!(r.arrival, 2);
        // Two waits in one set take the first and the second event.
        let h = started()
            .with(raised("e", "1"))
            .with(raised("e", "2"))
            .with(wait(0, "e"))
            .with(wait(1, "e"));
        let r = h.state().resolve(&[1, 0]).unwrap().unwrap();
        assert_eq!((r.winner, r.arrival), (1, 1));
    }

    #[test]
    fn nothing_completed_resolves_to_none() {
        let h = started()
            .with(TimerCreated { pos: 0, fire_at: 5 })
            .with(wait(1, "e"))
            .with(raised("other", "1"));
        assert_eq!(h.state().resolve(&[0, 1]).unwrap(), None);
    }

    #[test]
    fn replay_matches_by_kind_and_arguments() {
        let h = started().with(ActivityScheduled {
            pos: 0,
            name: "send".into(),
            input: "\"+1\"".into(),
            retry: None,
        });
        let s = h.state();
        let same = ActivityScheduled {
            pos: 0,
            name: "send".into(),
            input: "\"+1\"".into(),
            retry: None,
        };
        assert!(matches!(s.step(0, &same), Ok(Step::Replay(_))));
        assert!(matches!(s.step(1, &same), Ok(Step::Live)));
        let other = ActivityScheduled {
            pos: 0,
            name: "shout".into(),
            input: "\"+1\"".into(),
            retry: None,
        };
        let err = s.step(0, &other).unwrap_err().to_string();
        assert!(err.contains("nondeterminism: at position 0"), "{err}");
        assert!(err.contains("'send'") && err.contains("'shout'"), "{err}");
    }

    #[test]
    fn a_redacted_history_matches_by_kind_and_name_only() {
        let call = |name: &str, input: &str| ActivityScheduled {
            pos: 0,
            name: name.into(),
            input: input.into(),
            retry: None,
        };
        let mut s = started().with(call("send", "\"sha256:00\"")).state();
        let err = s.step(0, &call("send", "\"+1\"")).unwrap_err().to_string();
        assert!(err.contains("nondeterminism"), "{err}");
        s.match_by_kind_and_name();
        assert!(matches!(
            s.step(0, &call("send", "\"+1\"")),
            Ok(Step::Replay(_))
        ));
        let err = s.step(0, &call("shout", "\"+1\"")).unwrap_err().to_string();
        assert!(err.contains("'send'") && err.contains("'shout'"), "{err}");
        let timer = TimerCreated { pos: 0, fire_at: 5 };
        assert!(s.step(0, &timer).is_err(), "another kind");
    }

    #[test]
    fn a_changed_input_is_shown_where_it_changed() {
        let long = |tail: &str| format!("{{\"padding\":\"{}\",\"x\":{tail}}}", "p".repeat(200));
        let s = started()
            .with(ActivityScheduled {
                pos: 0,
                name: "a".into(),
                input: long("1"),
                retry: None,
            })
            .state();
        let now = ActivityScheduled {
            pos: 0,
            name: "a".into(),
            input: long("2"),
            retry: None,
        };
        let err = s.step(0, &now).unwrap_err().to_string();
        assert!(
            err.contains("\"x\":1}") && err.contains("\"x\":2}"),
            "{err}"
        );
    }

    #[test]
    fn retry_delays_grow_to_the_cap_and_stop() {
        let policy = crate::RetryPolicy {
            max_attempts: 5,
            first_interval_ms: 1000,
            backoff_coefficient: 2.0,
            max_interval_ms: 5000,
            non_retryable: vec!["fatal".into()],
        };
        let delays: Vec<_> = (1..=5)
            .map(|a| policy.retry_delay(a, "busy: try later"))
            .collect();
        assert_eq!(
            delays,
            vec![Some(1000), Some(2000), Some(4000), Some(5000), None]
        );
        assert_eq!(policy.retry_delay(1, "fatal: no such job"), None);
        assert_eq!(policy.retry_delay(1, "no kind at all"), Some(1000));
    }

    #[test]
    fn an_entity_call_is_completed_by_its_result_and_replays_by_its_arguments() {
        let call = |input: &str| EntityCalled {
            pos: 0,
            name: "counter".into(),
            key: "k".into(),
            operation: "add".into(),
            input: input.into(),
        };
        let s = started().with(call("1")).state();
        assert_eq!(s.resolve(&[0]).unwrap(), None, "no result yet");
        assert!(matches!(s.step(0, &call("1")), Ok(Step::Replay(_))));
        let err = s.step(0, &call("2")).unwrap_err().to_string();
        assert!(err.contains("'add' on entity 'counter/k'"), "{err}");
        let s = started()
            .with(call("1"))
            .with(EntityCallFailed {
                handle: 0,
                error: "refused".into(),
            })
            .state();
        let r = s.resolve(&[0]).unwrap().unwrap();
        assert_eq!(r.completion, Completion::Failure("refused".into()));
        assert_eq!(r.arrival, 2);
    }

    #[test]
    fn misuse_is_an_error() {
        let s = started().with(TimerCreated { pos: 0, fire_at: 1 }).state();
        assert_eq!(s.resolve(&[]), Err(UsageError::EmptyAwait));
        assert_eq!(s.resolve(&[9]), Err(UsageError::UnknownHandle(9)));
        let s = started()
            .with(TimerCreated { pos: 0, fire_at: 1 })
            .with(Cancelled { pos: 1, handle: 0 })
            .state();
        assert_eq!(s.resolve(&[0]), Err(UsageError::CancelledHandle(0)));
        assert!(s.pending_timers().is_empty());
    }
}
