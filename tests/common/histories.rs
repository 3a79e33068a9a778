//! Checks over what a cluster wrote: well-formed histories (nothing a node that lost its
//! lease could have added) and counters whose operations each applied once, in order.

use super::client::Signal;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What is wrong with the histories in `rows` (`instance_id, seq, event`), as a node that
/// lost its lease and wrote on would leave them: an event that does not parse, a gap in the
/// sequence, a call out of position, an arrival for no such call, a call answered twice, an
/// await resolved by an arrival it cannot have seen, an event consumed twice, anything after
/// the end.
pub fn malformed(rows: &[(String, i64, String)]) -> Vec<String> {
    use weft::history::HistoryEvent as E;
    let mut by_instance: BTreeMap<&str, Vec<(i64, &str)>> = BTreeMap::new();
    for (id, seq, event) in rows {
        by_instance.entry(id).or_default().push((*seq, event));
    }
    let mut problems = Vec::new();
    for (id, mut events) in by_instance {
        events.sort_by_key(|(seq, _)| *seq);
        let mut problem = |what: String| problems.push(format!("history of {id}: {what}"));
        let first = events[0].0;
        let mut calls: Vec<E> = Vec::new();
        let mut seen: HashMap<i64, E> = HashMap::new();
        let mut answered = HashSet::new();
        let mut consumed = HashSet::new();
        let mut ended = false;
        for (i, (seq, text)) in events.iter().enumerate() {
            if *seq != first + i as i64 {
                problem(format!("seq {seq} where {} was due", first + i as i64));
            }
            let event: E = match serde_json::from_str(text) {
                Ok(e) => e,
                Err(e) => {
                    problem(format!("seq {seq} does not parse ({e}): {text}"));
                    continue;
                }
            };
            if i == 0 && !matches!(event, E::Started { .. }) {
                problem(format!("it begins with {}", event.kind()));
            }
            if ended {
                problem(format!("{} at seq {seq}, after its end", event.kind()));
            }
            if let Some(pos) = event.call_pos() {
                if pos as usize != calls.len() {
                    problem(format!(
                        "call at position {pos} where {} was due",
                        calls.len()
                    ));
                }
                calls.push(event.clone());
            }
            let handle = match &event {
                E::ActivityAttemptFailed { handle, .. } => Some(*handle),
                other => other.completes().map(|(h, _)| h),
            };
            if let Some(handle) = handle {
                let call = calls.get(handle as usize);
                let fits = matches!(
                    (call, &event),
                    (
                        Some(E::ActivityScheduled { .. }),
                        E::ActivityCompleted { .. }
                            | E::ActivityFailed { .. }
                            | E::ActivityAttemptFailed { .. }
                    ) | (Some(E::TimerCreated { .. }), E::TimerFired { .. })
                        | (
                            Some(E::SubOrchestrationScheduled { .. }),
                            E::SubOrchestrationCompleted { .. } | E::SubOrchestrationFailed { .. }
                        )
                        | (
                            Some(E::EntityCalled { .. }),
                            E::EntityCallCompleted { .. } | E::EntityCallFailed { .. }
                        )
                );
                if !fits {
                    problem(format!(
                        "{} at seq {seq} answers handle {handle}, which is {}",
                        event.kind(),
                        call.map_or("no call", E::kind)
                    ));
                }
                if event.completes().is_some() && !answered.insert(handle) {
                    problem(format!(
                        "handle {handle} answered twice (again at seq {seq})"
                    ));
                }
            }
            if let E::AwaitResolved {
                winner, arrival, ..
            } = &event
            {
                let arrival = *arrival as i64;
                match (seen.get(&arrival), calls.get(*winner as usize)) {
                    (
                        Some(E::EventRaised { name, .. }),
                        Some(E::EventWaitCreated { name: n, .. }),
                    ) if name == n => {
                        if !consumed.insert(arrival) {
                            problem(format!("the event at seq {arrival} consumed twice"));
                        }
                    }
                    (Some(a), _) if a.completes().is_some_and(|(h, _)| h == *winner) => {}
                    (a, _) => problem(format!(
                        "the await at seq {seq} is resolved for handle {winner} by seq {arrival}, \
                         which is {}",
                        a.map_or("not before it", E::kind)
                    )),
                }
            }
            ended |= matches!(
                event,
                E::Completed { .. }
                    | E::Failed { .. }
                    | E::Terminated { .. }
                    | E::ContinuedAsNew { .. }
            );
            seen.insert(*seq, event);
        }
    }
    problems
}

/// What is wrong with counter `key`, given its status (`entity`), its operation log (`log`)
/// and every signal sent to it: each signal applied at least once if acknowledged and at most
/// once per request that carried it; each operation applied alone, to the state the one before
/// left; the state what they add up to; nothing waiting.
pub fn signal_problems(
    key: &str,
    entity: &Value,
    log: &[Value],
    signals: &[Signal],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut applied: HashMap<i64, usize> = HashMap::new();
    let mut state = 0i64;
    for (i, op) in log.iter().enumerate() {
        let value = op["input"].as_i64();
        if op["seq"] != i || op["operation"] != "add" || value.is_none() {
            problems.push(format!("counter {key}: operation {i} is {op}"));
            continue;
        }
        let value = value.unwrap_or_default();
        state += value;
        if op["output"] != state {
            problems.push(format!(
                "counter {key}: operation {i} (+{value}) answered {}, not {state}: it did not \
                 apply to the state the one before left",
                op["output"]
            ));
            state = op["output"].as_i64().unwrap_or(state);
        }
        *applied.entry(value).or_default() += 1;
    }
    for signal in signals {
        let n = applied.remove(&signal.value).unwrap_or(0);
        if n == 0 {
            problems.push(format!(
                "counter {key}: the acknowledged signal +{} was never applied",
                signal.value
            ));
        } else if n > signal.sends {
            problems.push(format!(
                "counter {key}: +{} applied {n} times, sent {} time(s)",
                signal.value, signal.sends
            ));
        }
    }
    for (value, n) in applied {
        problems.push(format!(
            "counter {key}: +{value} applied {n} times, never sent"
        ));
    }
    let settled = entity["state"] == state
        && entity["operationCount"] == log.len()
        && entity["pendingOperations"] == 0;
    if !settled {
        problems.push(format!(
            "counter {key}: {entity} after {} operations adding up to {state}",
            log.len()
        ));
    }
    problems
}
