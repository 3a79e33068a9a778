//! Entities: operations applied once, replies that reach their caller (or not), the inbox in
//! order, listing and purging.

use super::{Backend, completing, create, id, next_run, one_instance};
use crate::history::{HistoryEvent, InstanceId};
use crate::store::*;
use std::sync::Arc;

fn key(name: &str, key: &str) -> EntityKey {
    EntityKey {
        name: name.into(),
        key: key.into(),
    }
}

fn op(entity: &EntityKey, operation: &str, input: &str) -> EntityOp {
    EntityOp {
        entity: entity.clone(),
        operation: operation.into(),
        input: input.into(),
        reply: None,
    }
}

fn done(state: &str, output: &str) -> AppliedOp {
    AppliedOp::Done {
        state: Some(state.into()),
        output: output.into(),
    }
}

/// `caller` calls `entity` with the call at position `pos`.
async fn call(store: &Arc<dyn Store>, caller: &InstanceId, entity: &EntityKey, pos: u32) {
    let commit = Commit {
        events: vec![HistoryEvent::EntityCalled {
            pos,
            name: entity.name.clone(),
            key: entity.key.clone(),
            operation: "add".into(),
            input: "1".into(),
        }],
        entity_ops: vec![EntityOp {
            reply: Some(pos),
            ..op(entity, "add", "1")
        }],
        ..Commit::default()
    };
    let committed = store
        .commit(caller.clone(), commit, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(committed.entities, vec![entity.clone()]);
}

/// The entity calls' results in an instance's history.
async fn replies(store: &Arc<dyn Store>, id: &InstanceId) -> Vec<HistoryEvent> {
    store
        .history(id.clone(), 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .filter(|e| {
            matches!(
                e,
                HistoryEvent::EntityCallCompleted { .. } | HistoryEvent::EntityCallFailed { .. }
            )
        })
        .collect()
}

pub async fn two_workers_applying_one_operation_apply_it_once_and_reply_once(
    backend: &dyn Backend,
) {
    let (store, i) = one_instance(backend).await;
    let counter = key("counter", "k");
    call(&store, &i, &counter, 0).await;
    let next = store
        .next_entity_op(counter.clone())
        .await
        .unwrap()
        .unwrap();
    let workers: Vec<_> = ["1", "2"]
        .into_iter()
        .map(|state| {
            let (store, counter) = (store.clone(), counter.clone());
            tokio::spawn(async move {
                let woke = store
                    .finish_entity_op(counter, next.id, next.version, done(state, state), 2)
                    .await
                    .unwrap();
                (state, woke)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for worker in workers {
        let (state, woke) = worker.await.unwrap();
        if let Some(caller) = woke {
            assert_eq!(caller, i);
            winners.push(state);
        }
    }
    assert_eq!(winners.len(), 1, "one worker applied it: {winners:?}");
    let row = store.entity(counter.clone()).await.unwrap().unwrap();
    assert_eq!(row.state.as_deref(), Some(winners[0]));
    assert_eq!((row.operations, row.pending), (1, 0));
    let log = store.entity_log(counter.clone(), 0, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].output.as_deref(), Some(winners[0]));
    assert_eq!(log[0].source.as_deref(), Some("i"));
    assert_eq!(
        replies(&store, &i).await,
        vec![HistoryEvent::EntityCallCompleted {
            handle: 0,
            output: winners[0].into()
        }]
    );
    // Applied once more later (a worker restarted): still nothing.
    assert_eq!(
        store
            .finish_entity_op(counter.clone(), next.id, next.version, done("3", "3"), 3)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.entity_log(counter, 0, 10).await.unwrap().len(), 1);
    assert_eq!(replies(&store, &i).await.len(), 1);
}

pub async fn a_reply_reaches_only_the_run_that_called_while_it_has_not_ended(
    backend: &dyn Backend,
) {
    let (store, continued) = one_instance(backend).await;
    let (completed, terminated, suspended, failing) =
        (id("done"), id("stopped"), id("held"), id("failing"));
    for caller in [&completed, &terminated, &suspended, &failing] {
        create(store.as_ref(), caller, "o", "1", 1).await;
    }
    let counter = key("counter", "k");
    for caller in [&continued, &completed, &terminated, &suspended, &failing] {
        call(&store, caller, &counter, 0).await;
    }
    let next = next_run(1);
    assert!(
        store
            .continue_as_new(continued.clone(), next, 2)
            .await
            .unwrap()
            .is_some()
    );
    store
        .commit(completed.clone(), completing("1"), 2)
        .await
        .unwrap()
        .unwrap();
    store
        .terminate(terminated.clone(), "x".into(), false, 2)
        .await
        .unwrap();
    store
        .set_suspended(suspended.clone(), true, "hold".into(), 2)
        .await
        .unwrap();

    let mut woken = Vec::new();
    for n in 0..5 {
        let next = store
            .next_entity_op(counter.clone())
            .await
            .unwrap()
            .unwrap();
        let applied = if n == 4 {
            AppliedOp::Failed("app: refused".into())
        } else {
            done(&(n + 1).to_string(), &(n + 1).to_string())
        };
        woken.push(
            store
                .finish_entity_op(counter.clone(), next.id, next.version, applied, 3)
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        woken,
        vec![
            None,
            None,
            None,
            Some(suspended.clone()),
            Some(failing.clone())
        ]
    );
    for ended in [&continued, &completed, &terminated] {
        assert!(replies(&store, ended).await.is_empty(), "{ended}");
    }
    assert_eq!(
        replies(&store, &suspended).await,
        vec![HistoryEvent::EntityCallCompleted {
            handle: 0,
            output: "4".into()
        }]
    );
    assert_eq!(
        replies(&store, &failing).await,
        vec![HistoryEvent::EntityCallFailed {
            handle: 0,
            error: "app: refused".into()
        }]
    );
    // Every operation was applied, replied to or not; the failed one left the state.
    let row = store.entity(counter.clone()).await.unwrap().unwrap();
    assert_eq!(
        (row.state.as_deref(), row.operations, row.pending),
        (Some("4"), 5, 0)
    );

    // An operation no component exports is dropped: its call fails, no entity is made.
    let ghost = key("ghost", "k");
    call(&store, &failing, &ghost, 1).await;
    let next = store.next_entity_op(ghost.clone()).await.unwrap().unwrap();
    let unknown = AppliedOp::Unknown("no entity named 'ghost'".into());
    assert_eq!(
        store
            .finish_entity_op(ghost.clone(), next.id, next.version, unknown, 4)
            .await
            .unwrap(),
        Some(failing.clone())
    );
    assert!(store.entity(ghost.clone()).await.unwrap().is_none());
    assert!(store.entity_log(ghost, 0, 10).await.unwrap().is_empty());
    assert_eq!(
        replies(&store, &failing).await[1],
        HistoryEvent::EntityCallFailed {
            handle: 1,
            error: "no entity named 'ghost'".into()
        }
    );
}

pub async fn operations_wait_in_the_inbox_in_order_and_a_failure_keeps_the_state(
    backend: &dyn Backend,
) {
    let store = backend.open().await;
    let (k1, k2) = (key("counter", "1"), key("counter", "2"));
    assert!(store.entities_with_work().await.unwrap().is_empty());
    for (entity, operation, input) in [
        (&k2, "add", "5"),
        (&k1, "add", "1"),
        (&k1, "boom", "0"),
        (&k1, "reset", "null"),
    ] {
        store
            .signal_entity(op(entity, operation, input), 1)
            .await
            .unwrap();
    }
    assert_eq!(
        store.entities_with_work().await.unwrap(),
        vec![k1.clone(), k2.clone()]
    );
    let row = store.entity(k1.clone()).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.operations, row.pending, row.created_at),
        (None, 0, 3, None),
        "waiting operations only"
    );

    let steps = [
        ("add", "1", None, done("1", "1")),
        (
            "boom",
            "0",
            Some("1"),
            AppliedOp::Failed("app: boom".into()),
        ),
        (
            "reset",
            "null",
            Some("1"),
            AppliedOp::Done {
                state: None,
                output: "null".into(),
            },
        ),
    ];
    for (n, (operation, input, state, applied)) in steps.into_iter().enumerate() {
        let next = store.next_entity_op(k1.clone()).await.unwrap().unwrap();
        assert_eq!(
            (
                next.operation.as_str(),
                next.input.as_str(),
                next.state.as_deref()
            ),
            (operation, input, state),
            "step {n}"
        );
        assert_eq!(
            store
                .finish_entity_op(k1.clone(), next.id, next.version, applied, 10 + n as u64)
                .await
                .unwrap(),
            None,
            "a signal answers nobody"
        );
    }
    assert!(store.next_entity_op(k1.clone()).await.unwrap().is_none());
    assert_eq!(store.entities_with_work().await.unwrap(), vec![k2.clone()]);
    let row = store.entity(k1.clone()).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.operations, row.pending),
        (None, 3, 0),
        "deleted state, three operations applied"
    );
    assert_eq!((row.created_at, row.updated_at), (Some(10), Some(12)));
    let log = store.entity_log(k1, 0, 10).await.unwrap();
    let logged: Vec<_> = log
        .iter()
        .map(|l| {
            (
                l.seq,
                l.applied_at,
                l.operation.as_str(),
                l.output.as_deref(),
                l.error.as_deref(),
                l.source.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        logged,
        vec![
            (0, 10, "add", Some("1"), None, None),
            (1, 11, "boom", None, Some("app: boom"), None),
            (2, 12, "reset", Some("null"), None, None),
        ]
    );
}

pub async fn entities_list_by_name_and_key_in_pages_and_logs_page_by_position(
    backend: &dyn Backend,
) {
    let store = backend.open().await;
    let mut all = Vec::new();
    for name in ["b", "a", "c"] {
        for k in ["2", "1", "3", "0"] {
            let entity = key(name, k);
            store
                .signal_entity(op(&entity, "set", "1"), 1)
                .await
                .unwrap();
            let next = store.next_entity_op(entity.clone()).await.unwrap().unwrap();
            store
                .finish_entity_op(entity.clone(), next.id, next.version, done("1", "1"), 2)
                .await
                .unwrap();
            all.push(entity);
        }
    }
    // One with an operation waiting and no state yet is an entity too.
    let waiting = key("b", "9");
    store
        .signal_entity(op(&waiting, "set", "1"), 3)
        .await
        .unwrap();
    all.push(waiting.clone());
    all.sort();

    let pages = async |name: Option<&str>, size: usize| {
        let mut seen = Vec::new();
        let mut after = None;
        for _ in 0..=all.len() {
            let page = store
                .list_entities(name.map(str::to_string), after.clone(), size)
                .await
                .unwrap();
            assert!(page.len() <= size);
            let Some(last) = page.last() else { break };
            after = Some(last.entity.clone());
            seen.extend(page);
        }
        seen
    };
    let listed = pages(None, 5).await;
    let keys: Vec<EntityKey> = listed.iter().map(|r| r.entity.clone()).collect();
    assert_eq!(keys, all, "every entity once, in (name, key) order");
    let row = listed.iter().find(|r| r.entity == waiting).unwrap();
    assert_eq!((row.state.as_deref(), row.pending), (None, 1));
    let bs: Vec<EntityKey> = pages(Some("b"), 2)
        .await
        .into_iter()
        .map(|r| r.entity)
        .collect();
    let expected: Vec<EntityKey> = all.iter().filter(|k| k.name == "b").cloned().collect();
    assert_eq!(bs, expected);
    assert!(pages(Some("z"), 2).await.is_empty());

    let busy = key("a", "0");
    for n in 0..6 {
        store
            .signal_entity(op(&busy, "set", &n.to_string()), 4)
            .await
            .unwrap();
        let next = store.next_entity_op(busy.clone()).await.unwrap().unwrap();
        store
            .finish_entity_op(busy.clone(), next.id, next.version, done("1", "1"), 5)
            .await
            .unwrap();
    }
    let seqs = async |from, limit| -> Vec<u64> {
        store
            .entity_log(busy.clone(), from, limit)
            .await
            .unwrap()
            .iter()
            .map(|l| l.seq)
            .collect()
    };
    assert_eq!(seqs(0, 3).await, [0, 1, 2]);
    assert_eq!(seqs(3, 3).await, [3, 4, 5]);
    assert_eq!(seqs(6, 3).await, [6]);
    assert!(seqs(7, 3).await.is_empty());
    assert_eq!(seqs(2, 100).await, [2, 3, 4, 5, 6]);
}

pub async fn purging_an_entity_deletes_its_state_and_log_while_waiting_operations_apply_later(
    backend: &dyn Backend,
) {
    let store = backend.open().await;
    let counter = key("counter", "k");
    let other = key("counter", "other");
    for entity in [&counter, &counter, &other] {
        store
            .signal_entity(op(entity, "add", "1"), 1)
            .await
            .unwrap();
        let next = store.next_entity_op(entity.clone()).await.unwrap().unwrap();
        store
            .finish_entity_op(entity.clone(), next.id, next.version, done("7", "7"), 2)
            .await
            .unwrap();
    }
    store
        .signal_entity(op(&counter, "add", "2"), 3)
        .await
        .unwrap();
    assert_eq!(
        store.purge_entity(counter.clone()).await.unwrap(),
        (1, 2),
        "its state and two log entries"
    );
    assert!(
        store
            .entity_log(counter.clone(), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let row = store.entity(counter.clone()).await.unwrap().unwrap();
    assert_eq!((row.state, row.operations, row.pending), (None, 0, 1));
    // The waiting operation applies to a new entity.
    let next = store
        .next_entity_op(counter.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((next.input.as_str(), next.state), ("2", None));
    store
        .finish_entity_op(counter.clone(), next.id, next.version, done("2", "2"), 4)
        .await
        .unwrap();
    let log = store.entity_log(counter.clone(), 0, 10).await.unwrap();
    assert_eq!(log.iter().map(|l| l.seq).collect::<Vec<_>>(), [0]);
    assert_eq!(
        store
            .entity(other.clone())
            .await
            .unwrap()
            .unwrap()
            .state
            .as_deref(),
        Some("7"),
        "others untouched"
    );
    assert_eq!(store.entity_log(other, 0, 10).await.unwrap().len(), 1);
    assert_eq!(
        store.purge_entity(key("counter", "never")).await.unwrap(),
        (0, 0)
    );
    assert_eq!(store.purge_entity(counter.clone()).await.unwrap(), (1, 1));
    assert!(store.entity(counter).await.unwrap().is_none());
}

pub async fn a_result_computed_on_a_state_that_changed_since_is_not_stored(backend: &dyn Backend) {
    let store = backend.open().await;
    let counter = key("counter", "k");
    store
        .signal_entity(op(&counter, "add", "1"), 1)
        .await
        .unwrap();
    let first = store
        .next_entity_op(counter.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.version, first.state.as_deref()), (0, None));
    store
        .finish_entity_op(counter.clone(), first.id, first.version, done("1", "1"), 2)
        .await
        .unwrap();
    store
        .signal_entity(op(&counter, "add", "2"), 3)
        .await
        .unwrap();
    let read = store
        .next_entity_op(counter.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((read.version, read.state.as_deref()), (1, Some("1")));
    // The state it was read with goes away before its result is stored.
    store.purge_entity(counter.clone()).await.unwrap();
    store
        .finish_entity_op(counter.clone(), read.id, read.version, done("3", "3"), 4)
        .await
        .unwrap();
    let row = store.entity(counter.clone()).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.operations, row.pending),
        (None, 0, 1),
        "nothing stored, the operation still waits"
    );
    let again = store
        .next_entity_op(counter.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.version, again.state), (read.id, 0, None));
    store
        .finish_entity_op(counter.clone(), again.id, again.version, done("2", "2"), 5)
        .await
        .unwrap();
    let log = store.entity_log(counter.clone(), 0, 10).await.unwrap();
    let outputs: Vec<_> = log.iter().map(|l| l.output.as_deref()).collect();
    assert_eq!(outputs, [Some("2")]);
}
