//! Applying entity operations. Each entity with work gets one worker task in this process, so
//! the operations on one entity apply one at a time, in the order they were sent: the worker
//! takes the oldest operation from the entity's inbox, runs it in a fresh instance of the
//! component that exports the entity, and stores the result (which also takes the operation
//! out of the inbox) before it looks at the next one.

use super::Runtime;
use super::activity::check_payload;
use super::imports::NoContext;
use crate::store::{AppliedOp, EntityKey, NextOp};
use crate::wasm::{GuestState, HttpPolicy, Limits, activity_wasi, new_store, trap_message};
use std::time::Duration;

/// Whether an entity's worker must look at its inbox again before it stops.
pub(super) type Again = bool;

impl Runtime {
    /// Makes sure `entity`'s operations get applied: starts its worker, or tells the running
    /// one to look again.
    pub(crate) fn wake_entity(&self, entity: &EntityKey) {
        let mut workers = self
            .inner
            .entity_workers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(again) = workers.get_mut(entity) {
            *again = true;
            return;
        }
        workers.insert(entity.clone(), false);
        let rt = self.clone();
        let entity = entity.clone();
        tokio::spawn(async move { rt.entity_worker(entity).await });
    }

    async fn entity_worker(self, entity: EntityKey) {
        loop {
            self.set_again(&entity, false);
            loop {
                match self.store().next_entity_op(entity.clone()).await {
                    Ok(Some(op)) => {
                        if let Err(e) = self.apply_entity_op(&entity, op).await {
                            tracing::error!(%entity, "cannot store an entity operation: {e}");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(%entity, "cannot read the entity's inbox: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            let mut workers = self
                .inner
                .entity_workers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if workers.get(&entity) != Some(&true) {
                workers.remove(&entity);
                return;
            }
        }
    }

    fn set_again(&self, entity: &EntityKey, again: Again) {
        let mut workers = self
            .inner
            .entity_workers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(a) = workers.get_mut(entity) {
            *a = again;
        }
    }

    /// Runs one operation and stores its result.
    async fn apply_entity_op(
        &self,
        entity: &EntityKey,
        op: NextOp,
    ) -> Result<(), crate::store::StoreError> {
        let applied = self.run_entity_op(entity, &op).await;
        if let AppliedOp::Failed(e) | AppliedOp::Unknown(e) = &applied {
            tracing::info!(%entity, operation = %op.operation, "entity operation failed: {e}");
        }
        let caller = self
            .store()
            .finish_entity_op(entity.clone(), op.id, op.version, applied, self.now())
            .await?;
        if let Some(caller) = caller {
            self.wake(&caller);
        }
        Ok(())
    }

    async fn run_entity_op(&self, entity: &EntityKey, op: &NextOp) -> AppliedOp {
        let Some(digest) = self.inner.components.entity_digest(&entity.name) else {
            return AppliedOp::Unknown(format!("no entity named '{}' is deployed", entity.name));
        };
        let loaded = match self.component(&digest).await {
            Ok(l) => l,
            Err(e) => return AppliedOp::Failed(format!("cannot load component: {e}")),
        };
        // Entities see no network and no environment: an operation only computes a new state.
        let settings = &self.inner.settings;
        let limits = Limits::new(Some(settings.activation_deadline), settings.max_memory);
        let state = GuestState::new(activity_wasi(&[]), HttpPolicy::Deny, limits, NoContext);
        let mut store = new_store(self.engine(), state);
        let instance = match super::activity::instantiate(&loaded.entity, &mut store).await {
            Ok(i) => i,
            Err(e) => return AppliedOp::Failed(e),
        };
        let result = instance
            .weft_workflow_entities()
            .call_apply(
                &mut store,
                &entity.name,
                &entity.key,
                op.state.as_deref(),
                &op.operation,
                &op.input,
            )
            .await;
        match result {
            Ok(Ok(outcome)) => {
                let max = settings.max_payload;
                let sizes = check_payload("the operation's output", &outcome.output, max).and(
                    check_payload("the state", outcome.state.as_deref().unwrap_or(""), max),
                );
                match sizes {
                    Ok(()) => AppliedOp::Done {
                        state: outcome.state,
                        output: outcome.output,
                    },
                    Err(e) => AppliedOp::Failed(e),
                }
            }
            Ok(Err(error)) => AppliedOp::Failed(error),
            Err(trap) => AppliedOp::Failed(trap_message("entity operation", &trap)),
        }
    }
}
