//! Management: suspend and resume, listing and its pages, purging, the manual clock, secrets
//! and the probe.

use super::children::start_children;
use super::{
    Backend, completing, create, events, id, kinds, next_run, one_instance, with_component,
};
use crate::history::{HistoryEvent, InstanceId, RuntimeStatus};
use crate::store::*;
use std::collections::HashSet;
use std::sync::Arc;

/// Ends instance `i` as completed.
async fn complete(store: &Arc<dyn Store>, i: &InstanceId) {
    store
        .commit(i.clone(), completing("1"), 10)
        .await
        .unwrap()
        .expect("it was running");
}

pub async fn suspend_and_resume_say_what_they_changed(backend: &dyn Backend) {
    let (store, i) = one_instance(backend).await;
    let set = async |suspend: bool, who: &InstanceId| {
        store
            .set_suspended(who.clone(), suspend, "why".into(), 1)
            .await
            .unwrap()
    };
    assert_eq!(
        set(false, &i).await,
        ChangeOutcome::Unchanged,
        "not suspended"
    );
    assert_eq!(set(true, &i).await, ChangeOutcome::Changed);
    assert_eq!(set(true, &i).await, ChangeOutcome::Unchanged);
    assert_eq!(
        store.instance(i.clone()).await.unwrap().unwrap().status,
        RuntimeStatus::Suspended
    );
    // Arrivals are still recorded while suspended.
    assert!(matches!(
        store
            .raise_event(i.clone(), "e".into(), "1".into(), 2)
            .await
            .unwrap(),
        RaiseOutcome::Raised(_)
    ));
    assert_eq!(set(false, &i).await, ChangeOutcome::Changed);
    assert_eq!(set(false, &i).await, ChangeOutcome::Unchanged);
    assert_eq!(
        store.instance(i.clone()).await.unwrap().unwrap().status,
        RuntimeStatus::Running
    );
    assert_eq!(
        kinds(&store.history(i.clone(), 0).await.unwrap()),
        ["started", "suspended", "event_raised", "resumed"],
        "only changes are recorded"
    );
    assert_eq!(set(true, &id("nobody")).await, ChangeOutcome::NotFound);
    complete(&store, &i).await;
    let history = store.history(i.clone(), 0).await.unwrap();
    for suspend in [true, false] {
        assert_eq!(
            set(suspend, &i).await,
            ChangeOutcome::Finished(RuntimeStatus::Completed)
        );
    }
    assert_eq!(store.history(i, 0).await.unwrap(), history);
}

/// Instances `n0`.. created at times 10, 20, ..: even ones of orchestration `o`, odd ones of
/// `p`; every third completed.
async fn several(store: &Arc<dyn Store>, count: usize) -> Vec<InstanceId> {
    let mut ids = Vec::new();
    for n in 0..count {
        let i = id(&format!("n{n}"));
        let name = if n % 2 == 0 { "o" } else { "p" };
        create(store.as_ref(), &i, name, "1", 10 * (n as u64 + 1)).await;
        if n % 3 == 0 {
            complete(store, &i).await;
        }
        ids.push(i);
    }
    ids
}

pub async fn a_listing_filters_by_status_name_and_creation_time(backend: &dyn Backend) {
    let store = with_component(backend).await;
    several(&store, 6).await;
    let list = async |filter: Filter| -> Vec<String> {
        let (rows, next) = store.list(filter, None, 100).await.unwrap();
        assert_eq!(next, None, "one page holds them");
        rows.iter().map(|r| r.id.to_string()).collect()
    };
    assert_eq!(
        list(Filter::default()).await,
        ["n0", "n1", "n2", "n3", "n4", "n5"],
        "oldest first"
    );
    let completed = Filter {
        statuses: vec![RuntimeStatus::Completed],
        ..Filter::default()
    };
    assert_eq!(list(completed).await, ["n0", "n3"]);
    let two = Filter {
        statuses: vec![RuntimeStatus::Completed, RuntimeStatus::Pending],
        name: Some("o".into()),
        ..Filter::default()
    };
    assert_eq!(list(two).await, ["n0", "n2", "n4"]);
    let named = Filter {
        name: Some("p".into()),
        ..Filter::default()
    };
    assert_eq!(list(named).await, ["n1", "n3", "n5"]);
    let window = Filter {
        created_from: Some(20),
        created_to: Some(50),
        ..Filter::default()
    };
    assert_eq!(
        list(window).await,
        ["n1", "n2", "n3"],
        "from is inclusive, to is not"
    );
    let none = Filter {
        statuses: vec![RuntimeStatus::Failed],
        ..Filter::default()
    };
    assert!(list(none).await.is_empty());
    let row = store.list(Filter::default(), None, 1).await.unwrap().0;
    assert_eq!(
        (row[0].name.as_str(), row[0].status, row[0].created_at),
        ("o", RuntimeStatus::Completed, 10)
    );
}

pub async fn counts_go_by_status_and_component_within_the_filter(backend: &dyn Backend) {
    let store = with_component(backend).await;
    several(&store, 6).await;
    let counts = async |filter: Filter| -> Vec<(RuntimeStatus, u64)> {
        let rows = store.instance_counts(filter).await.unwrap();
        rows.iter().map(|c| (c.status, c.count)).collect()
    };
    // n0 and n3 completed, the other four pending; one component holds them all.
    assert_eq!(
        counts(Filter::default()).await,
        [(RuntimeStatus::Completed, 2), (RuntimeStatus::Pending, 4)]
    );
    let all = store.instance_counts(Filter::default()).await.unwrap();
    assert!(all.iter().all(|c| c.digest == all[0].digest));
    let named = Filter {
        name: Some("p".into()),
        ..Filter::default()
    };
    assert_eq!(
        counts(named).await,
        [(RuntimeStatus::Completed, 1), (RuntimeStatus::Pending, 2)]
    );
    let window = Filter {
        statuses: vec![RuntimeStatus::Pending],
        created_from: Some(20),
        created_to: Some(50),
        ..Filter::default()
    };
    assert_eq!(counts(window).await, [(RuntimeStatus::Pending, 2)]);
    let none = Filter {
        name: Some("q".into()),
        ..Filter::default()
    };
    assert!(counts(none).await.is_empty());
}

pub async fn pages_of_a_listing_hold_every_instance_once(backend: &dyn Backend) {
    let store = with_component(backend).await;
    // Many created at the same time, ids not in creation order.
    let mut expected = Vec::new();
    for n in 0..23u64 {
        let i = id(&format!("x{:02}", (n * 7) % 23));
        create(store.as_ref(), &i, "o", "1", n / 5).await;
        expected.push((n / 5, i.to_string(), i));
    }
    expected.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let expected: Vec<InstanceId> = expected.into_iter().map(|(_, _, i)| i).collect();
    for size in [1, 4, 5, 23, 50] {
        let mut seen = Vec::new();
        let mut after = None;
        for _ in 0..=expected.len() {
            let (rows, next) = store
                .list(Filter::default(), after.clone(), size)
                .await
                .unwrap();
            assert!(rows.len() <= size);
            if next.is_some() {
                assert_eq!(rows.len(), size, "only a full page has a next one");
            }
            seen.extend(rows.into_iter().map(|r| r.id));
            after = next;
            if after.is_none() {
                break;
            }
        }
        assert_eq!(after, None, "the pages end");
        assert_eq!(seen, expected, "pages of {size}");
    }
    // Pages of a filtered listing leave out what does not match.
    create(store.as_ref(), &id("late"), "p", "1", 100).await;
    let o = Filter {
        name: Some("o".into()),
        ..Filter::default()
    };
    let (first, next) = store.list(o.clone(), None, 20).await.unwrap();
    let (rest, end) = store.list(o, next, 20).await.unwrap();
    assert_eq!(end, None);
    let all: Vec<InstanceId> = first.into_iter().chain(rest).map(|r| r.id).collect();
    assert_eq!(all, expected);
}

pub async fn a_purge_removes_an_ended_instance_with_everything_and_its_ended_children(
    backend: &dyn Backend,
) {
    let (store, p) = one_instance(backend).await;
    start_children(&store, &p, &["c1", "c2"]).await;
    start_children(&store, &id("c1"), &["g"]).await;
    for ended in ["g", "c1"] {
        complete(&store, &id(ended)).await;
    }
    // An archived run, and an entity call still waiting when it ends.
    let next = next_run(1);
    assert!(
        store
            .continue_as_new(p.clone(), next, 2)
            .await
            .unwrap()
            .is_some()
    );
    let counter = EntityKey {
        name: "counter".into(),
        key: "k".into(),
    };
    let calling = Commit {
        entity_ops: vec![EntityOp {
            entity: counter.clone(),
            operation: "add".into(),
            input: "1".into(),
            reply: Some(0),
        }],
        ..events(vec![HistoryEvent::EntityCalled {
            pos: 0,
            name: "counter".into(),
            key: "k".into(),
            operation: "add".into(),
            input: "1".into(),
        }])
    };
    store.commit(p.clone(), calling, 3).await.unwrap().unwrap();

    assert_eq!(
        store.purge(p.clone()).await.unwrap(),
        PurgeOutcome::Running(RuntimeStatus::Running),
        "a running one is refused"
    );
    store
        .set_suspended(p.clone(), true, "x".into(), 4)
        .await
        .unwrap();
    assert_eq!(
        store.purge(p.clone()).await.unwrap(),
        PurgeOutcome::Running(RuntimeStatus::Suspended)
    );
    assert!(!store.history(p.clone(), 0).await.unwrap().is_empty());
    store
        .terminate(p.clone(), "done".into(), false, 5)
        .await
        .unwrap();
    assert_eq!(
        store.purge(p.clone()).await.unwrap(),
        PurgeOutcome::Purged(3),
        "the parent, its ended child and grandchild"
    );
    for gone in [p.clone(), id("c1"), id("g")] {
        assert!(
            store.instance(gone.clone()).await.unwrap().is_none(),
            "{gone}"
        );
        assert!(store.history(gone.clone(), 0).await.unwrap().is_empty());
        assert!(
            store
                .archived_history(gone.clone())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .raise_event(gone.clone(), "e".into(), "1".into(), 6)
                .await
                .unwrap(),
            RaiseOutcome::NotFound
        );
    }
    let c2 = store.instance(id("c2")).await.unwrap().unwrap();
    assert_eq!(c2.status, RuntimeStatus::Pending, "a running child stays");
    assert_eq!(
        store.purge(p.clone()).await.unwrap(),
        PurgeOutcome::NotFound
    );

    // The operation it sent still applies; its reply goes to nobody.
    let next = store
        .next_entity_op(counter.clone())
        .await
        .unwrap()
        .unwrap();
    let applied = AppliedOp::Done {
        state: Some("1".into()),
        output: "1".into(),
    };
    assert_eq!(
        store
            .finish_entity_op(counter, next.id, next.version, applied, 7)
            .await
            .unwrap(),
        None
    );
    assert!(store.instance(p.clone()).await.unwrap().is_none());
    assert!(store.history(p, 0).await.unwrap().is_empty());
}

pub async fn purge_where_deletes_the_ended_matches_only(backend: &dyn Backend) {
    let store = with_component(backend).await;
    let ids = several(&store, 6).await;
    // n1 (of `p`) fails; n2 starts a child that completes.
    let failing = Commit {
        end: Some((RuntimeStatus::Failed, None, Some("app: x".into()))),
        ..Commit::default()
    };
    store
        .commit(ids[1].clone(), failing, 10)
        .await
        .unwrap()
        .unwrap();
    start_children(&store, &ids[2], &["n2:child"]).await;
    complete(&store, &id("n2:child")).await;
    complete(&store, &ids[2]).await;

    let ended_o = Filter {
        name: Some("o".into()),
        ..Filter::default()
    };
    // `o`: n0 and n2 (with its child) ended; n4 runs.
    assert_eq!(store.purge_where(ended_o.clone()).await.unwrap(), 3);
    assert_eq!(store.purge_where(ended_o).await.unwrap(), 0, "gone already");
    let failed = Filter {
        statuses: vec![RuntimeStatus::Failed, RuntimeStatus::Pending],
        ..Filter::default()
    };
    assert_eq!(store.purge_where(failed).await.unwrap(), 1, "n1 only");
    let left: HashSet<String> = store
        .list(Filter::default(), None, 100)
        .await
        .unwrap()
        .0
        .into_iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(
        left,
        HashSet::from(["n3".into(), "n4".into(), "n5".into()]),
        "the running ones and the unmatched"
    );
    let early = Filter {
        created_to: Some(45),
        ..Filter::default()
    };
    assert_eq!(store.purge_where(early).await.unwrap(), 1, "n3");
    assert!(store.history(id("n3"), 0).await.unwrap().is_empty());
    assert_eq!(store.unfinished_instances().await.unwrap().len(), 2);
}

pub async fn the_manual_clock_moves_forward_only(backend: &dyn Backend) {
    let store = backend.open().await;
    assert_eq!(
        store.manual_clock(100).await.unwrap(),
        100,
        "a first start stores it"
    );
    assert_eq!(store.manual_clock(50).await.unwrap(), 100, "never back");
    assert_eq!(store.manual_clock(150).await.unwrap(), 150);
    assert_eq!(store.advance_manual_clock(0, 10).await.unwrap(), 160);
    assert_eq!(
        store.advance_manual_clock(200, 5).await.unwrap(),
        205,
        "from the later of the two"
    );
    assert_eq!(store.advance_manual_clock(100, 0).await.unwrap(), 205);
    assert_eq!(store.manual_clock(0).await.unwrap(), 205);
}

pub async fn a_secret_is_made_once_and_the_probe_answers(backend: &dyn Backend) {
    let store = backend.open().await;
    store.probe().await.unwrap();
    assert_eq!(store.secret("hmac", vec![1, 2]).await.unwrap(), vec![1, 2]);
    assert_eq!(
        store.secret("hmac", vec![3, 4]).await.unwrap(),
        vec![1, 2],
        "the same ever after"
    );
    assert_eq!(store.secret("other", vec![5]).await.unwrap(), vec![5]);
    store.probe().await.unwrap();
    store.probe().await.unwrap();
    assert_eq!(store.secret("hmac", Vec::new()).await.unwrap(), vec![1, 2]);
    assert_eq!(store.secret("other", Vec::new()).await.unwrap(), vec![5]);
}
