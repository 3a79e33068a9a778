//! Children and terminate: a child starts in its parent's commit, its end answers the parent;
//! terminate ends one instance or a whole tree.

use super::instances::everything;
use super::{Backend, completing, create, id, one_instance, started_as};
use crate::history::{HistoryEvent, InstanceId, RuntimeStatus};
use crate::store::*;
use std::collections::HashSet;
use std::sync::Arc;

pub async fn a_child_starts_in_its_parents_commit_and_its_end_answers_the_parent(
    backend: &dyn Backend,
) {
    let (store, p) = one_instance(backend).await;
    let child = |pos: u32, name: &str, deployed: bool| ChildStart {
        pos,
        id: id(&format!("i:{pos}")),
        name: name.into(),
        started: deployed.then(|| started_as(name, "\"x\"")),
    };
    let commit = Commit {
        children: vec![child(0, "child", true), child(1, "child", true)],
        ..Commit::default()
    };
    let committed = store.commit(p.clone(), commit, 1).await.unwrap().unwrap();
    assert_eq!(committed.wake, vec![id("i:0"), id("i:1")]);
    let row = store.instance(id("i:0")).await.unwrap().unwrap();
    assert_eq!(
        (row.name.as_str(), row.input.as_str(), row.status),
        ("child", "\"x\"", RuntimeStatus::Pending)
    );
    assert_eq!(
        store.history(id("i:0"), 0).await.unwrap()[0].event,
        started_as("child", "\"x\"")
    );

    // One completes, one fails: each answers the handle that started it.
    let done = store
        .commit(id("i:0"), completing("\"ok\""), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.wake, vec![p.clone()]);
    let failing = Commit {
        events: vec![HistoryEvent::Failed {
            error: "app: no".into(),
        }],
        end: Some((RuntimeStatus::Failed, None, Some("app: no".into()))),
        ..Commit::default()
    };
    let failed = store.commit(id("i:1"), failing, 3).await.unwrap().unwrap();
    assert_eq!(failed.wake, vec![p.clone()]);

    // A child no component exports fails its handle at once and wakes the parent itself.
    let missing = Commit {
        children: vec![child(2, "missing", false)],
        ..Commit::default()
    };
    let committed = store.commit(p.clone(), missing, 4).await.unwrap().unwrap();
    assert_eq!(committed.wake, vec![p.clone()]);
    assert!(store.instance(id("i:2")).await.unwrap().is_none());

    let history = store.history(p, 0).await.unwrap();
    let arrivals: Vec<_> = history[1..].iter().map(|r| r.event.clone()).collect();
    assert_eq!(
        arrivals,
        vec![
            HistoryEvent::SubOrchestrationCompleted {
                handle: 0,
                output: "\"ok\"".into()
            },
            HistoryEvent::SubOrchestrationFailed {
                handle: 1,
                error: "app: no".into()
            },
            HistoryEvent::SubOrchestrationFailed {
                handle: 2,
                error: "no orchestration named 'missing' is deployed".into()
            },
        ]
    );
}

pub async fn a_child_whose_id_is_taken_fails_its_handle_and_leaves_the_other_alone(
    backend: &dyn Backend,
) {
    let (store, p) = one_instance(backend).await;
    let taken = id("taken");
    create(store.as_ref(), &taken, "other", "\"mine\"", 1).await;
    let commit = Commit {
        events: vec![HistoryEvent::SubOrchestrationScheduled {
            pos: 0,
            name: "child".into(),
            instance_id: "taken".into(),
            input: "\"x\"".into(),
        }],
        children: vec![ChildStart {
            pos: 0,
            id: taken.clone(),
            name: "child".into(),
            started: Some(started_as("child", "\"x\"")),
        }],
        ..Commit::default()
    };
    let committed = store.commit(p.clone(), commit, 2).await.unwrap().unwrap();
    assert_eq!(committed.wake, vec![p.clone()], "the parent learns at once");
    let history = store.history(p.clone(), 0).await.unwrap();
    assert_eq!(
        history.last().unwrap().event,
        HistoryEvent::SubOrchestrationFailed {
            handle: 0,
            error: "instance id 'taken' is already in use".into()
        }
    );
    let row = store.instance(taken.clone()).await.unwrap().unwrap();
    assert_eq!(
        (row.name.as_str(), row.input.as_str()),
        ("other", "\"mine\"")
    );
    assert_eq!(store.history(taken.clone(), 0).await.unwrap().len(), 1);
    // It is no child of the parent: its end tells nobody.
    let ended = store
        .commit(taken, completing("1"), 3)
        .await
        .unwrap()
        .unwrap();
    assert!(ended.wake.is_empty(), "{ended:?}");
    assert_eq!(store.history(p, 0).await.unwrap(), history);
}

/// Starts children `ids` of `parent` at positions 0.. in one commit.
pub(super) async fn start_children(store: &Arc<dyn Store>, parent: &InstanceId, ids: &[&str]) {
    let children = ids
        .iter()
        .enumerate()
        .map(|(pos, child)| ChildStart {
            pos: pos as u32,
            id: id(child),
            name: "child".into(),
            started: Some(started_as("child", "1")),
        })
        .collect();
    let commit = Commit {
        children,
        ..Commit::default()
    };
    store
        .commit(parent.clone(), commit, 1)
        .await
        .unwrap()
        .unwrap();
}

pub async fn terminate_ends_one_instance_and_tells_its_parent(backend: &dyn Backend) {
    let (store, p) = one_instance(backend).await;
    start_children(&store, &p, &["c1", "c2"]).await;
    let mut work = everything("c1:grandchild");
    work.children.clear();
    work.entity_ops.clear();
    store.commit(id("c1"), work, 2).await.unwrap().unwrap();

    let (outcome, told) = store
        .terminate(id("c1"), "stop".into(), false, 3)
        .await
        .unwrap();
    let history = store.history(id("c1"), 0).await.unwrap();
    assert_eq!(outcome, RaiseOutcome::Raised(history.last().unwrap().seq));
    assert_eq!(
        history.last().unwrap().event,
        HistoryEvent::Terminated {
            reason: "stop".into()
        }
    );
    assert_eq!(
        told,
        Terminated {
            parent: Some(p.clone()),
            children: Vec::new()
        }
    );
    let row = store.instance(id("c1")).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.failure.as_deref()),
        (RuntimeStatus::Terminated, Some("stop"))
    );
    assert!(store.pending_activities().await.unwrap().is_empty());
    assert_eq!(store.next_timer_due().await.unwrap(), None);
    assert_eq!(
        store
            .history(p.clone(), 0)
            .await
            .unwrap()
            .last()
            .unwrap()
            .event,
        HistoryEvent::SubOrchestrationFailed {
            handle: 0,
            error: "terminated: stop".into()
        }
    );

    // Once ended, it stays so.
    assert_eq!(
        store
            .terminate(id("c1"), "again".into(), true, 4)
            .await
            .unwrap(),
        (
            RaiseOutcome::Finished(RuntimeStatus::Terminated),
            Terminated::default()
        )
    );
    assert_eq!(store.history(id("c1"), 0).await.unwrap(), history);
    assert_eq!(
        store
            .raise_event(id("c1"), "e".into(), "1".into(), 4)
            .await
            .unwrap(),
        RaiseOutcome::Finished(RuntimeStatus::Terminated)
    );
    assert_eq!(
        store
            .terminate(id("nobody"), "x".into(), false, 4)
            .await
            .unwrap(),
        (RaiseOutcome::NotFound, Terminated::default())
    );

    // Without `recursive`, the parent ends alone; its running child goes on.
    let (outcome, told) = store
        .terminate(p.clone(), "enough".into(), false, 5)
        .await
        .unwrap();
    assert!(matches!(outcome, RaiseOutcome::Raised(_)));
    assert_eq!(told, Terminated::default());
    let c2 = store.instance(id("c2")).await.unwrap().unwrap();
    assert_eq!(c2.status, RuntimeStatus::Pending);
    let parent_history = store.history(p.clone(), 0).await.unwrap();
    let ended = store
        .commit(id("c2"), completing("1"), 6)
        .await
        .unwrap()
        .unwrap();
    assert!(ended.wake.is_empty(), "an ended parent is not told");
    assert_eq!(store.history(p, 0).await.unwrap(), parent_history);
}

pub async fn a_recursive_terminate_ends_every_running_descendant(backend: &dyn Backend) {
    let (store, p) = one_instance(backend).await;
    start_children(&store, &p, &["c1", "c2"]).await;
    start_children(&store, &id("c1"), &["g1", "g2"]).await;
    store
        .commit(id("g2"), completing("1"), 2)
        .await
        .unwrap()
        .unwrap();
    let (outcome, told) = store
        .terminate(p.clone(), "halt".into(), true, 3)
        .await
        .unwrap();
    assert!(matches!(outcome, RaiseOutcome::Raised(_)));
    assert_eq!(told.parent, None, "a root has no parent");
    let at = |child: &str| told.children.iter().position(|c| *c == id(child));
    assert!(at("c1") < at("g1"), "parents before children: {told:?}");
    let children: HashSet<InstanceId> = told.children.into_iter().collect();
    assert_eq!(children, HashSet::from([id("c1"), id("c2"), id("g1")]));
    for (child, parent) in [("c1", "i"), ("c2", "i"), ("g1", "c1")] {
        let row = store.instance(id(child)).await.unwrap().unwrap();
        let reason = format!("parent instance '{parent}' was terminated");
        assert_eq!(row.status, RuntimeStatus::Terminated, "{child}");
        assert_eq!(row.failure.as_deref(), Some(reason.as_str()), "{child}");
        assert_eq!(
            store
                .history(id(child), 0)
                .await
                .unwrap()
                .last()
                .unwrap()
                .event,
            HistoryEvent::Terminated { reason }
        );
    }
    let g2 = store.instance(id("g2")).await.unwrap().unwrap();
    assert_eq!(g2.status, RuntimeStatus::Completed, "an ended one stays so");
    let history = store.history(p, 0).await.unwrap();
    assert_eq!(
        history.last().unwrap().event,
        HistoryEvent::Terminated {
            reason: "halt".into()
        },
        "nothing after the end"
    );
    assert!(store.unfinished_instances().await.unwrap().is_empty());
}

pub async fn a_child_started_by_a_run_that_continues_as_new_runs_and_tells_no_later_run(
    backend: &dyn Backend,
) {
    let (store, p) = one_instance(backend).await;
    // The ending run also started a child in an earlier activation; it waits on its own.
    let early = Commit {
        children: vec![ChildStart {
            pos: 0,
            id: id("early"),
            name: "child".into(),
            started: Some(started_as("child", "0")),
        }],
        ..Commit::default()
    };
    store.commit(p.clone(), early, 1).await.unwrap().unwrap();
    let next = ContinueAsNew {
        children: vec![ChildStart {
            pos: 1,
            id: id("late"),
            name: "child".into(),
            started: Some(started_as("child", "1")),
        }],
        ..super::next_run(3)
    };
    let committed = store
        .continue_as_new(p.clone(), next, 2)
        .await
        .unwrap()
        .expect("the run continues");
    assert_eq!(committed.wake, vec![id("late")], "the new child is to run");
    let late = store.instance(id("late")).await.unwrap().unwrap();
    assert_eq!(
        (late.name.as_str(), late.input.as_str(), late.status),
        ("child", "1", RuntimeStatus::Pending)
    );

    // Both children end; neither is told to the next run, whose positions mean other calls.
    let before = store.history(p.clone(), 0).await.unwrap();
    for (child, at) in [("late", 3), ("early", 4)] {
        let done = store
            .commit(id(child), completing("\"done\""), at)
            .await
            .unwrap()
            .unwrap();
        assert!(
            done.wake.is_empty(),
            "{child} wakes nobody: {:?}",
            done.wake
        );
    }
    assert_eq!(store.history(p.clone(), 0).await.unwrap(), before);

    // A child of the current run still answers it.
    let now = Commit {
        children: vec![ChildStart {
            pos: 0,
            id: id("current"),
            name: "child".into(),
            started: Some(started_as("child", "2")),
        }],
        ..Commit::default()
    };
    store.commit(p.clone(), now, 5).await.unwrap().unwrap();
    let done = store
        .commit(id("current"), completing("\"ok\""), 6)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.wake, vec![p.clone()]);
    let history = store.history(p, 0).await.unwrap();
    assert_eq!(
        history.last().unwrap().event,
        HistoryEvent::SubOrchestrationCompleted {
            handle: 0,
            output: "\"ok\"".into()
        }
    );
}
