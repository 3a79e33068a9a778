//! The host's metrics, for Prometheus to scrape at `/metrics` (in the OpenMetrics text
//! format): what ran, how often and how long. Counters end in `_total`, durations are in
//! seconds. One set per process, so every layer counts without being handed a handle.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrchestrationLabels {
    pub orchestration: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FinishedLabels {
    pub orchestration: String,
    /// `completed`, `failed` or `terminated`.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub activity: String,
    /// `completed`, `retried` (failed, another attempt comes) or `failed` (the last one).
    pub outcome: &'static str,
}

/// Every metric weft exports.
pub struct Metrics {
    registry: Registry,
    pub instances_started: Family<OrchestrationLabels, Counter>,
    pub instances_finished: Family<FinishedLabels, Counter>,
    pub activity_attempts: Family<AttemptLabels, Counter>,
    pub events_raised: Counter,
    pub timers_fired: Counter,
    pub hot_instances: Gauge,
    pub replays: Counter,
    pub replay_seconds: Histogram,
    pub activation_seconds: Histogram,
    pub store_commit_seconds: Histogram,
    pub store_batch_size: Histogram,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// Durations from 100 µs to about 100 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

impl Metrics {
    fn new() -> Self {
        let m = Self {
            registry: Registry::default(),
            instances_started: Family::default(),
            instances_finished: Family::default(),
            activity_attempts: Family::default(),
            events_raised: Counter::default(),
            timers_fired: Counter::default(),
            hot_instances: Gauge::default(),
            replays: Counter::default(),
            replay_seconds: seconds(),
            activation_seconds: seconds(),
            store_commit_seconds: seconds(),
            // 1 to 4,096 writes in one transaction.
            store_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
        };
        let mut r = Registry::default();
        r.register(
            "weft_instances_started",
            "Instances started by a client",
            m.instances_started.clone(),
        );
        r.register(
            "weft_instances_finished",
            "Instances that ended, by final status",
            m.instances_finished.clone(),
        );
        r.register(
            "weft_activity_attempts",
            "Activity attempts, by outcome",
            m.activity_attempts.clone(),
        );
        r.register(
            "weft_events_raised",
            "Events raised to instances (through the API or a callback URL)",
            m.events_raised.clone(),
        );
        r.register(
            "weft_timers_fired",
            "Durable timers fired (timers of one instance falling due together count once)",
            m.timers_fired.clone(),
        );
        r.register(
            "weft_hot_instances",
            "Instances in this node's memory",
            m.hot_instances.clone(),
        );
        r.register(
            "weft_replays",
            "Activations that replayed a recorded history",
            m.replays.clone(),
        );
        r.register(
            "weft_replay_seconds",
            "Time to replay the recorded calls of a history",
            m.replay_seconds.clone(),
        );
        r.register(
            "weft_activation_seconds",
            "Time an instance spends in memory per activation (load, replay, run, idle)",
            m.activation_seconds.clone(),
        );
        r.register(
            "weft_store_commit_seconds",
            "Time to commit (and fsync) one store transaction",
            m.store_commit_seconds.clone(),
        );
        r.register(
            "weft_store_batch_size",
            "Writes committed together in one store transaction",
            m.store_batch_size.clone(),
        );
        Self { registry: r, ..m }
    }

    /// The OpenMetrics text of every metric, `hot` being the instances in memory now.
    pub fn encode(&self, hot: usize) -> String {
        self.hot_instances.set(hot as i64);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts the start of an instance of `orchestration`.
    pub fn started(&self, orchestration: &str) {
        self.instances_started
            .get_or_create(&OrchestrationLabels {
                orchestration: orchestration.to_string(),
            })
            .inc();
    }

    /// Counts the end of an instance of `orchestration` with `status` (`Completed`, ...).
    pub fn finished(&self, orchestration: &str, status: &str) {
        self.instances_finished
            .get_or_create(&FinishedLabels {
                orchestration: orchestration.to_string(),
                status: status.to_ascii_lowercase(),
            })
            .inc();
    }

    /// Counts an attempt of `activity` that ended with `outcome`.
    pub fn attempt(&self, activity: &str, outcome: &'static str) {
        self.activity_attempts
            .get_or_create(&AttemptLabels {
                activity: activity.to_string(),
                outcome,
            })
            .inc();
    }
}
