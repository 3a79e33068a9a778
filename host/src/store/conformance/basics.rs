//! The first cases: one write path at a time.

use super::{Backend, one_instance, started};
use crate::history::{HistoryEvent, RuntimeStatus};
use crate::store::*;

pub async fn starting_twice_is_idempotent_for_the_same_input_only(backend: &dyn Backend) {
    let (store, id) = one_instance(backend).await;
    let again = store
        .create_instance(id.clone(), started(), 1)
        .await
        .unwrap();
    assert_eq!(again, CreateOutcome::Exists { same_input: true });
    let HistoryEvent::Started {
        digest,
        seed,
        at,
        name,
        ..
    } = started()
    else {
        unreachable!()
    };
    let other = HistoryEvent::Started {
        name,
        input: "2".into(),
        digest,
        seed,
        at,
        trace: None,
    };
    let again = store.create_instance(id, other, 1).await.unwrap();
    assert_eq!(again, CreateOutcome::Exists { same_input: false });
}

pub async fn an_activity_result_is_recorded_once(backend: &dyn Backend) {
    let (store, id) = one_instance(backend).await;
    let commit = Commit {
        events: vec![HistoryEvent::ActivityScheduled {
            pos: 0,
            name: "a".into(),
            input: "null".into(),
            retry: None,
        }],
        activities: vec![ScheduledActivity {
            pos: 0,
            name: "a".into(),
            input: "null".into(),
            retry: None,
        }],
        ..Commit::default()
    };
    store.commit(id.clone(), commit, 1).await.unwrap().unwrap();
    assert_eq!(store.pending_activities().await.unwrap().len(), 1);
    let first = store
        .complete_activity(id.clone(), 0, Ok("1".into()), 2)
        .await
        .unwrap();
    let second = store
        .complete_activity(id.clone(), 0, Ok("2".into()), 3)
        .await
        .unwrap();
    assert_eq!(
        (first, second),
        (CompleteOutcome::Recorded, CompleteOutcome::Ignored)
    );
    assert!(store.pending_activities().await.unwrap().is_empty());
    let history = store.history(id, 0).await.unwrap();
    let results: Vec<_> = history
        .iter()
        .filter(|r| matches!(r.event, HistoryEvent::ActivityCompleted { .. }))
        .collect();
    assert_eq!(results.len(), 1);
    assert_eq!(
        history.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
}

pub async fn timers_fire_once_when_due_and_die_with_the_instance(backend: &dyn Backend) {
    let (store, id) = one_instance(backend).await;
    let commit = Commit {
        events: vec![
            HistoryEvent::TimerCreated {
                pos: 0,
                fire_at: 10,
            },
            HistoryEvent::TimerCreated {
                pos: 1,
                fire_at: 20,
            },
        ],
        timers: vec![(0, 10), (1, 20)],
        ..Commit::default()
    };
    store.commit(id.clone(), commit, 1).await.unwrap().unwrap();
    assert_eq!(store.next_timer_due().await.unwrap(), Some(10));
    assert!(store.fire_due_timers(9).await.unwrap().woken.is_empty());
    assert_eq!(
        store.fire_due_timers(10).await.unwrap().woken,
        vec![id.clone()]
    );
    assert!(
        store.fire_due_timers(10).await.unwrap().woken.is_empty(),
        "fired once"
    );
    let end = Commit {
        events: vec![HistoryEvent::Completed {
            output: "true".into(),
        }],
        end: Some((RuntimeStatus::Completed, Some("true".into()), None)),
        ..Commit::default()
    };
    store.commit(id.clone(), end, 11).await.unwrap().unwrap();
    assert_eq!(
        store.next_timer_due().await.unwrap(),
        None,
        "pending timer dropped"
    );
    assert_eq!(
        store
            .raise_event(id.clone(), "e".into(), "1".into(), 12)
            .await
            .unwrap(),
        RaiseOutcome::Finished(RuntimeStatus::Completed)
    );
    let late = Commit {
        events: vec![HistoryEvent::Now { pos: 2, value: 0 }],
        ..Commit::default()
    };
    assert_eq!(
        store.commit(id, late, 13).await.unwrap(),
        None,
        "nothing after the end"
    );
}

pub async fn an_entity_operation_is_applied_once_and_answers_its_caller(backend: &dyn Backend) {
    let (store, id) = one_instance(backend).await;
    let entity = EntityKey {
        name: "counter".into(),
        key: "k".into(),
    };
    let call = EntityOp {
        entity: entity.clone(),
        operation: "add".into(),
        input: "2".into(),
        reply: Some(0),
    };
    let commit = Commit {
        events: vec![HistoryEvent::EntityCalled {
            pos: 0,
            name: "counter".into(),
            key: "k".into(),
            operation: "add".into(),
            input: "2".into(),
        }],
        entity_ops: vec![call],
        ..Commit::default()
    };
    let appended = store.commit(id.clone(), commit, 1).await.unwrap().unwrap();
    assert_eq!(appended.entities, vec![entity.clone()]);
    let op = store.next_entity_op(entity.clone()).await.unwrap().unwrap();
    assert_eq!((op.operation.as_str(), op.state), ("add", None));
    let done = AppliedOp::Done {
        state: Some("2".into()),
        output: "2".into(),
    };
    let caller = store
        .finish_entity_op(entity.clone(), op.id, op.version, done.clone(), 2)
        .await
        .unwrap();
    assert_eq!(caller, Some(id.clone()));
    // Stored again (say, by a second worker): nothing changes.
    let again = store
        .finish_entity_op(entity.clone(), op.id, op.version, done, 3)
        .await
        .unwrap();
    assert_eq!(again, None);
    assert!(
        store
            .next_entity_op(entity.clone())
            .await
            .unwrap()
            .is_none()
    );
    let row = store.entity(entity.clone()).await.unwrap().unwrap();
    assert_eq!((row.state.as_deref(), row.operations), (Some("2"), 1));
    assert_eq!(store.entity_log(entity, 0, 10).await.unwrap().len(), 1);
    let history = store.history(id, 0).await.unwrap();
    assert_eq!(
        history.last().unwrap().event,
        HistoryEvent::EntityCallCompleted {
            handle: 0,
            output: "2".into()
        }
    );
}

pub async fn events_to_unknown_instances_are_refused(backend: &dyn Backend) {
    let (store, _id) = one_instance(backend).await;
    let nobody: crate::history::InstanceId = "nobody".parse().unwrap();
    assert_eq!(
        store
            .raise_event(nobody, "e".into(), "1".into(), 1)
            .await
            .unwrap(),
        RaiseOutcome::NotFound
    );
}

pub async fn a_suspend_that_came_while_a_run_ended_holds_the_next_run(backend: &dyn Backend) {
    let (store, id) = one_instance(backend).await;
    let changed = store
        .set_suspended(id.clone(), true, "hold".into(), 1)
        .await
        .unwrap();
    assert_eq!(changed, ChangeOutcome::Changed);
    let next = ContinueAsNew {
        events: Vec::new(),
        children: Vec::new(),
        entity_ops: Vec::new(),
        custom_status: Some("\"round 2\"".into()),
        input: "2".into(),
        seed: 8,
        lease: None,
    };
    assert!(
        store
            .continue_as_new(id.clone(), next, 2)
            .await
            .unwrap()
            .is_some()
    );
    let row = store.instance(id.clone()).await.unwrap().unwrap();
    assert_eq!(row.status, RuntimeStatus::Suspended);
    assert_eq!(row.input, "2");
    assert_eq!(row.custom_status.as_deref(), Some("\"round 2\""));
    let kinds: Vec<&str> = store
        .history(id.clone(), 0)
        .await
        .unwrap()
        .iter()
        .map(|r| r.event.kind())
        .collect();
    assert_eq!(kinds, ["started", "suspended"]);
    // Resumed, it runs.
    let resumed = store
        .set_suspended(id.clone(), false, "go".into(), 3)
        .await
        .unwrap();
    assert_eq!(resumed, ChangeOutcome::Changed);
    let row = store.instance(id).await.unwrap().unwrap();
    assert_eq!(row.status, RuntimeStatus::Running);
}
