//! The conformance suite: what every backend of [`Store`] must do, written once against the
//! trait. A backend instantiates it with [`conformance_suite!`] and a [`Backend`] that opens
//! fresh stores; `cargo test conformance` runs every backend's cases.

pub mod basics;

use super::*;
use crate::history::{HistoryEvent, InstanceId};
use std::sync::Arc;

/// A backend under test. Each value stands for one location (a file, a database): `open`
/// opens a store on it, again after the last one was dropped, and sees what was committed.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Opens a store on this location.
    async fn open(&self) -> Arc<dyn Store>;

    /// Opens a store on this location that refuses writes once it holds about `bytes` (as a
    /// full disk would).
    async fn open_full_at(&self, bytes: u64) -> Arc<dyn Store>;
}

/// The `started` event of orchestration `o` on the component `c`, with input `1`.
pub fn started() -> HistoryEvent {
    HistoryEvent::Started {
        name: "o".into(),
        input: "1".into(),
        digest: crate::history::digest_of(b"c"),
        seed: 7,
        at: 0,
    }
}

/// A store holding component `c` and one started instance `i`.
pub async fn one_instance(backend: &dyn Backend) -> (Arc<dyn Store>, InstanceId) {
    let store = backend.open().await;
    store
        .put_component(crate::history::digest_of(b"c"), b"c".to_vec(), false, 0)
        .await
        .unwrap();
    let id: InstanceId = "i".parse().unwrap();
    let created = store
        .create_instance(id.clone(), started(), 0)
        .await
        .unwrap();
    assert_eq!(created, CreateOutcome::Created);
    (store, id)
}

/// Instantiates every case for one backend: `conformance_suite!(name, || backend())` makes a
/// module `name` with one test per case, each on a fresh backend from the closure.
macro_rules! conformance_suite {
    ($name:ident, $backend:expr) => {
        conformance_suite!(@cases $name, $backend;
            basics::starting_twice_is_idempotent_for_the_same_input_only,
            basics::an_activity_result_is_recorded_once,
            basics::timers_fire_once_when_due_and_die_with_the_instance,
            basics::an_entity_operation_is_applied_once_and_answers_its_caller,
            basics::events_to_unknown_instances_are_refused,
            basics::a_suspend_that_came_while_a_run_ended_holds_the_next_run,
        );
    };
    (@cases $name:ident, $backend:expr; $($group:ident :: $case:ident),* $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = ($backend)();
                    $crate::store::conformance::$group::$case(&backend).await;
                }
            )*
        }
    };
}
