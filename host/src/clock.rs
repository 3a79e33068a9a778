//! The one place that reads wall time. Everything else gets time from a [`Clock`], so tests
//! (and `weft serve --manual-clock`) can skip time instead of waiting for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// A source of time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
    /// Resolves once `now() >= at` (or a little earlier, callers re-check).
    fn sleep_until(&self, at: Millis) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// Moves a manual clock forward; `None` for clocks that cannot be moved.
    fn advance(&self, _by: Duration) -> Option<Millis> {
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

/// Frozen time that moves only when told to.
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

    fn advance(&self, by: Duration) -> Option<Millis> {
        let now =
            self.now.fetch_add(by.as_millis() as u64, Ordering::SeqCst) + by.as_millis() as u64;
        self.changed.send_replace(now);
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
