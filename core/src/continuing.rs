//! Continue-as-new: how a run that continues as new closes, and what the next run starts
//! with: its `started` event, a suspension that came while the run ended, and the raised
//! events no wait of the ending run took, in the order they arrived.

use crate::{ComponentDigest, HistoryEvent, Millis, Recorded, RunState};

/// The event that closes a run continuing as new with `input`, whose history is archived as
/// `generation`.
pub fn closing(input: &str, generation: u32) -> HistoryEvent {
    HistoryEvent::ContinuedAsNew {
        input: input.to_string(),
        generation,
    }
}

/// What the next run is started from.
#[derive(Debug, Clone)]
pub struct NextRun<'a> {
    pub name: &'a str,
    pub input: &'a str,
    pub digest: &'a ComponentDigest,
    pub seed: u64,
    pub now: Millis,
    /// The instance was suspended while the run ended: the next run starts suspended.
    pub suspended: bool,
}

/// The next run's first events, given the ending run's whole history (its closing events
/// included, and events that arrived while it ended).
pub fn next_run(ending: &[Recorded], next: NextRun<'_>) -> Vec<HistoryEvent> {
    let mut events = vec![HistoryEvent::Started {
        name: next.name.to_string(),
        input: next.input.to_string(),
        digest: next.digest.clone(),
        seed: next.seed,
        at: next.now,
        // The next run stays in the instance's trace.
        trace: match ending.first().map(|r| &r.event) {
            Some(HistoryEvent::Started { trace, .. }) => trace.clone(),
            _ => None,
        },
    }];
    if next.suspended {
        events.push(HistoryEvent::Suspended {
            reason: "suspended while the previous run continued as new".into(),
        });
    }
    events.extend(
        RunState::from_history(ending)
            .unconsumed_events()
            .into_iter()
            .map(|(name, payload)| HistoryEvent::EventRaised { name, payload }),
    );
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{raised, started};
    use HistoryEvent::*;

    fn next(digest: &ComponentDigest, suspended: bool) -> NextRun<'_> {
        NextRun {
            name: "o",
            input: "2",
            digest,
            seed: 9,
            now: 500,
            suspended,
        }
    }

    fn digest() -> ComponentDigest {
        "0".repeat(64).parse().unwrap()
    }

    #[test]
    fn the_next_run_starts_with_the_new_input_and_seed() {
        let h = started().with(ContinueAsNewRequested {
            pos: 0,
            input: "2".into(),
        });
        let d = digest();
        assert_eq!(
            next_run(&h.0, next(&d, false)),
            vec![Started {
                name: "o".into(),
                input: "2".into(),
                digest: d.clone(),
                seed: 9,
                at: 500,
                trace: None,
            }]
        );
    }

    #[test]
    fn the_next_run_stays_in_the_instances_trace() {
        let trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let h = crate::testing::History::default().with(Started {
            name: "o".into(),
            input: "1".into(),
            digest: digest(),
            seed: 1,
            at: 0,
            trace: Some(trace.into()),
        });
        let d = digest();
        let events = next_run(&h.0, next(&d, false));
        assert!(
            matches!(&events[0], Started { trace: Some(t), .. } if t == trace),
            "{events:?}"
        );
    }

    #[test]
    fn events_no_wait_took_carry_over_in_arrival_order() {
        let h = started()
            .with(raised("b", "1"))
            .with(EventWaitCreated {
                pos: 0,
                name: "a".into(),
            })
            .with(raised("a", "taken"))
            .with(AwaitResolved {
                pos: 1,
                handles: vec![0],
                winner: 0,
                completion: crate::Completion::Success("taken".into()),
                arrival: 3,
                at: 0,
            })
            .with(raised("a", "2"))
            .with(ContinueAsNewRequested {
                pos: 2,
                input: "2".into(),
            })
            // Arrived while the run was ending.
            .with(closing("2", 0))
            .with(raised("b", "3"));
        let d = digest();
        let events = next_run(&h.0, next(&d, false));
        assert_eq!(
            events[1..],
            [raised("b", "1"), raised("a", "2"), raised("b", "3")]
        );
    }

    #[test]
    fn a_suspension_during_the_end_holds_the_next_run() {
        let h = started();
        let d = digest();
        let events = next_run(&h.0, next(&d, true));
        assert!(matches!(events[1], Suspended { .. }), "{events:?}");
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn the_closing_event_names_the_archived_generation() {
        assert_eq!(
            closing("7", 3),
            ContinuedAsNew {
                input: "7".into(),
                generation: 3
            }
        );
    }
}
