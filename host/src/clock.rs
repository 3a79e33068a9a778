//! The one place that reads wall time. Everything else gets time from a [`Clock`], so tests
//! (and `weft serve --manual-clock`) can skip time instead of waiting for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Milliseconds since the Unix epoch.
pub use weft_core::Millis;

/// A source of time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
    /// Resolves once `now() >= at` (or a little earlier, callers re-check).
    fn sleep_until(&self, at: Millis) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// Whether this clock moves only when told to ([`Clock::advance_to`]).
    fn is_manual(&self) -> bool {
        false
    }
    /// Moves a manual clock forward to `at` (never back); the time it then shows. `None` for
    /// clocks that cannot be moved.
    fn advance_to(&self, _at: Millis) -> Option<Millis> {
        None
    }
}

/// Wall time.
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(
        clippy::disallowed_methods,
        reason = "the clock module is where wall time is read"
    )]
    fn now(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }

    fn sleep_until(&self, at: Millis) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = at.saturating_sub(self.now());
        // Re-check at least every minute so a wall-clock jump is noticed.
        Box::pin(tokio::time::sleep(Duration::from_millis(wait.min(60_000))))
    }
}

/// Frozen time that moves only when told to. The server keeps its time in the database (see
/// `Store::manual_clock`), so it survives restarts and never moves back.
pub struct ManualClock {
    now: AtomicU64,
    changed: watch::Sender<Millis>,
}

impl ManualClock {
    pub fn new(start: Millis) -> Self {
        Self {
            now: AtomicU64::new(start),
            changed: watch::channel(start).0,
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, at: Millis) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut rx = self.changed.subscribe();
        Box::pin(async move {
            while *rx.borrow_and_update() < at {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    fn is_manual(&self) -> bool {
        true
    }

    fn advance_to(&self, at: Millis) -> Option<Millis> {
        let now = self.now.fetch_max(at, Ordering::SeqCst).max(at);
        self.changed.send_if_modified(|shown| {
            let moved = *shown < now;
            *shown = (*shown).max(now);
            moved
        });
        Some(now)
    }
}

/// Formats a time as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(at: Millis) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(at)).to_string()
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Result<Millis, humantime::TimestampError> {
    let t = humantime::parse_rfc3339_weak(s)?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0))
}
