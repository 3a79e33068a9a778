//! The loaded components, by digest, and which digest serves each orchestration name.

use super::activation::Activation;
use super::activity::ActivityCall;
use super::imports::{Linked, Linkers, NoContext};
use crate::history::ComponentDigest;
use crate::wasm::bindings::WorkflowPre;
use crate::wasm::{self, Compiler, ComponentError, GuestState, HttpPolicy, Limits};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A compiled component, linked for each guest kind and ready to instantiate.
pub struct Loaded {
    pub digest: ComponentDigest,
    pub orchestration: WorkflowPre<GuestState<Activation>>,
    pub activity: WorkflowPre<GuestState<ActivityCall>>,
    /// For entity operations, and for asking the component what it exports.
    pub entity: WorkflowPre<GuestState<NoContext>>,
    pub orchestrations: Vec<String>,
    pub activities: Vec<String>,
    pub entities: Vec<String>,
}

/// What registering a component made available.
#[derive(Debug, Clone)]
pub struct Registered {
    pub digest: ComponentDigest,
    pub orchestrations: Vec<String>,
    pub activities: Vec<String>,
    pub entities: Vec<String>,
    /// Names another component served until now: (`orchestration` or `entity`, name, that
    /// component's digest).
    pub replaced: Vec<(&'static str, String, ComponentDigest)>,
}

pub(super) struct Components {
    compiler: Arc<Compiler>,
    linkers: Linkers,
    loaded: Mutex<HashMap<ComponentDigest, Arc<Loaded>>>,
    /// Orchestration name → the digest new instances use.
    names: Mutex<HashMap<String, ComponentDigest>>,
    /// Entity name → the digest whose code applies its operations (the newest registered).
    entity_names: Mutex<HashMap<String, ComponentDigest>>,
    /// The most linear memory a guest may use.
    max_memory: usize,
}

impl Components {
    pub fn new(
        cache_dir: Option<PathBuf>,
        instances: u32,
        max_memory: usize,
    ) -> Result<Self, ComponentError> {
        let engine = wasm::engine(instances, max_memory)?;
        let link = |e: wasmtime::Error| ComponentError::Link(format!("{e:#}"));
        Ok(Self {
            linkers: Linkers::new(&engine).map_err(link)?,
            compiler: Arc::new(Compiler::new(engine, cache_dir)),
            loaded: Mutex::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            entity_names: Mutex::new(HashMap::new()),
            max_memory,
        })
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        self.compiler.engine()
    }

    pub fn get(&self, digest: &ComponentDigest) -> Option<Arc<Loaded>> {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
    }

    /// Compiles, links and describes a component (or returns it if already loaded).
    pub async fn load(
        &self,
        digest: ComponentDigest,
        bytes: Vec<u8>,
    ) -> Result<Arc<Loaded>, ComponentError> {
        if let Some(l) = self.get(&digest) {
            return Ok(l);
        }
        let compiler = self.compiler.clone();
        let key = digest.as_str().to_string();
        let component = tokio::task::spawn_blocking(move || compiler.compile(&key, &bytes))
            .await
            .map_err(|e| ComponentError::Invalid(e.to_string()))??;
        let link = |e: wasmtime::Error| ComponentError::Link(format!("{e:#}"));
        let Linked {
            orchestration,
            activity,
            entity,
        } = self.linkers.link(&component).map_err(link)?;
        let (orchestrations, activities, entities) = self.describe(&entity).await?;
        let loaded = Arc::new(Loaded {
            digest: digest.clone(),
            orchestration,
            activity,
            entity,
            orchestrations,
            activities,
            entities,
        });
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest, loaded.clone());
        Ok(loaded)
    }

    /// Asks a component for the names it exports.
    async fn describe(
        &self,
        pre: &WorkflowPre<GuestState<NoContext>>,
    ) -> Result<(Vec<String>, Vec<String>, Vec<String>), ComponentError> {
        let describe = |e: wasmtime::Error| ComponentError::Describe(format!("{e:#}"));
        // Answering with its names takes a component no time: a second is plenty.
        let limits = Limits::new(Some(Duration::from_secs(1)), self.max_memory);
        let state = GuestState::new(
            wasm::activity_wasi(&[]),
            HttpPolicy::Deny,
            limits,
            NoContext,
        );
        let mut store = wasm::new_store(self.engine(), state);
        let instance = pre.instantiate_async(&mut store).await.map_err(describe)?;
        let orchestrations = instance
            .weft_workflow_orchestrations()
            .call_names(&mut store)
            .await
            .map_err(describe)?;
        let activities = instance
            .weft_workflow_activities()
            .call_names(&mut store)
            .await
            .map_err(describe)?;
        let entities = instance
            .weft_workflow_entities()
            .call_names(&mut store)
            .await
            .map_err(describe)?;
        Ok((orchestrations, activities, entities))
    }

    /// Makes a loaded component's orchestrations the ones new instances of those names use,
    /// and its entities the ones it applies operations of. A name another component served
    /// until now is listed in [`Registered::replaced`], and logged if `log`.
    pub fn publish(&self, loaded: &Loaded, log: bool) -> super::Registered {
        let mut replaced = Vec::new();
        for (map, names, kind) in [
            (&self.names, &loaded.orchestrations, "orchestration"),
            (&self.entity_names, &loaded.entities, "entity"),
        ] {
            let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
            for name in names {
                if let Some(old) = map.insert(name.clone(), loaded.digest.clone())
                    && old != loaded.digest
                {
                    if log {
                        tracing::info!(
                            "{kind} '{name}' is now served by component {} (was {}): new work uses \
                             the newest deployed component",
                            loaded.digest.short(),
                            old.short()
                        );
                    }
                    replaced.push((kind, name.clone(), old));
                }
            }
        }
        super::Registered {
            digest: loaded.digest.clone(),
            orchestrations: loaded.orchestrations.clone(),
            activities: loaded.activities.clone(),
            entities: loaded.entities.clone(),
            replaced,
        }
    }

    /// The orchestration names that have a digest, sorted.
    pub fn names(&self) -> Vec<String> {
        sorted_keys(&self.names)
    }

    /// The entity names that have a digest, sorted.
    pub fn entity_names(&self) -> Vec<String> {
        sorted_keys(&self.entity_names)
    }

    /// The digest whose code applies the operations of entity `name`.
    pub fn entity_digest(&self, name: &str) -> Option<ComponentDigest> {
        self.entity_names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The digest that new instances of orchestration `name` start on.
    pub fn digest_for(&self, name: &str) -> Option<ComponentDigest> {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}

fn sorted_keys(map: &Mutex<HashMap<String, ComponentDigest>>) -> Vec<String> {
    let mut names: Vec<String> = map
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}
