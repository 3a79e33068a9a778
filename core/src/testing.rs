//! A small builder of canned histories for the specification tests.

use crate::{HistoryEvent, Recorded, RunState, Seq};

/// A history under construction, numbering events in order.
#[derive(Default)]
pub struct History(pub Vec<Recorded>);

impl History {
    /// The history with `event` recorded next.
    pub fn with(mut self, event: HistoryEvent) -> Self {
        let seq = self.0.len() as Seq;
        self.0.push(Recorded {
            seq,
            recorded_at: 0,
            event,
        });
        self
    }

    /// The run state folded from it.
    pub fn state(&self) -> RunState {
        RunState::from_history(&self.0)
    }
}

/// A history holding only the `started` event of orchestration `o` with input `null`.
pub fn started() -> History {
    History::default().with(HistoryEvent::Started {
        name: "o".into(),
        input: "null".into(),
        digest: "0".repeat(64).parse().unwrap(),
        seed: 1,
        at: 0,
        trace: None,
    })
}

/// An `event_raised` of `name` with `payload`.
pub fn raised(name: &str, payload: &str) -> HistoryEvent {
    HistoryEvent::EventRaised {
        name: name.into(),
        payload: payload.into(),
    }
}
