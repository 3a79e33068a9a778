//! How the runtime behaves: its settings and their defaults.

use std::time::Duration;

/// How the runtime behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a waiting instance stays in memory; zero evicts it at every wait.
    pub idle_timeout: Duration,
    /// Environment variables that activities see (app settings).
    pub app_settings: Vec<(String, String)>,
    /// The base URL of this server as external systems reach it (for callback URLs).
    pub public_url: String,
    /// At most this many instances stay in memory while they wait; more are evicted at once.
    pub max_hot: usize,
    /// How long an orchestration (or an entity operation) may run without waiting.
    pub activation_deadline: Duration,
    /// How long one attempt of an activity may take; then it fails (and may be retried).
    pub activity_timeout: Duration,
    /// The most linear memory one guest may use, in bytes.
    pub max_memory: usize,
    /// The most events one run's history may hold.
    pub max_history: usize,
    /// The largest payload (input, output, state) an orchestration or activity may produce.
    pub max_payload: usize,
    /// On a shared store: how long this node's leases last without being renewed.
    pub lease: Duration,
    /// On a shared store: at most this many activities run on this node at once; the others
    /// wait for a node with room to claim them.
    pub max_activities: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(60),
            app_settings: Vec::new(),
            public_url: "http://127.0.0.1:8080".into(),
            max_hot: 1_000,
            activation_deadline: Duration::from_secs(10),
            activity_timeout: Duration::from_secs(300),
            max_memory: crate::wasm::MAX_GUEST_MEMORY,
            max_history: 100_000,
            max_payload: 1 << 20,
            lease: Duration::from_secs(10),
            max_activities: 100,
        }
    }
}
