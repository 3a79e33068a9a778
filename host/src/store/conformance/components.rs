//! Components: the deploy order, their bytes, and the compare-and-set of an instance's pin.

use super::{Backend, completing, id, one_instance};
use crate::history::{HistoryEvent, digest_of};

pub async fn components_keep_their_deploy_order_unless_deployed_again(backend: &dyn Backend) {
    let store = backend.open().await;
    let (a, b) = (digest_of(b"a"), digest_of(b"b"));
    assert!(store.component_list().await.unwrap().is_empty());
    assert!(!store.has_component(a.clone()).await.unwrap());
    assert_eq!(store.component_bytes(a.clone()).await.unwrap(), None);

    store
        .put_component(a.clone(), b"a".to_vec(), false, 1)
        .await
        .unwrap();
    store
        .put_component(b.clone(), b"b".to_vec(), false, 2)
        .await
        .unwrap();
    // Stored before and not deployed again: it keeps its place and time.
    store
        .put_component(a.clone(), b"a".to_vec(), false, 3)
        .await
        .unwrap();
    assert_eq!(
        store.component_list().await.unwrap(),
        vec![(a.clone(), 1), (b.clone(), 2)]
    );
    // Deployed again: it becomes the newest.
    store
        .put_component(a.clone(), b"a".to_vec(), true, 4)
        .await
        .unwrap();
    assert_eq!(
        store.component_list().await.unwrap(),
        vec![(b.clone(), 2), (a.clone(), 4)]
    );
    assert_eq!(
        store.stored_components().await.unwrap(),
        vec![(b.clone(), b"b".to_vec()), (a.clone(), b"a".to_vec())]
    );
    // A new one deployed with `again` is simply the newest.
    let c = digest_of(b"c");
    store
        .put_component(c.clone(), b"c".to_vec(), true, 5)
        .await
        .unwrap();
    let order: Vec<_> = store
        .component_list()
        .await
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(order, vec![b.clone(), a.clone(), c.clone()]);
    assert!(store.has_component(b.clone()).await.unwrap());
    assert_eq!(
        store.component_bytes(c).await.unwrap().as_deref(),
        Some(&b"c"[..])
    );
    assert!(!store.has_component(digest_of(b"z")).await.unwrap());
}

pub async fn the_pin_moves_only_if_nothing_was_recorded_since_it_was_checked(
    backend: &dyn Backend,
) {
    let (store, i) = one_instance(backend).await;
    let (v2, v3) = (digest_of(b"v2"), digest_of(b"v3"));
    for (digest, bytes) in [(&v2, b"v2"), (&v3, b"v3")] {
        store
            .put_component(digest.clone(), bytes.to_vec(), false, 1)
            .await
            .unwrap();
    }
    let pinned = async || store.instance(i.clone()).await.unwrap().unwrap().digest;
    // The history holds `started` only: it ends before 1.
    assert!(!store.set_digest(i.clone(), v2.clone(), 0).await.unwrap());
    assert_eq!(
        pinned().await,
        digest_of(b"c"),
        "a stale check moves nothing"
    );
    assert!(store.set_digest(i.clone(), v2.clone(), 1).await.unwrap());
    assert_eq!(pinned().await, v2);

    // An event arrives: a check made before it is stale.
    store
        .raise_event(i.clone(), "e".into(), "1".into(), 1)
        .await
        .unwrap();
    assert!(!store.set_digest(i.clone(), v3.clone(), 1).await.unwrap());
    assert_eq!(pinned().await, v2);
    assert!(!store.set_digest(i.clone(), v3.clone(), 3).await.unwrap());
    assert_eq!(pinned().await, v2, "nor one from the future");

    // Suspended is not ended: it moves.
    store
        .set_suspended(i.clone(), true, "hold".into(), 2)
        .await
        .unwrap();
    assert!(store.set_digest(i.clone(), v3.clone(), 3).await.unwrap());
    assert_eq!(pinned().await, v3);
    store
        .set_suspended(i.clone(), false, "go".into(), 3)
        .await
        .unwrap();

    // Ended, it stays on the component it ended on.
    store
        .commit(i.clone(), completing("1"), 4)
        .await
        .unwrap()
        .unwrap();
    let next = store.history(i.clone(), 0).await.unwrap().len() as u64;
    assert!(
        matches!(
            store
                .history(i.clone(), 0)
                .await
                .unwrap()
                .last()
                .unwrap()
                .event,
            HistoryEvent::Completed { .. }
        ),
        "ended"
    );
    assert!(!store.set_digest(i.clone(), v2.clone(), next).await.unwrap());
    assert_eq!(pinned().await, v3);
    assert!(!store.set_digest(id("nobody"), v2, 0).await.unwrap());
}
