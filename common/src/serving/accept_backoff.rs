//! What an accept loop does when `accept` fails: wait, longer each time, and
//! say so once.
//!
//! A failing `accept` is almost always the process (EMFILE) or the system
//! (ENFILE, ENOBUFS) out of a resource; retrying at once would spin a core
//! and log a line per try. After each failure the loop pauses for
//! [`AcceptBackoff::failed`]'s delay (10 ms, doubling up to 1 s); the first
//! failure of a run is logged as a warning, the rest at debug level, and the
//! first success after them says the loop is accepting again. Near the limit
//! a descriptor freed elsewhere (a tracker request ending) lets one accept
//! through between failures; a new run of failures within [`WARN_AGAIN`] of
//! the last warning is logged at debug level too, so it is said once.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

/// The first pause after a failed accept.
pub const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause.
pub const MAX_PAUSE: Duration = Duration::from_secs(1);
/// How long after a warning a new run of failures warns again.
pub const WARN_AGAIN: Duration = Duration::from_secs(60);

/// Back-off state of one accept loop.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    /// Failures in a row since the last success.
    failures: u32,
    /// When the last warning was logged.
    warned: Option<Instant>,
}

impl AcceptBackoff {
    /// After a failed accept: how long to pause before the next one.
    pub fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.failed_at(error, Instant::now())
    }

    /// [`AcceptBackoff::failed`] at `now`.
    pub fn failed_at(&mut self, error: &std::io::Error, now: Instant) -> Duration {
        let recently = self
            .warned
            .is_some_and(|at| now.saturating_duration_since(at) < WARN_AGAIN);
        if self.failures == 0 && !recently {
            warn!("accept failed: {error}; pausing new connections until it works again");
            self.warned = Some(now);
        } else {
            debug!("accept failed again: {error}");
        }
        let pause = FIRST_PAUSE
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_PAUSE);
        self.failures = self.failures.saturating_add(1);
        pause
    }

    /// After a successful accept.
    pub fn succeeded(&mut self) {
        if self.failures > 0 {
            info!(failures = self.failures, "accepting connections again");
            self.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_second_and_reset_on_success() {
        let error = std::io::Error::from_raw_os_error(24); // EMFILE
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<u128> = (0..10)
            .map(|_| backoff.failed(&error).as_millis())
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        for _ in 0..100 {
            assert_eq!(backoff.failed(&error), MAX_PAUSE);
        }
        backoff.succeeded();
        assert_eq!(backoff.failed(&error), FIRST_PAUSE);
    }

    #[test]
    fn a_new_run_of_failures_warns_again_only_after_a_minute() {
        let error = std::io::Error::from_raw_os_error(24); // EMFILE
        let start = Instant::now();
        let mut backoff = AcceptBackoff::default();
        backoff.failed_at(&error, start);
        assert_eq!(backoff.warned, Some(start));
        // One accept gets through (a descriptor freed elsewhere), then it
        // fails again: not a new warning.
        backoff.succeeded();
        backoff.failed_at(&error, start + Duration::from_millis(20));
        assert_eq!(backoff.warned, Some(start));
        backoff.succeeded();
        let later = start + WARN_AGAIN;
        backoff.failed_at(&error, later);
        assert_eq!(backoff.warned, Some(later));
    }
}
