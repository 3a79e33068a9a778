//! The conformance suite: what every backend of [`Store`] must do, written once against the
//! trait. A backend instantiates it with [`conformance_suite!`] and a [`Backend`] that opens
//! fresh stores; `cargo test conformance` runs every backend's cases.

pub mod basics;
pub mod children;
pub mod components;
pub mod durability;
pub mod entities;
pub mod instances;
pub mod manage;
pub mod work;

use super::*;
use crate::clock::Millis;
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

/// The trace context of the instance `started()` starts.
pub const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The `started` event of orchestration `o` on the component `c`, with input `1`, in the trace
/// `TRACE`.
pub fn started() -> HistoryEvent {
    HistoryEvent::Started {
        name: "o".into(),
        input: "1".into(),
        digest: crate::history::digest_of(b"c"),
        seed: 7,
        at: 0,
        trace: Some(TRACE.into()),
    }
}

/// A store holding component `c` (instances are pinned to stored components).
pub async fn with_component(backend: &dyn Backend) -> Arc<dyn Store> {
    let store = backend.open().await;
    store
        .put_component(crate::history::digest_of(b"c"), b"c".to_vec(), false, 0)
        .await
        .unwrap();
    store
}

/// A store holding component `c` and one started instance `i`.
pub async fn one_instance(backend: &dyn Backend) -> (Arc<dyn Store>, InstanceId) {
    let store = with_component(backend).await;
    let id: InstanceId = "i".parse().unwrap();
    let created = store
        .create_instance(id.clone(), started(), 0)
        .await
        .unwrap();
    assert_eq!(created, CreateOutcome::Created);
    (store, id)
}

/// An instance id from text.
pub fn id(s: &str) -> InstanceId {
    s.parse().expect("a valid instance id")
}

/// The `started` event of orchestration `name` on component `c` with `input`.
pub fn started_as(name: &str, input: &str) -> HistoryEvent {
    HistoryEvent::Started {
        name: name.into(),
        input: input.into(),
        digest: crate::history::digest_of(b"c"),
        seed: 7,
        at: 0,
        trace: None,
    }
}

/// Creates instance `id` (orchestration `name`, input `input`) at `now`; it must be new.
pub async fn create(store: &dyn Store, id: &InstanceId, name: &str, input: &str, now: Millis) {
    let created = store
        .create_instance(id.clone(), started_as(name, input), now)
        .await
        .unwrap();
    assert_eq!(created, CreateOutcome::Created, "{id} is new");
}

/// A commit that ends the run as completed with `output`.
pub fn completing(output: &str) -> Commit {
    Commit {
        events: vec![HistoryEvent::Completed {
            output: output.into(),
        }],
        end: Some((
            crate::history::RuntimeStatus::Completed,
            Some(output.into()),
            None,
        )),
        ..Commit::default()
    }
}

/// A commit of the given events only.
/// What a run continuing as new with input `2` and `seed` commits, with nothing else.
pub fn next_run(seed: u64) -> ContinueAsNew {
    ContinueAsNew {
        events: Vec::new(),
        children: Vec::new(),
        entity_ops: Vec::new(),
        custom_status: None,
        input: "2".into(),
        seed,
        lease: None,
    }
}

pub fn events(events: Vec<HistoryEvent>) -> Commit {
    Commit {
        events,
        ..Commit::default()
    }
}

/// The `type` tags of a history, in order.
pub fn kinds(history: &[crate::history::Recorded]) -> Vec<&'static str> {
    history.iter().map(|r| r.event.kind()).collect()
}

/// Asserts a history is numbered densely from 0.
pub fn assert_dense(history: &[crate::history::Recorded]) {
    let seqs: Vec<_> = history.iter().map(|r| r.seq).collect();
    let expected: Vec<_> = (0..history.len() as crate::history::Seq).collect();
    assert_eq!(seqs, expected, "sequence numbers 0..n without gaps");
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
            instances::concurrent_writers_on_one_instance_get_dense_positions_and_each_write_once,
            instances::continue_as_new_carries_every_event_raised_during_it_once,
            instances::each_run_is_archived_as_a_generation_and_an_ended_instance_does_not_continue,
            instances::an_ended_instance_takes_no_commit_and_its_work_is_dropped,
            children::a_child_starts_in_its_parents_commit_and_its_end_answers_the_parent,
            children::a_child_whose_id_is_taken_fails_its_handle_and_leaves_the_other_alone,
            children::terminate_ends_one_instance_and_tells_its_parent,
            children::a_recursive_terminate_ends_every_running_descendant,
            children::a_child_started_by_a_run_that_continues_as_new_runs_and_tells_no_later_run,
            instances::unfinished_instances_are_those_pending_running_or_suspended,
            work::a_failed_attempt_the_policy_allows_runs_again_after_its_delay,
            work::timers_fire_in_due_order_once_each_and_a_cancelled_one_never,
            work::a_result_nobody_waits_for_is_ignored,
            components::components_keep_their_deploy_order_unless_deployed_again,
            components::the_pin_moves_only_if_nothing_was_recorded_since_it_was_checked,
            entities::two_workers_applying_one_operation_apply_it_once_and_reply_once,
            entities::a_reply_reaches_only_the_run_that_called_while_it_has_not_ended,
            entities::operations_wait_in_the_inbox_in_order_and_a_failure_keeps_the_state,
            entities::entities_list_by_name_and_key_in_pages_and_logs_page_by_position,
            entities::purging_an_entity_deletes_its_state_and_log_while_waiting_operations_apply_later,
            entities::a_result_computed_on_a_state_that_changed_since_is_not_stored,
            manage::suspend_and_resume_say_what_they_changed,
            manage::a_listing_filters_by_status_name_and_creation_time,
            manage::pages_of_a_listing_hold_every_instance_once,
            manage::counts_go_by_status_and_component_within_the_filter,
            manage::a_purge_removes_an_ended_instance_with_everything_and_its_ended_children,
            manage::purge_where_deletes_the_ended_matches_only,
            manage::the_manual_clock_moves_forward_only,
            manage::a_secret_is_made_once_and_the_probe_answers,
            durability::what_was_acknowledged_is_there_after_reopening,
            durability::a_full_store_keeps_nothing_of_a_write_it_refused,
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
