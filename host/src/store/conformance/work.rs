//! Work: activity retries, timers in order, results nobody waits for.

use super::{Backend, create, events, id, one_instance};
use crate::history::{HistoryEvent, RetryPolicy, RuntimeStatus};
use crate::store::*;

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        first_interval_ms: 100,
        backoff_coefficient: 2.0,
        max_interval_ms: 1_000,
        non_retryable: vec!["fatal".into()],
    }
}

/// A commit scheduling activity `name` at each of `positions`, with the retry policy.
fn scheduling(positions: &[u32], retry: Option<RetryPolicy>) -> Commit {
    let mut commit = Commit::default();
    for &pos in positions {
        commit.events.push(HistoryEvent::ActivityScheduled {
            pos,
            name: "a".into(),
            input: format!("{pos}"),
            retry: retry.clone(),
        });
        commit.activities.push(ScheduledActivity {
            pos,
            name: "a".into(),
            input: format!("{pos}"),
            retry: retry.clone(),
        });
    }
    commit
}

pub async fn a_failed_attempt_the_policy_allows_runs_again_after_its_delay(backend: &dyn Backend) {
    let (store, i) = one_instance(backend).await;
    store
        .commit(i.clone(), scheduling(&[0, 1, 2], Some(policy())), 10)
        .await
        .unwrap()
        .unwrap();
    let pending = store.pending_activities().await.unwrap();
    assert_eq!(pending.len(), 3);
    assert!(pending.iter().all(|a| a.attempt == 1 && a.name == "a"));
    assert!(
        pending
            .iter()
            .all(|a| a.trace.as_deref() == Some(super::TRACE) && a.orchestration == "o"),
        "an activity carries its instance's orchestration and trace context"
    );
    assert!(
        pending
            .iter()
            .all(|a| a.digest == crate::history::digest_of(b"c") && a.instance == i)
    );

    // 0 fails twice (the policy's limit), 1 fails with a kind never retried, 2 fails then
    // succeeds.
    let fail = |pos, error: &str, now| {
        let (store, i) = (store.clone(), i.clone());
        let error = error.to_string();
        async move {
            store
                .complete_activity(i, pos, Err(error), now)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        fail(0, "io: down", 20).await,
        CompleteOutcome::Retrying(120)
    );
    assert_eq!(fail(1, "fatal: no", 20).await, CompleteOutcome::Recorded);
    assert_eq!(
        fail(2, "io: down", 30).await,
        CompleteOutcome::Retrying(130)
    );
    assert!(
        store.pending_activities().await.unwrap().is_empty(),
        "waiting retries are not pending"
    );
    assert_eq!(store.next_timer_due().await.unwrap(), Some(120));

    let early = store.fire_due_timers(119).await.unwrap();
    assert!(early.retries.is_empty() && early.woken.is_empty());
    let due = store.fire_due_timers(120).await.unwrap();
    assert!(due.woken.is_empty(), "a retry wakes no orchestration");
    let back: Vec<_> = due.retries.iter().map(|a| (a.pos, a.attempt)).collect();
    assert_eq!(back, [(0, 2)]);
    assert_eq!(due.retries[0].input, "0");
    assert_eq!(due.retries[0].trace.as_deref(), Some(super::TRACE));
    assert_eq!(due.retries[0].orchestration, "o");
    assert!(store.fire_due_timers(120).await.unwrap().retries.is_empty());
    let pending: Vec<_> = store
        .pending_activities()
        .await
        .unwrap()
        .iter()
        .map(|a| (a.pos, a.attempt))
        .collect();
    assert_eq!(pending, [(0, 2)], "back to run again");
    assert_eq!(fail(0, "io: down", 125).await, CompleteOutcome::Recorded);

    let due = store.fire_due_timers(1_000).await.unwrap();
    let back: Vec<_> = due.retries.iter().map(|a| (a.pos, a.attempt)).collect();
    assert_eq!(back, [(2, 2)]);
    assert_eq!(
        store
            .complete_activity(i.clone(), 2, Ok("\"fine\"".into()), 1_001)
            .await
            .unwrap(),
        CompleteOutcome::Recorded
    );
    assert!(store.pending_activities().await.unwrap().is_empty());
    assert_eq!(store.next_timer_due().await.unwrap(), None);

    let arrivals: Vec<HistoryEvent> = store.history(i, 0).await.unwrap()[4..]
        .iter()
        .map(|r| r.event.clone())
        .collect();
    assert_eq!(
        arrivals,
        [
            HistoryEvent::ActivityAttemptFailed {
                handle: 0,
                attempt: 1,
                error: "io: down".into(),
                retry_at: 120
            },
            HistoryEvent::ActivityFailed {
                handle: 1,
                error: "fatal: no".into()
            },
            HistoryEvent::ActivityAttemptFailed {
                handle: 2,
                attempt: 1,
                error: "io: down".into(),
                retry_at: 130
            },
            HistoryEvent::ActivityFailed {
                handle: 0,
                error: "io: down".into()
            },
            HistoryEvent::ActivityCompleted {
                handle: 2,
                output: "\"fine\"".into()
            },
        ]
    );
}

pub async fn timers_fire_in_due_order_once_each_and_a_cancelled_one_never(backend: &dyn Backend) {
    let (store, a) = one_instance(backend).await;
    let (b, c) = (id("b"), id("c"));
    create(store.as_ref(), &b, "o", "1", 0).await;
    create(store.as_ref(), &c, "o", "1", 0).await;
    let arm = |timers: Vec<(u32, u64)>| Commit {
        events: timers
            .iter()
            .map(|&(pos, fire_at)| HistoryEvent::TimerCreated { pos, fire_at })
            .collect(),
        timers,
        ..Commit::default()
    };
    let armed = [
        (&a, vec![(0, 30), (1, 10)]),
        (&b, vec![(0, 20), (1, 40)]),
        (&c, vec![(0, 25), (1, 25)]),
    ];
    for (instance, timers) in armed {
        store
            .commit(instance.clone(), arm(timers), 1)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(store.next_timer_due().await.unwrap(), Some(10));
    let fired = store.fire_due_timers(25).await.unwrap();
    assert_eq!(
        fired.woken,
        vec![a.clone(), b.clone(), c.clone()],
        "in due order, each instance once"
    );
    assert!(fired.retries.is_empty());
    assert_eq!(store.next_timer_due().await.unwrap(), Some(30));
    let cancel = Commit {
        events: vec![HistoryEvent::Cancelled { pos: 2, handle: 1 }],
        cancel_timers: vec![1],
        ..Commit::default()
    };
    store.commit(b.clone(), cancel, 26).await.unwrap().unwrap();
    assert_eq!(
        store.fire_due_timers(1_000).await.unwrap().woken,
        vec![a.clone()]
    );
    assert!(store.fire_due_timers(1_000).await.unwrap().woken.is_empty());
    assert_eq!(store.next_timer_due().await.unwrap(), None);

    let fired_in = async |instance| -> Vec<u32> {
        store
            .history(instance, 0)
            .await
            .unwrap()
            .iter()
            .filter_map(|r| match r.event {
                HistoryEvent::TimerFired { handle } => Some(handle),
                _ => None,
            })
            .collect()
    };
    assert_eq!(fired_in(a).await, [1, 0]);
    assert_eq!(fired_in(b).await, [0]);
    assert_eq!(fired_in(c).await, [0, 1]);
}

pub async fn a_result_nobody_waits_for_is_ignored(backend: &dyn Backend) {
    let (store, i) = one_instance(backend).await;
    store
        .commit(i.clone(), scheduling(&[0], None), 1)
        .await
        .unwrap()
        .unwrap();
    let before = store.history(i.clone(), 0).await.unwrap();
    let ignored = [
        (id("nobody"), 0),
        (i.clone(), 7), // never scheduled
    ];
    for (instance, pos) in ignored {
        assert_eq!(
            store
                .complete_activity(instance, pos, Ok("1".into()), 2)
                .await
                .unwrap(),
            CompleteOutcome::Ignored
        );
    }
    assert_eq!(store.history(i.clone(), 0).await.unwrap(), before);
    assert_eq!(store.pending_activities().await.unwrap().len(), 1);

    // A suspended instance still takes its results; they wait in the history.
    store
        .set_suspended(i.clone(), true, "hold".into(), 3)
        .await
        .unwrap();
    assert_eq!(
        store
            .complete_activity(i.clone(), 0, Ok("1".into()), 4)
            .await
            .unwrap(),
        CompleteOutcome::Recorded
    );
    let history = store.history(i.clone(), 0).await.unwrap();
    assert_eq!(
        history.last().unwrap().event,
        HistoryEvent::ActivityCompleted {
            handle: 0,
            output: "1".into()
        }
    );
    assert_eq!(
        store.instance(i.clone()).await.unwrap().unwrap().status,
        RuntimeStatus::Suspended
    );
    // A timer of an instance that ended meanwhile does not fire.
    let timer = Commit {
        timers: vec![(1, 5)],
        ..events(vec![HistoryEvent::TimerCreated { pos: 1, fire_at: 5 }])
    };
    store.commit(i.clone(), timer, 4).await.unwrap().unwrap();
    store
        .terminate(i.clone(), "stop".into(), false, 4)
        .await
        .unwrap();
    let history = store.history(i.clone(), 0).await.unwrap();
    assert!(store.fire_due_timers(5).await.unwrap().woken.is_empty());
    assert_eq!(store.history(i, 0).await.unwrap(), history);
}
