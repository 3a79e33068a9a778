//! Component versions: deploying a component (new instances of its orchestrations start on
//! it; running instances stay where they are), checking a component against the histories of
//! running instances, and moving one instance to another component once its history replays
//! there.

use super::{Registered, Runtime, RuntimeError, activation};
use crate::history::{ComponentDigest, InstanceId, RuntimeStatus};
use crate::store::Filter;

/// Whether an instance's history replays against a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayCheck {
    pub instance: InstanceId,
    pub name: String,
    /// `None` if the component makes every recorded call; else the first divergence.
    pub divergence: Option<String>,
}

/// How many running instances of one orchestration a check replays, at most.
const CHECK_LIMIT: usize = 100;

impl Runtime {
    /// Deploys a component: stores it and makes it the one new instances of its orchestrations
    /// start on (and the one that applies its entities' operations).
    pub async fn deploy(&self, bytes: Vec<u8>) -> Result<Registered, RuntimeError> {
        self.register(bytes).await
    }

    /// Checks a component without deploying it: replays the histories of the running instances
    /// of each orchestration it exports (up to 100 each) against it.
    pub async fn check_component(
        &self,
        bytes: Vec<u8>,
    ) -> Result<(Registered, Vec<ReplayCheck>), RuntimeError> {
        let digest = ComponentDigest::of(&bytes);
        let loaded = self.inner.components.load(digest.clone(), bytes).await?;
        let mut checks = Vec::new();
        for name in &loaded.orchestrations {
            let filter = Filter {
                statuses: vec![
                    RuntimeStatus::Pending,
                    RuntimeStatus::Running,
                    RuntimeStatus::Suspended,
                ],
                name: Some(name.clone()),
                ..Filter::default()
            };
            let (rows, _) = self.inner.store.list(filter, None, CHECK_LIMIT).await?;
            for row in rows {
                let divergence = activation::check_replay(self, &row.id, &loaded).await.err();
                checks.push(ReplayCheck {
                    instance: row.id,
                    name: name.clone(),
                    divergence,
                });
            }
        }
        let registered = Registered {
            digest,
            orchestrations: loaded.orchestrations.clone(),
            activities: loaded.activities.clone(),
            entities: loaded.entities.clone(),
        };
        Ok((registered, checks))
    }

    /// Moves a running instance to component `to` (deployed before), if its history replays
    /// there; otherwise changes nothing and says where it diverges. The digest it was on.
    pub async fn upgrade(
        &self,
        id: &InstanceId,
        to: &ComponentDigest,
    ) -> Result<ComponentDigest, RuntimeError> {
        if !self.inner.store.has_component(to.clone()).await? {
            return Err(RuntimeError::MissingComponent(to.clone()));
        }
        let loaded = self.component(to).await?;
        // Calls recorded between the check and the move would be unchecked: check again.
        for _ in 0..3 {
            let row = self
                .inner
                .store
                .instance(id.clone())
                .await?
                .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
            if row.status.is_terminal() {
                return Err(RuntimeError::Finished {
                    id: id.clone(),
                    status: row.status,
                });
            }
            let next = activation::check_replay(self, id, &loaded)
                .await
                .map_err(RuntimeError::Diverges)?;
            if self
                .inner
                .store
                .set_digest(id.clone(), to.clone(), next)
                .await?
            {
                tracing::info!(instance = %id, "moved from {} to {}", row.digest.short(), to.short());
                self.inner
                    .moved
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone());
                self.wake(id);
                return Ok(row.digest);
            }
        }
        Err(RuntimeError::Busy(id.clone()))
    }

    /// Whether the instance was moved to another component since its actor last asked.
    pub(super) fn take_moved(&self, id: &InstanceId) -> bool {
        self.inner
            .moved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// Makes every stored component available again after a restart, in the order they were
    /// first deployed: the newest deployed version of a name serves new instances. A component
    /// that no longer loads (say, built for an older contract) is skipped with a warning; the
    /// instances pinned to it fail when they next run.
    pub(super) async fn publish_stored(&self) -> Result<(), RuntimeError> {
        for (digest, bytes) in self.inner.store.stored_components().await? {
            match self.inner.components.load(digest.clone(), bytes).await {
                Ok(loaded) => {
                    self.inner.components.publish(&loaded);
                }
                Err(e) => tracing::warn!("stored component {} does not load: {e}", digest.short()),
            }
        }
        Ok(())
    }
}
