//! The two WASI contexts. Orchestrations get a deterministic one: clocks read the recorded
//! orchestration time, random sources are seeded from the history, and there is no
//! filesystem, network, environment or standard I/O. Activities get the real thing.

use crate::clock::Millis;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// The orchestration's current time as WASI clocks report it. The activation moves it only to
/// recorded times, so replay sees the same values as the first run.
#[derive(Clone, Debug)]
pub struct OrchestrationClock {
    now: Arc<AtomicU64>,
    start: Millis,
}

impl OrchestrationClock {
    pub fn new(start: Millis) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(start)),
            start,
        }
    }

    /// Moves the clock forward to `at` (never back).
    pub fn advance_to(&self, at: Millis) {
        self.now.fetch_max(at, Ordering::SeqCst);
    }

    pub fn now(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }
}

struct Wall(OrchestrationClock);

impl HostWallClock for Wall {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        Duration::from_millis(self.0.now())
    }
}

struct Monotonic(OrchestrationClock);

impl HostMonotonicClock for Monotonic {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        (self.0.now() - self.0.start) * 1_000_000
    }
}

/// Deterministic WASI for an orchestration whose history recorded `seed`.
pub fn orchestration_wasi(clock: &OrchestrationClock, seed: u64) -> WasiCtx {
    let mut b = WasiCtxBuilder::new();
    b.wall_clock(Wall(clock.clone()))
        .monotonic_clock(Monotonic(clock.clone()))
        .secure_random(StdRng::seed_from_u64(seed))
        .insecure_random(StdRng::seed_from_u64(seed.rotate_left(32)))
        .insecure_random_seed(u128::from(seed) << 64 | u128::from(seed.rotate_left(17)))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    b.build()
}

/// Real WASI for an activity, with the app settings as its environment.
pub fn activity_wasi(settings: &[(String, String)]) -> WasiCtx {
    let mut b = WasiCtxBuilder::new();
    b.envs(settings).inherit_stdout().inherit_stderr();
    b.build()
}
