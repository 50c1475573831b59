//! A byte-rate limiter: one token bucket that any number of tasks share
//! through an `Arc`, so a whole server (or a whole peer) stays under one rate.
//!
//! The bucket holds at most `burst` tokens (one token is one byte) and refills
//! at `rate` tokens per second. [`RateLimiter::acquire`] takes what it asks for
//! at once, letting the balance go negative, then sleeps until the debt is
//! repaid. So a request larger than the burst still works (it simply waits
//! longer), and concurrent callers queue in the order they asked: each later
//! caller sees the debt of the earlier ones and sleeps correspondingly longer.
//! Over any interval the bytes let through are at most `burst + rate × time`.
//!
//! Time comes from `tokio::time`, so tests run under `tokio::time::pause`.
//! A dropped `acquire` future keeps its reservation: the bucket errs on the
//! side of sending less, never more.

use std::sync::Mutex;

use tokio::time::{Duration, Instant};

/// The smallest burst, so that a low rate still moves whole network-sized chunks.
pub const MIN_BURST: u64 = 64 * 1024;

/// A shared byte-rate limit; [`RateLimiter::unlimited`] never waits.
#[derive(Debug)]
pub struct RateLimiter {
    bucket: Option<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// A plain mutex: it is held for a few arithmetic operations and never
    /// across an await.
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Bytes per second; infinite while an adjustable limiter is unlimited.
    rate: f64,
    burst: f64,
    /// Tokens at `updated`; negative while callers are waiting.
    tokens: f64,
    updated: Instant,
}

/// A tenth of a second of traffic, but at least [`MIN_BURST`].
fn default_burst(rate: u64) -> u64 {
    (rate / 10).max(MIN_BURST)
}

impl RateLimiter {
    /// A limiter that lets everything through at once.
    pub fn unlimited() -> Self {
        RateLimiter { bucket: None }
    }

    /// `rate` bytes per second (`None`: unlimited), with a burst of a tenth of
    /// a second of traffic but at least [`MIN_BURST`]. The bucket starts full.
    pub fn new(rate: Option<u64>) -> Self {
        match rate {
            None | Some(0) => Self::unlimited(),
            Some(rate) => Self::with_burst(rate, default_burst(rate)),
        }
    }

    /// As [`RateLimiter::new`], but [`RateLimiter::set_rate`] may change it.
    pub fn adjustable(rate: Option<u64>) -> Self {
        match rate {
            // A full burst to start with, as `new` gives.
            Some(rate) if rate > 0 => Self::with_burst(rate, default_burst(rate)),
            _ => {
                let limiter = RateLimiter::with_burst(1, 1);
                limiter.set_rate(None);
                limiter
            }
        }
    }

    /// `rate` bytes per second with an explicit burst (both at least 1).
    pub fn with_burst(rate: u64, burst: u64) -> Self {
        let burst = burst.max(1) as f64;
        RateLimiter {
            bucket: Some(Bucket {
                state: Mutex::new(State {
                    rate: rate.max(1) as f64,
                    burst,
                    tokens: burst,
                    updated: Instant::now(),
                }),
            }),
        }
    }

    /// A new rate (`None` or 0: unlimited) with its default burst, from now
    /// on; what callers already owe stays owed. Only an adjustable limiter
    /// (or one made with a rate) changes; an unlimited one stays so.
    pub fn set_rate(&self, rate: Option<u64>) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        let mut state = bucket.lock();
        let now = Instant::now();
        state.refill(now);
        match rate {
            None | Some(0) => {
                state.rate = f64::INFINITY;
                state.tokens = state.tokens.max(0.0);
            }
            Some(rate) => {
                let was_unlimited = state.rate.is_infinite();
                state.rate = rate as f64;
                state.burst = default_burst(rate) as f64;
                state.tokens = if was_unlimited {
                    state.burst
                } else {
                    state.tokens.min(state.burst)
                };
            }
        }
    }

    /// The rate in bytes per second, if limited.
    pub fn rate(&self) -> Option<u64> {
        let bucket = self.bucket.as_ref()?;
        let rate = bucket.lock().rate;
        rate.is_finite().then_some(rate as u64)
    }

    /// The burst in bytes, if limited: a good upper bound for one chunk.
    pub fn burst(&self) -> Option<u64> {
        let bucket = self.bucket.as_ref()?;
        let state = bucket.lock();
        state.rate.is_finite().then_some(state.burst as u64)
    }

    /// Waits until `bytes` may pass.
    pub async fn acquire(&self, bytes: u64) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        let wait = bucket.reserve(bytes as f64, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

impl State {
    /// Tokens earned since `updated`, up to the burst.
    fn refill(&mut self, now: Instant) {
        if self.rate.is_finite() {
            let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        self.updated = now;
    }
}

impl Bucket {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another task panicked between two
        // assignments of plain numbers; the numbers are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `bytes` tokens at `now`; returns how long to wait until the
    /// balance is back to zero.
    fn reserve(&self, bytes: f64, now: Instant) -> Duration {
        let mut state = self.lock();
        if state.rate.is_infinite() {
            return Duration::ZERO;
        }
        state.refill(now);
        state.tokens -= bytes;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.tokens / state.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    async fn timed(limiter: &RateLimiter, bytes: u64) -> Duration {
        let start = Instant::now();
        limiter.acquire(bytes).await;
        start.elapsed()
    }

    fn close(actual: Duration, expected_secs: f64) -> bool {
        (actual.as_secs_f64() - expected_secs).abs() < 1e-3
    }

    #[tokio::test(start_paused = true)]
    async fn the_burst_passes_at_once_then_the_rate_holds() {
        let limiter = RateLimiter::with_burst(1000, 500);
        assert!(close(timed(&limiter, 500).await, 0.0));
        assert!(close(timed(&limiter, 1000).await, 1.0));
        assert!(close(timed(&limiter, 250).await, 0.25));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_refills_only_up_to_the_burst() {
        let limiter = RateLimiter::with_burst(1000, 500);
        limiter.acquire(500).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(close(timed(&limiter, 500).await, 0.0));
        assert!(close(timed(&limiter, 100).await, 0.1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_larger_than_the_burst_waits_for_its_debt() {
        let limiter = RateLimiter::with_burst(1000, 100);
        assert!(close(timed(&limiter, 2100).await, 2.0));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_rate() {
        let limiter = Arc::new(RateLimiter::with_burst(1000, 100));
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move {
                    for _ in 0..10 {
                        limiter.acquire(100).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        // 4,000 bytes, 100 of them from the initial burst, at 1,000 bytes/s.
        assert!(close(start.elapsed(), 3.9), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let limiter = RateLimiter::new(None);
        assert_eq!(limiter.rate(), None);
        assert!(close(timed(&limiter, u64::MAX).await, 0.0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_adjustable_limiter_starts_with_a_full_burst_as_a_fixed_one() {
        let (fixed, adjustable) = (
            RateLimiter::new(Some(1_000_000)),
            RateLimiter::adjustable(Some(1_000_000)),
        );
        assert_eq!(adjustable.burst(), fixed.burst());
        assert!(close(timed(&fixed, 100_000).await, 0.0));
        assert!(close(timed(&adjustable, 100_000).await, 0.0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_adjustable_limiter_changes_its_rate() {
        let limiter = RateLimiter::adjustable(None);
        assert_eq!(limiter.rate(), None);
        assert!(close(timed(&limiter, u64::MAX / 2).await, 0.0));
        limiter.set_rate(Some(100_000));
        assert_eq!(limiter.rate(), Some(100_000));
        // A full burst, then the rate.
        assert!(close(timed(&limiter, MIN_BURST).await, 0.0));
        assert!(close(timed(&limiter, 50_000).await, 0.5));
        limiter.set_rate(Some(200_000));
        assert!(close(timed(&limiter, 50_000).await, 0.25));
        limiter.set_rate(None);
        assert!(close(timed(&limiter, 10_000_000).await, 0.0));
        let fixed = RateLimiter::unlimited();
        fixed.set_rate(Some(1));
        assert_eq!(fixed.rate(), None, "an unlimited limiter stays so");
    }

    #[test]
    fn the_default_burst_is_a_tenth_of_a_second_but_at_least_64_kib() {
        assert_eq!(RateLimiter::new(Some(10_000_000)).burst(), Some(1_000_000));
        assert_eq!(RateLimiter::new(Some(1000)).burst(), Some(MIN_BURST));
        assert_eq!(RateLimiter::new(Some(0)).rate(), None);
    }
}
