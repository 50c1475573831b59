//! Rate limits both ways: the node's own queries per second, and replies
//! per source address, with a short block list for addresses that keep
//! sending past their limit. A `get_peers` or `find_node` reply is larger
//! than its query, so without these the node could be used to amplify a
//! flood towards a spoofed address.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use tokio::time::Instant;

/// Our own queries per second, and the burst.
pub const QUERIES_PER_SECOND: f64 = 50.0;
pub const QUERY_BURST: f64 = 50.0;
/// Replies per second to one source address, and the burst.
pub const REPLIES_PER_SOURCE: f64 = 10.0;
pub const REPLY_BURST: f64 = 20.0;
/// Replies per second to everyone together, and the burst.
pub const REPLIES_PER_SECOND: f64 = 500.0;
/// Queries dropped from one address (past its limit) before it is blocked.
const STRIKES: u32 = 20;
/// How long a blocked address gets no reply at all.
pub const BLOCK_FOR: Duration = Duration::from_secs(60);
/// Most source addresses tracked; when full, idle ones are forgotten.
pub const MAX_SOURCES: usize = 4096;

/// A token bucket of `rate` per second holding at most `burst`.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Bucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Whether a token is there now (refilling first), without taking it.
    pub fn ready(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        self.tokens >= 1.0
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.ready(now) {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Source {
    bucket: Bucket,
    strikes: u32,
    blocked_until: Option<Instant>,
}

/// Whether to answer a query, by its source address.
#[derive(Debug)]
pub struct ReplyLimits {
    sources: HashMap<SocketAddr, Source>,
    all: Bucket,
}

impl ReplyLimits {
    pub fn new(now: Instant) -> Self {
        ReplyLimits {
            sources: HashMap::new(),
            all: Bucket::new(REPLIES_PER_SECOND, REPLIES_PER_SECOND, now),
        }
    }

    /// True when a query from `from` may be answered now.
    pub fn allow(&mut self, from: SocketAddr, now: Instant) -> bool {
        if !self.sources.contains_key(&from) && self.sources.len() >= MAX_SOURCES {
            self.forget_idle(now);
            if self.sources.len() >= MAX_SOURCES {
                return false;
            }
        }
        let source = self.sources.entry(from).or_insert_with(|| Source {
            bucket: Bucket::new(REPLIES_PER_SOURCE, REPLY_BURST, now),
            strikes: 0,
            blocked_until: None,
        });
        if let Some(until) = source.blocked_until {
            if now < until {
                return false;
            }
            source.blocked_until = None;
            source.strikes = 0;
        }
        if !source.bucket.take(now) {
            source.strikes += 1;
            if source.strikes >= STRIKES {
                source.blocked_until = Some(now + BLOCK_FOR);
            }
            return false;
        }
        self.all.take(now)
    }

    /// Whether `from` is on the block list now.
    pub fn is_blocked(&self, from: &SocketAddr, now: Instant) -> bool {
        self.sources
            .get(from)
            .and_then(|s| s.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Forgets sources whose bucket has refilled and that are not blocked.
    fn forget_idle(&mut self, now: Instant) {
        let refill = Duration::from_secs_f64(REPLY_BURST / REPLIES_PER_SOURCE);
        self.sources.retain(|_, s| {
            s.blocked_until.is_some_and(|until| now < until)
                || now.saturating_duration_since(s.bucket.last) < refill
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_address_gets_its_burst_then_the_rate_then_nothing() {
        let start = Instant::now();
        let mut limits = ReplyLimits::new(start);
        let flooder: SocketAddr = "127.0.0.2:1".parse().unwrap();
        let honest: SocketAddr = "127.0.0.3:1".parse().unwrap();
        // 1,000 queries within one second.
        let mut answered = 0;
        for i in 0..1000u32 {
            let now = start + Duration::from_millis(u64::from(i));
            answered += u32::from(limits.allow(flooder, now));
        }
        assert!(
            answered <= (REPLY_BURST + REPLIES_PER_SOURCE) as u32,
            "{answered}"
        );
        assert!(answered >= REPLY_BURST as u32);
        let after = start + Duration::from_secs(1);
        assert!(limits.is_blocked(&flooder, after));
        assert!(limits.allow(honest, after), "others are still answered");
        assert!(!limits.allow(flooder, after + BLOCK_FOR / 2));
        assert!(limits.allow(flooder, after + BLOCK_FOR));
    }

    #[test]
    fn many_sources_are_bounded_in_memory() {
        let now = Instant::now();
        let mut limits = ReplyLimits::new(now);
        for n in 0..(MAX_SOURCES as u32 + 100) {
            let [_, a, b, c] = n.to_be_bytes();
            limits.allow(SocketAddr::from(([127, a, b, c], 1)), now);
        }
        assert!(limits.sources.len() <= MAX_SOURCES);
    }

    #[test]
    fn the_query_bucket_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(QUERIES_PER_SECOND, QUERY_BURST, start);
        let sent = (0..200).filter(|_| bucket.take(start)).count();
        assert_eq!(sent, QUERY_BURST as usize);
        let later = start + Duration::from_secs(1);
        let sent = (0..200).filter(|_| bucket.take(later)).count();
        assert_eq!(sent, QUERIES_PER_SECOND as usize);
    }
}
