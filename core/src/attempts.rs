//! What becomes of an activity attempt's result: it is recorded, or (a failure that the
//! activity's retry policy allows to retry) the attempt is recorded as failed and the activity
//! runs again later.

use crate::{HistoryEvent, Millis, Pos, RetryPolicy};

/// The decision on one attempt's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// The result goes into the history as the activity's outcome; the activity is done.
    Record(HistoryEvent),
    /// The attempt's failure goes into the history, and attempt `attempt + 1` runs at `at`.
    Retry { at: Millis, event: HistoryEvent },
}

/// Settles attempt `attempt` of the activity scheduled at `handle`, which ended with `result`
/// at `now`, under its retry policy (`None`: no retries).
pub fn settle(
    handle: Pos,
    attempt: u32,
    policy: Option<&RetryPolicy>,
    result: Result<String, String>,
    now: Millis,
) -> Settled {
    match result {
        Ok(output) => Settled::Record(HistoryEvent::ActivityCompleted { handle, output }),
        Err(error) => match policy.and_then(|p| p.retry_delay(attempt, &error)) {
            Some(delay) => {
                let at = now.saturating_add(delay);
                Settled::Retry {
                    at,
                    event: HistoryEvent::ActivityAttemptFailed {
                        handle,
                        attempt,
                        error,
                        retry_at: at,
                    },
                }
            }
            None => Settled::Record(HistoryEvent::ActivityFailed { handle, error }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32, non_retryable: &[&str]) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            first_interval_ms: 1_000,
            backoff_coefficient: 2.0,
            max_interval_ms: 10_000,
            non_retryable: non_retryable.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_success_is_recorded_whatever_the_policy() {
        assert_eq!(
            settle(2, 3, Some(&policy(5, &[])), Ok("\"ok\"".into()), 100),
            Settled::Record(HistoryEvent::ActivityCompleted {
                handle: 2,
                output: "\"ok\"".into()
            })
        );
    }

    #[test]
    fn a_failure_without_a_policy_is_recorded_as_the_outcome() {
        assert_eq!(
            settle(2, 1, None, Err("io: down".into()), 100),
            Settled::Record(HistoryEvent::ActivityFailed {
                handle: 2,
                error: "io: down".into()
            })
        );
    }

    #[test]
    fn a_failure_the_policy_allows_is_retried_after_the_backoff() {
        let p = policy(4, &[]);
        // Attempt 1 waits the first interval, attempt 2 twice that, attempt 3 four times.
        for (attempt, delay) in [(1, 1_000), (2, 2_000), (3, 4_000)] {
            assert_eq!(
                settle(7, attempt, Some(&p), Err("io: down".into()), 50),
                Settled::Retry {
                    at: 50 + delay,
                    event: HistoryEvent::ActivityAttemptFailed {
                        handle: 7,
                        attempt,
                        error: "io: down".into(),
                        retry_at: 50 + delay
                    }
                }
            );
        }
    }

    #[test]
    fn the_last_allowed_attempt_and_a_non_retryable_kind_end_the_activity() {
        let p = policy(3, &["invalid"]);
        assert!(matches!(
            settle(7, 3, Some(&p), Err("io: down".into()), 0),
            Settled::Record(HistoryEvent::ActivityFailed { .. })
        ));
        assert!(matches!(
            settle(7, 1, Some(&p), Err("invalid: bad number".into()), 0),
            Settled::Record(HistoryEvent::ActivityFailed { .. })
        ));
    }

    #[test]
    fn a_retry_time_never_overflows() {
        let Settled::Retry { at, .. } =
            settle(1, 1, Some(&policy(2, &[])), Err("x".into()), u64::MAX)
        else {
            panic!("a retryable failure is retried");
        };
        assert_eq!(at, u64::MAX);
    }
}
