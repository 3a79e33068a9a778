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

/// Parses an RFC 3339 `date-time` exactly as section 5.6 of the RFC (and OpenAPI's
/// `format: date-time`) defines it: `2026-12-01T09:00:00Z`, `2026-12-01t09:00:00.5+01:00`. The
/// date must exist; a leap second (`:60`) counts as `:59`; times before 1970 count as 1970.
pub fn parse_date_time(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let at = |i: usize, c: u8| b.get(i).is_some_and(|x| x.eq_ignore_ascii_case(&c));
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0;
    if at(i, b'.') {
        let frac = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        if frac == 0 {
            return None;
        }
        millis = (0..3).fold(0, |n, k| {
            n * 10 + digits(i + 1 + k, 1).filter(|_| k < frac).unwrap_or(0)
        });
        i += 1 + frac;
    }
    let offset_minutes = if at(i, b'Z') && b.len() == i + 1 {
        0
    } else if (at(i, b'+') || at(i, b'-')) && at(i + 3, b':') && b.len() == i + 6 {
        let (h, m) = (digits(i + 1, 2)?, digits(i + 4, 2)?);
        if h > 23 || m > 59 {
            return None;
        }
        if at(i, b'-') {
            -(h * 60 + m)
        } else {
            h * 60 + m
        }
    } else {
        return None;
    };
    // Days since 1970-01-01 of the civil date (Howard Hinnant's `days_from_civil`).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Some((seconds * 1_000 + millis).max(0) as Millis)
}

/// Parses an RFC 3339 time, leniently (a space for the `T`, no zone meaning UTC).
pub fn parse_rfc3339(s: &str) -> Result<Millis, humantime::TimestampError> {
    let t = humantime::parse_rfc3339_weak(s)?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::parse_date_time;

    #[test]
    fn date_times_are_read_as_rfc_3339_defines_them() {
        for (text, millis) in [
            ("2026-01-01T00:00:00Z", Some(1_767_225_600_000)),
            ("2000-02-29T12:00:00.123456+02:00", Some(951_818_400_123)),
            ("2000-02-29t10:00:00.123z", Some(951_818_400_123)),
            ("9999-12-31T23:59:60Z", Some(253_402_300_799_000)),
            ("1970-01-01T00:30:00+01:00", Some(0)),
            ("0001-01-01T00:00:00Z", Some(0)),
            ("2026-01-01 00:00:00Z", None),
            ("2026-01-01T00:00:00", None),
            ("2026-01-01T00:00:00.Z", None),
            ("2026-01-01T00:00:00+0100", None),
            ("2026-01-01T00:00:00+24:00", None),
            ("2026-01-01T00:00:00Z ", None),
            ("2026-02-29T00:00:00Z", None),
            ("1900-02-29T00:00:00Z", None),
            ("2026-13-01T00:00:00Z", None),
            ("2026-01-01T12:99:00Z", None),
            ("+026-01-01T00:00:00Z", None),
            ("2026-01-01T00:00:00ZZ", None),
            ("", None),
        ] {
            assert_eq!(parse_date_time(text), millis, "{text:?}");
        }
    }
}
