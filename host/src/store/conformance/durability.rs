//! Durability: what was acknowledged survives reopening the store, and a full store keeps
//! nothing of a write it refused.

use super::{Backend, create, events, id, started_as};
use crate::history::{HistoryEvent, InstanceId, Recorded, RuntimeStatus, digest_of};
use crate::store::*;
use std::sync::Arc;

/// Everything a store answers about instances, work, components and entities, as text.
async fn snapshot(store: &Arc<dyn Store>, ids: &[InstanceId], entity: &EntityKey) -> Vec<String> {
    let mut seen = Vec::new();
    for i in ids {
        seen.push(format!("{:?}", store.instance(i.clone()).await.unwrap()));
        seen.push(format!("{:?}", store.history(i.clone(), 0).await.unwrap()));
        seen.push(format!(
            "{:?}",
            store.archived_history(i.clone()).await.unwrap()
        ));
    }
    let mut unfinished = store.unfinished_instances().await.unwrap();
    unfinished.sort();
    seen.push(format!("{unfinished:?}"));
    seen.push(format!(
        "{:?}",
        store.list(Filter::default(), None, 100).await.unwrap()
    ));
    let mut pending = store.pending_activities().await.unwrap();
    pending.sort_by_key(|a| (a.instance.clone(), a.pos));
    seen.push(format!("{pending:?}"));
    seen.push(format!("{:?}", store.next_timer_due().await.unwrap()));
    seen.push(format!("{:?}", store.component_list().await.unwrap()));
    seen.push(format!("{:?}", store.stored_components().await.unwrap()));
    seen.push(format!("{:?}", store.entity(entity.clone()).await.unwrap()));
    seen.push(format!(
        "{:?}",
        store.entity_log(entity.clone(), 0, 100).await.unwrap()
    ));
    seen.push(format!("{:?}", store.entities_with_work().await.unwrap()));
    seen.push(format!(
        "{:?}",
        store.list_entities(None, None, 100).await.unwrap()
    ));
    seen
}

pub async fn what_was_acknowledged_is_there_after_reopening(backend: &dyn Backend) {
    let store = backend.open().await;
    for (bytes, now) in [(&b"c"[..], 1), (b"d", 2)] {
        store
            .put_component(digest_of(bytes), bytes.to_vec(), false, now)
            .await
            .unwrap();
    }
    let (i, next_run, ended, held) = (id("i"), id("next"), id("ended"), id("held"));
    for (n, instance) in [&i, &next_run, &ended, &held].into_iter().enumerate() {
        create(store.as_ref(), instance, "o", "1", n as u64).await;
    }
    store
        .raise_event(i.clone(), "e".into(), "\"hi\"".into(), 5)
        .await
        .unwrap();
    let work = Commit {
        activities: vec![ScheduledActivity {
            pos: 0,
            name: "a".into(),
            input: "1".into(),
            retry: None,
        }],
        timers: vec![(1, 500)],
        custom_status: Some("\"working\"".into()),
        ..events(vec![
            HistoryEvent::ActivityScheduled {
                pos: 0,
                name: "a".into(),
                input: "1".into(),
                retry: None,
            },
            HistoryEvent::TimerCreated {
                pos: 1,
                fire_at: 500,
            },
        ])
    };
    store.commit(i.clone(), work, 6).await.unwrap().unwrap();
    let next = super::next_run(3);
    assert!(
        store
            .continue_as_new(next_run.clone(), next, 7)
            .await
            .unwrap()
            .is_some()
    );
    store
        .commit(ended.clone(), super::completing("\"out\""), 8)
        .await
        .unwrap()
        .unwrap();
    store
        .set_suspended(held.clone(), true, "hold".into(), 9)
        .await
        .unwrap();
    let counter = EntityKey {
        name: "counter".into(),
        key: "k".into(),
    };
    let op = |input: &str| EntityOp {
        entity: counter.clone(),
        operation: "add".into(),
        input: input.into(),
        reply: None,
    };
    store.signal_entity(op("3"), 10).await.unwrap();
    let first = store
        .next_entity_op(counter.clone())
        .await
        .unwrap()
        .unwrap();
    let applied = AppliedOp::Done {
        state: Some("3".into()),
        output: "3".into(),
    };
    store
        .finish_entity_op(counter.clone(), first.id, first.version, applied, 11)
        .await
        .unwrap();
    store.signal_entity(op("4"), 12).await.unwrap();
    assert_eq!(store.manual_clock(1_000).await.unwrap(), 1_000);
    assert_eq!(store.advance_manual_clock(0, 50).await.unwrap(), 1_050);
    assert_eq!(store.secret("s", vec![9, 9]).await.unwrap(), vec![9, 9]);

    let ids = [i.clone(), next_run, ended, held];
    let before = snapshot(&store, &ids, &counter).await;
    drop(store);
    let store = backend.open().await;
    let after = snapshot(&store, &ids, &counter).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a, b, "the same after reopening");
    }
    assert_eq!(before.len(), after.len());
    assert_eq!(
        store.manual_clock(0).await.unwrap(),
        1_050,
        "the clock does not move back across a restart"
    );
    assert_eq!(store.secret("s", vec![1]).await.unwrap(), vec![9, 9]);

    // And the work goes on where it stood.
    let waiting = store.next_entity_op(counter).await.unwrap().unwrap();
    assert_eq!(
        (waiting.input.as_str(), waiting.state.as_deref()),
        ("4", Some("3"))
    );
    assert_eq!(
        store.fire_due_timers(500).await.unwrap().woken,
        vec![i.clone()]
    );
    assert_eq!(
        store
            .complete_activity(i.clone(), 0, Ok("2".into()), 501)
            .await
            .unwrap(),
        CompleteOutcome::Recorded
    );
    let history = store.history(i, 0).await.unwrap();
    super::assert_dense(&history);
    assert_eq!(
        super::kinds(&history),
        [
            "started",
            "event_raised",
            "activity_scheduled",
            "timer_created",
            "timer_fired",
            "activity_completed"
        ]
    );
}

/// About 64 pages of 4 KiB: the schema and a few dozen large events.
const LIMIT: u64 = 256 * 1024;

/// A commit of `n` activities with large inputs and `n` timers, a child, an entity call and a
/// custom status: larger than the whole store.
fn large_commit(n: u32, filler: &str) -> Commit {
    let mut commit = Commit {
        custom_status: Some("\"big\"".into()),
        children: vec![ChildStart {
            pos: 2 * n,
            id: id("i:child"),
            name: "o".into(),
            started: Some(started_as("o", "1")),
        }],
        entity_ops: vec![EntityOp {
            entity: EntityKey {
                name: "counter".into(),
                key: "k".into(),
            },
            operation: "add".into(),
            input: "1".into(),
            reply: Some(2 * n + 1),
        }],
        ..Commit::default()
    };
    for pos in 0..n {
        let input = format!("\"{pos}{filler}\"");
        commit.events.push(HistoryEvent::ActivityScheduled {
            pos,
            name: "a".into(),
            input: input.clone(),
            retry: None,
        });
        commit.activities.push(ScheduledActivity {
            pos,
            name: "a".into(),
            input,
            retry: None,
        });
        let timer = n + pos;
        commit.events.push(HistoryEvent::TimerCreated {
            pos: timer,
            fire_at: 1_000,
        });
        commit.timers.push((timer, 1_000));
    }
    commit
}

/// `len` characters no compression shrinks much (a backend may compress large values).
fn incompressible(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}

pub async fn a_full_store_keeps_nothing_of_a_write_it_refused(backend: &dyn Backend) {
    let store = backend.open_full_at(LIMIT).await;
    store
        .put_component(digest_of(b"c"), b"c".to_vec(), false, 0)
        .await
        .unwrap();
    let i = id("i");
    create(store.as_ref(), &i, "o", "1", 0).await;
    let filler = incompressible(4_000);

    let mut acknowledged = Vec::new();
    let mut refused = None;
    for n in 0..1_000 {
        let payload = format!("\"{n}{filler}\"");
        match store
            .raise_event(i.clone(), "fill".into(), payload, 1)
            .await
        {
            Ok(RaiseOutcome::Raised(seq)) => acknowledged.push(seq),
            Ok(other) => panic!("raise {n}: {other:?}"),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the store fills up");
    assert!(refused.is_full(), "{refused}");
    assert!(acknowledged.len() >= 3, "{} fitted", acknowledged.len());
    let before: Vec<Recorded> = store.history(i.clone(), 0).await.unwrap();
    assert_eq!(
        before.len(),
        1 + acknowledged.len(),
        "the refused raise is not kept"
    );

    let failed = store.commit(i.clone(), large_commit(60, &filler), 2).await;
    assert!(matches!(failed, Err(StoreError::Full(_))), "{failed:?}");
    let huge = started_as("o", &format!("\"{}\"", incompressible(320_000)));
    let failed = store.create_instance(id("huge"), huge, 3).await;
    assert!(matches!(failed, Err(StoreError::Full(_))), "{failed:?}");

    // Nothing of either is there, and the store still answers.
    let nothing_kept = async |store: &Arc<dyn Store>| {
        assert_eq!(store.history(i.clone(), 0).await.unwrap(), before);
        assert!(store.pending_activities().await.unwrap().is_empty());
        assert_eq!(store.next_timer_due().await.unwrap(), None);
        assert!(store.instance(id("i:child")).await.unwrap().is_none());
        assert!(store.instance(id("huge")).await.unwrap().is_none());
        assert!(store.entities_with_work().await.unwrap().is_empty());
        let row = store.instance(i.clone()).await.unwrap().unwrap();
        assert_eq!(
            (row.status, row.custom_status),
            (RuntimeStatus::Pending, None)
        );
        assert_eq!(store.unfinished_instances().await.unwrap(), vec![i.clone()]);
    };
    nothing_kept(&store).await;
    drop(store);
    let store = backend.open().await;
    nothing_kept(&store).await;

    // Without the limit, the same commit goes through whole.
    let committed = store
        .commit(i.clone(), large_commit(60, &filler), 4)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(committed.wake, vec![id("i:child")]);
    assert_eq!(store.pending_activities().await.unwrap().len(), 60);
    assert_eq!(store.history(i, 0).await.unwrap().len(), before.len() + 120);
}
