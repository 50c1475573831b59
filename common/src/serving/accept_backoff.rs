//! What an accept loop does when `accept` fails: wait, longer each time, and
//! say so once.
//!
//! A failing `accept` is almost always the process (EMFILE) or the system
//! (ENFILE, ENOBUFS) out of a resource; retrying at once would spin a core
//! and log a line per try. After each failure the loop pauses for
//! [`AcceptBackoff::failed`]'s delay (10 ms, doubling up to 1 s); the first
//! failure of a run is logged as a warning, the rest at debug level, and the
//! first success after them says the loop is accepting again.

use std::time::Duration;

use tracing::{debug, info, warn};

/// The first pause after a failed accept.
pub const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause.
pub const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Back-off state of one accept loop.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    /// Failures in a row since the last success.
    failures: u32,
}

impl AcceptBackoff {
    /// After a failed accept: how long to pause before the next one.
    pub fn failed(&mut self, error: &std::io::Error) -> Duration {
        if self.failures == 0 {
            warn!("accept failed: {error}; pausing new connections until it works again");
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
}
