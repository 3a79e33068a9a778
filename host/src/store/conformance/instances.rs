//! Instances: concurrent writers, continue-as-new, and what an ended instance refuses.

use super::{
    Backend, assert_dense, completing, create, events, id, kinds, one_instance, started_as,
};
use crate::history::{Completion, HistoryEvent, InstanceId, RuntimeStatus};
use crate::store::*;
use std::collections::{HashMap, HashSet};

pub async fn concurrent_writers_on_one_instance_get_dense_positions_and_each_write_once(
    backend: &dyn Backend,
) {
    let (store, id) = one_instance(backend).await;
    const TASKS: u32 = 8;
    const EACH: u32 = 25;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, id) = (store.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut raised = Vec::new();
            for n in 0..EACH {
                let value = format!("{t}-{n}");
                if t % 2 == 0 {
                    let outcome = store
                        .raise_event(id.clone(), "e".into(), value.clone(), 1)
                        .await
                        .unwrap();
                    let RaiseOutcome::Raised(seq) = outcome else {
                        panic!("raise {value}: {outcome:?}");
                    };
                    raised.push((seq, value));
                } else {
                    // Two events per commit: they must stay side by side.
                    let commit = events(vec![
                        HistoryEvent::Guid {
                            pos: t * EACH + n,
                            value: value.clone(),
                        },
                        HistoryEvent::Random {
                            pos: t * EACH + n,
                            value: u64::from(t * EACH + n),
                        },
                    ]);
                    store
                        .commit(id.clone(), commit, 1)
                        .await
                        .unwrap()
                        .expect("the instance runs");
                }
            }
            raised
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    let history = store.history(id, 0).await.unwrap();
    assert_dense(&history);
    let writers = TASKS / 2;
    assert_eq!(
        history.len() as u32,
        1 + writers * EACH + writers * EACH * 2,
        "every acknowledged write, nothing more"
    );
    // Each raised event sits at the position its raise answered, once.
    let mut seen = HashSet::new();
    for (seq, value) in &acknowledged {
        assert!(seen.insert(*seq), "position {seq} answered twice");
        assert_eq!(
            history[*seq as usize].event,
            HistoryEvent::EventRaised {
                name: "e".into(),
                payload: value.clone()
            }
        );
    }
    let raised = history
        .iter()
        .filter(|r| matches!(r.event, HistoryEvent::EventRaised { .. }))
        .count();
    assert_eq!(raised, acknowledged.len());
    // Each commit's two events are adjacent and each commit is there once.
    let mut commits = HashSet::new();
    for (i, r) in history.iter().enumerate() {
        if let HistoryEvent::Guid { pos, value } = &r.event {
            assert_eq!(
                history[i + 1].event,
                HistoryEvent::Random {
                    pos: *pos,
                    value: u64::from(*pos)
                },
                "a commit's events stay together"
            );
            assert!(commits.insert(value.clone()), "{value} committed twice");
        }
    }
    assert_eq!(commits.len() as u32, writers * EACH);
}

pub async fn continue_as_new_carries_every_event_raised_during_it_once(backend: &dyn Backend) {
    let (store, id) = one_instance(backend).await;
    // The run consumes one event before the race: that one stays behind.
    let RaiseOutcome::Raised(arrival) = store
        .raise_event(id.clone(), "e".into(), "taken".into(), 1)
        .await
        .unwrap()
    else {
        panic!("raised")
    };
    let take = events(vec![
        HistoryEvent::EventWaitCreated {
            pos: 0,
            name: "e".into(),
        },
        HistoryEvent::AwaitResolved {
            pos: 1,
            handles: vec![0],
            winner: 0,
            completion: Completion::Success("taken".into()),
            arrival,
            at: 1,
        },
    ]);
    store.commit(id.clone(), take, 1).await.unwrap().unwrap();

    const TASKS: usize = 4;
    const EACH: usize = 30;
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, id, acks) = (store.clone(), id.clone(), acks.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                let payload = format!("{t}-{n}");
                let outcome = store
                    .raise_event(id.clone(), "e".into(), payload.clone(), 2)
                    .await
                    .unwrap();
                assert!(matches!(outcome, RaiseOutcome::Raised(_)), "{outcome:?}");
                acks.send(payload).unwrap();
            }
        }));
    }
    drop(acks);
    // Some events are in before the run ends, the rest race with it.
    let mut raised = Vec::new();
    while raised.len() < 20 {
        raised.push(acked.recv().await.expect("raisers run"));
    }
    let next = ContinueAsNew {
        children: Vec::new(),
        events: vec![HistoryEvent::ContinueAsNewRequested {
            pos: 2,
            input: "2".into(),
        }],
        entity_ops: Vec::new(),
        custom_status: None,
        input: "2".into(),
        seed: 9,
        lease: None,
    };
    assert!(
        store
            .continue_as_new(id.clone(), next, 3)
            .await
            .unwrap()
            .is_some()
    );
    // And some surely after.
    for n in 0..3 {
        let payload = format!("late-{n}");
        store
            .raise_event(id.clone(), "e".into(), payload.clone(), 4)
            .await
            .unwrap();
        raised.push(payload);
    }
    for task in tasks {
        task.await.unwrap();
    }
    while let Some(payload) = acked.recv().await {
        raised.push(payload);
    }
    assert_eq!(raised.len(), TASKS * EACH + 3);

    let payloads = |h: &[crate::history::Recorded]| -> Vec<String> {
        h.iter()
            .filter_map(|r| match &r.event {
                HistoryEvent::EventRaised { payload, .. } => Some(payload.clone()),
                _ => None,
            })
            .collect()
    };
    let history = store.history(id.clone(), 0).await.unwrap();
    assert_dense(&history);
    assert!(
        matches!(&history[0].event, HistoryEvent::Started { input, seed: 9, .. } if input == "2"),
        "{:?}",
        history[0]
    );
    let carried = payloads(&history);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for p in &carried {
        *counts.entry(p.as_str()).or_default() += 1;
    }
    for p in &raised {
        assert_eq!(counts.get(p.as_str()), Some(&1), "{p}: in the new run once");
    }
    assert_eq!(carried.len(), raised.len(), "nothing else: {carried:?}");
    assert!(
        !counts.contains_key("taken"),
        "the consumed event stays behind"
    );
    // Events from one raiser keep their order.
    for t in 0..TASKS {
        let mine: Vec<&String> = carried
            .iter()
            .filter(|p| p.starts_with(&format!("{t}-")))
            .collect();
        let expected: Vec<String> = (0..EACH).map(|n| format!("{t}-{n}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }

    let archived = store.archived_history(id.clone()).await.unwrap();
    assert!(archived.iter().all(|(generation, _)| *generation == 0));
    let old: Vec<_> = archived.into_iter().map(|(_, r)| r).collect();
    assert_dense(&old);
    let old_payloads = payloads(&old);
    assert_eq!(old_payloads[0], "taken");
    assert!(old_payloads.len() >= 21, "the first 20 were in the old run");
    assert_eq!(
        old_payloads.iter().collect::<HashSet<_>>().len(),
        old_payloads.len(),
        "no event twice in the old run"
    );
    assert!(old.iter().any(|r| r.event
        == HistoryEvent::ContinuedAsNew {
            input: "2".into(),
            generation: 0
        }));
    let row = store.instance(id).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.input.as_str()),
        (RuntimeStatus::Running, "2")
    );
}

pub async fn each_run_is_archived_as_a_generation_and_an_ended_instance_does_not_continue(
    backend: &dyn Backend,
) {
    let (store, id) = one_instance(backend).await;
    let next = |input: &str, status: Option<&str>| ContinueAsNew {
        events: vec![HistoryEvent::Now { pos: 0, value: 5 }],
        children: Vec::new(),
        entity_ops: Vec::new(),
        custom_status: status.map(str::to_string),
        input: input.into(),
        seed: 1,
        lease: None,
    };
    assert!(
        store
            .continue_as_new(id.clone(), next("2", Some("\"two\"")), 1)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .continue_as_new(id.clone(), next("3", None), 2)
            .await
            .unwrap()
            .is_some()
    );
    let archived = store.archived_history(id.clone()).await.unwrap();
    let generations: Vec<u32> = archived.iter().map(|(g, _)| *g).collect();
    assert_eq!(generations, [0, 0, 0, 1, 1, 1], "oldest first");
    for g in [0u32, 1] {
        let run: Vec<_> = archived
            .iter()
            .filter(|(generation, _)| *generation == g)
            .map(|(_, r)| r.clone())
            .collect();
        assert_dense(&run);
        assert_eq!(kinds(&run), ["started", "now", "continued_as_new"]);
        let input = (g + 2).to_string();
        assert_eq!(
            run[2].event,
            HistoryEvent::ContinuedAsNew {
                input,
                generation: g
            }
        );
    }
    let history = store.history(id.clone(), 0).await.unwrap();
    assert_eq!(kinds(&history), ["started"]);
    let row = store.instance(id.clone()).await.unwrap().unwrap();
    assert_eq!(row.input, "3");
    assert_eq!(
        row.custom_status.as_deref(),
        Some("\"two\""),
        "the last custom status set stays shown"
    );

    store
        .commit(id.clone(), completing("\"done\""), 3)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .continue_as_new(id.clone(), next("4", None), 4)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.archived_history(id.clone()).await.unwrap().len(), 6);
    assert_eq!(
        kinds(&store.history(id.clone(), 0).await.unwrap()),
        ["started", "completed"]
    );
    let row = store.instance(id).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.output.as_deref(), row.input.as_str()),
        (RuntimeStatus::Completed, Some("\"done\""), "3")
    );
    assert!(
        store
            .continue_as_new(super::id("nobody"), next("1", None), 5)
            .await
            .unwrap()
            .is_none()
    );
}

/// A commit that starts everything there is to start: an activity, a timer, a child, an
/// entity call, a custom status.
pub(super) fn everything(child: &str) -> Commit {
    let entity = EntityKey {
        name: "counter".into(),
        key: "k".into(),
    };
    Commit {
        events: vec![HistoryEvent::ActivityScheduled {
            pos: 0,
            name: "a".into(),
            input: "1".into(),
            retry: None,
        }],
        activities: vec![ScheduledActivity {
            pos: 0,
            name: "a".into(),
            input: "1".into(),
            retry: None,
        }],
        timers: vec![(1, 50)],
        custom_status: Some("\"busy\"".into()),
        children: vec![ChildStart {
            pos: 2,
            id: id(child),
            name: "child".into(),
            started: Some(started_as("child", "1")),
        }],
        entity_ops: vec![EntityOp {
            entity,
            operation: "add".into(),
            input: "1".into(),
            reply: Some(3),
        }],
        ..Commit::default()
    }
}

pub async fn an_ended_instance_takes_no_commit_and_its_work_is_dropped(backend: &dyn Backend) {
    let (store, i) = one_instance(backend).await;
    // Work started, then the end: the work goes with it.
    let mut work = everything("i:child");
    work.children.clear();
    work.entity_ops.clear();
    store.commit(i.clone(), work, 1).await.unwrap().unwrap();
    assert_eq!(store.pending_activities().await.unwrap().len(), 1);
    assert_eq!(store.next_timer_due().await.unwrap(), Some(50));
    let end = Commit {
        events: vec![HistoryEvent::Failed {
            error: "app: no".into(),
        }],
        end: Some((RuntimeStatus::Failed, None, Some("app: no".into()))),
        ..Commit::default()
    };
    store.commit(i.clone(), end, 2).await.unwrap().unwrap();
    assert!(store.pending_activities().await.unwrap().is_empty());
    assert_eq!(store.next_timer_due().await.unwrap(), None);
    let row = store.instance(i.clone()).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.failure.as_deref()),
        (RuntimeStatus::Failed, Some("app: no"))
    );
    let before = store.history(i.clone(), 0).await.unwrap();

    // A late commit writes none of what it holds.
    let mut late = everything("i:late");
    late.custom_status = Some("\"late\"".into());
    assert_eq!(store.commit(i.clone(), late, 3).await.unwrap(), None);
    assert_eq!(store.history(i.clone(), 0).await.unwrap(), before);
    assert!(store.pending_activities().await.unwrap().is_empty());
    assert_eq!(store.next_timer_due().await.unwrap(), None);
    assert!(store.instance(id("i:late")).await.unwrap().is_none());
    assert!(store.entities_with_work().await.unwrap().is_empty());
    let row = store.instance(i.clone()).await.unwrap().unwrap();
    assert_eq!(row.custom_status.as_deref(), Some("\"busy\""));
    assert_eq!(row.status, RuntimeStatus::Failed);
    assert_eq!(
        store
            .complete_activity(i.clone(), 0, Ok("1".into()), 4)
            .await
            .unwrap(),
        CompleteOutcome::Ignored
    );
    assert_eq!(store.history(i, 0).await.unwrap(), before);

    // A commit to no instance creates none.
    assert_eq!(
        store
            .commit(id("nobody"), everything("nobody:child"), 5)
            .await
            .unwrap(),
        None
    );
    assert!(store.instance(id("nobody")).await.unwrap().is_none());
    assert!(store.instance(id("nobody:child")).await.unwrap().is_none());
}

pub async fn unfinished_instances_are_those_pending_running_or_suspended(backend: &dyn Backend) {
    let (store, pending) = one_instance(backend).await;
    for (name, now) in [("running", 1), ("suspended", 2), ("done", 3), ("failed", 4)] {
        create(store.as_ref(), &id(name), "o", "1", now).await;
    }
    create(store.as_ref(), &id("stopped"), "o", "1", 5).await;
    store
        .commit(
            id("running"),
            events(vec![HistoryEvent::Now { pos: 0, value: 1 }]),
            6,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .set_suspended(id("suspended"), true, "hold".into(), 6)
            .await
            .unwrap(),
        ChangeOutcome::Changed
    );
    store
        .commit(id("done"), completing("1"), 6)
        .await
        .unwrap()
        .unwrap();
    let failing = Commit {
        end: Some((RuntimeStatus::Failed, None, Some("app: x".into()))),
        ..Commit::default()
    };
    store
        .commit(id("failed"), failing, 6)
        .await
        .unwrap()
        .unwrap();
    store
        .terminate(id("stopped"), "x".into(), false, 6)
        .await
        .unwrap();
    let unfinished: HashSet<InstanceId> = store
        .unfinished_instances()
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        unfinished,
        HashSet::from([pending, id("running"), id("suspended")])
    );
}
