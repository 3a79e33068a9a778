//! Component versions: deploying a component (new instances of its orchestrations start on
//! it; running instances stay where they are), checking a component against the histories of
//! running instances, and moving one instance to another component once its history replays
//! there.

use super::{Registered, Runtime, RuntimeError, replay};
use crate::clock::Millis;
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

/// A deployed component, as listed.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub digest: ComponentDigest,
    pub deployed_at: Millis,
    /// Whether it loaded in this process (a stored component that no longer loads is skipped).
    pub loads: bool,
    pub orchestrations: Vec<String>,
    pub activities: Vec<String>,
    pub entities: Vec<String>,
    /// Its orchestrations that new instances start on it: those no newer deploy also exports.
    pub serves_orchestrations: Vec<String>,
    /// Its entities whose operations it applies.
    pub serves_entities: Vec<String>,
}

/// How many running instances of one orchestration a check replays, at most.
const CHECK_LIMIT: usize = 100;

impl Runtime {
    /// Deploys a component: stores it and makes it the one new instances of its orchestrations
    /// start on (and the one that applies its entities' operations), also after a restart. A
    /// component that does not load is refused and nothing is stored.
    pub async fn deploy(&self, bytes: Vec<u8>) -> Result<Registered, RuntimeError> {
        self.register_as(bytes, true).await
    }

    /// The deployed components, oldest deploy first, with what each exports and serves.
    pub async fn components(&self) -> Result<Vec<Deployment>, RuntimeError> {
        let mut out = Vec::new();
        for (digest, deployed_at) in self.inner.store.component_list().await? {
            let loaded = self.inner.components.get(&digest);
            let (orchestrations, activities, entities) = match &loaded {
                Some(l) => (
                    l.orchestrations.clone(),
                    l.activities.clone(),
                    l.entities.clone(),
                ),
                None => Default::default(),
            };
            let serves = |names: &[String], newest: &dyn Fn(&str) -> Option<ComponentDigest>| {
                names
                    .iter()
                    .filter(|n| newest(n).as_ref() == Some(&digest))
                    .cloned()
                    .collect::<Vec<_>>()
            };
            let components = &self.inner.components;
            out.push(Deployment {
                serves_orchestrations: serves(&orchestrations, &|n| components.digest_for(n)),
                serves_entities: serves(&entities, &|n| components.entity_digest(n)),
                loads: loaded.is_some(),
                digest,
                deployed_at,
                orchestrations,
                activities,
                entities,
            });
        }
        Ok(out)
    }

    /// Checks a component without deploying it: replays the histories of the running instances
    /// of each orchestration it exports (up to 100 each) against it.
    pub async fn check_component(
        &self,
        bytes: Vec<u8>,
    ) -> Result<(Registered, Vec<ReplayCheck>), RuntimeError> {
        let digest = crate::history::digest_of(&bytes);
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
                let divergence = replay::check_replay(self, &row.id, &loaded).await.err();
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
            replaced: Vec::new(),
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
            let row = self.row(id).await?;
            if row.status.is_terminal() {
                return Err(RuntimeError::Finished {
                    id: id.clone(),
                    status: row.status,
                });
            }
            let next = replay::check_replay(self, id, &loaded)
                .await
                .map_err(RuntimeError::Diverges)?;
            if self
                .inner
                .store
                .set_digest(id.clone(), to.clone(), next)
                .await?
            {
                tracing::info!(instance = %id, "moved from {} to {}", row.digest.short(), to.short());
                self.mark_moved(id);
                self.announce(crate::store::Notice::Moved(id.clone()));
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

    /// What `find` finds among the published components. On a shared store, a miss loads the
    /// stored components once and looks again: it may have been deployed through another node
    /// a moment ago.
    pub(super) async fn deployed<T>(
        &self,
        find: impl Fn(&super::components::Components) -> Option<T>,
    ) -> Result<Option<T>, RuntimeError> {
        if let Some(found) = find(&self.inner.components) {
            return Ok(Some(found));
        }
        if !self.shared() {
            return Ok(None);
        }
        self.publish_stored().await?;
        Ok(find(&self.inner.components))
    }

    /// Makes every stored component available again after a restart, in the order they were
    /// first deployed: the newest deployed version of a name serves new instances. A component
    /// that no longer loads (say, built for an older contract) is skipped with a warning; the
    /// instances pinned to it fail when they next run.
    pub(super) async fn publish_stored(&self) -> Result<(), RuntimeError> {
        for (digest, bytes) in self.inner.store.stored_components().await? {
            match self.inner.components.load(digest.clone(), bytes).await {
                Ok(loaded) => {
                    // Restoring the deploy order after a restart moves nothing: no log.
                    self.inner.components.publish(&loaded, false);
                }
                Err(e) => tracing::warn!("stored component {} does not load: {e}", digest.short()),
            }
        }
        Ok(())
    }
}
