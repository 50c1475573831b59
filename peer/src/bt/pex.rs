//! Peer exchange (BEP 11), pure: what to tell one peer about the others,
//! and how often a peer may tell us.
//!
//! We tell each peer that speaks `ut_pex`, at most once every
//! [`PEX_INTERVAL`] (the first time as soon as its extension handshake is
//! in), which peers we are connected to now that we have not told it of
//! (`added`), and which ones we told it of that are gone (`dropped`), 50 of
//! each at most; only peers whose listening address we know (we dialled
//! them, or they said their port), never the peer itself (the caller leaves
//! it out). A peer that sends
//! more than [`MAX_RECEIVED_PER_INTERVAL`] messages within one interval is
//! flooding, and is dropped.

use std::{
    collections::HashSet,
    net::SocketAddr,
    time::{Duration, Instant},
};

use common::extension::pex::{PexMessage, MAX_SENT_PER_LIST};

/// Time between two messages to one peer (BEP 11: at most once a minute).
pub const PEX_INTERVAL: Duration = Duration::from_secs(60);
/// Messages a peer may send within one interval before it counts as a
/// flood: one, with room for a client's clock running a little fast and a
/// message sent early after the extension handshake.
pub const MAX_RECEIVED_PER_INTERVAL: u32 = 3;

/// What we have told one peer, and when.
#[derive(Debug, Default)]
pub struct PexSent {
    told: HashSet<SocketAddr>,
    last: Option<Instant>,
}

impl PexSent {
    /// The message due to a peer now, given the listening addresses (with
    /// BEP 11 flags) of the other peers we are connected to; `None` when it
    /// is too soon or there is nothing new.
    pub fn due(&mut self, connected: &[(SocketAddr, u8)], now: Instant) -> Option<PexMessage> {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < PEX_INTERVAL)
        {
            return None;
        }
        let now_connected: HashSet<SocketAddr> = connected.iter().map(|&(a, _)| a).collect();
        let added: Vec<(SocketAddr, u8)> = connected
            .iter()
            .filter(|(addr, _)| !self.told.contains(addr))
            .take(MAX_SENT_PER_LIST)
            .copied()
            .collect();
        let dropped: Vec<SocketAddr> = self
            .told
            .iter()
            .filter(|addr| !now_connected.contains(addr))
            .take(MAX_SENT_PER_LIST)
            .copied()
            .collect();
        if added.is_empty() && dropped.is_empty() {
            return None;
        }
        self.told.extend(added.iter().map(|&(a, _)| a));
        for addr in &dropped {
            self.told.remove(addr);
        }
        self.last = Some(now);
        Some(PexMessage { added, dropped })
    }
}

/// How often one peer has sent us PEX messages.
#[derive(Debug, Default)]
pub struct PexReceived {
    window_start: Option<Instant>,
    count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sent over {MAX_RECEIVED_PER_INTERVAL} peer exchange messages within {} s", PEX_INTERVAL.as_secs())]
pub struct Flood;

impl PexReceived {
    /// A message arrived at `now`: an error when that makes a flood.
    pub fn arrived(&mut self, now: Instant) -> Result<(), Flood> {
        match self.window_start {
            Some(start) if now.duration_since(start) < PEX_INTERVAL => self.count += 1,
            _ => {
                self.window_start = Some(now);
                self.count = 1;
            }
        }
        if self.count > MAX_RECEIVED_PER_INTERVAL {
            return Err(Flood);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::new([127, 0, 0, n].into(), 6881)
    }

    #[test]
    fn added_and_dropped_follow_the_connections_at_most_once_a_minute() {
        let start = Instant::now();
        let mut sent = PexSent::default();
        let first = sent.due(&[(addr(2), 0x10), (addr(3), 0)], start).unwrap();
        assert_eq!(first.added, [(addr(2), 0x10), (addr(3), 0)]);
        assert!(first.dropped.is_empty());
        let later = start + PEX_INTERVAL - Duration::from_secs(1);
        assert_eq!(sent.due(&[(addr(4), 0)], later), None, "too soon");
        let minute = start + PEX_INTERVAL;
        let second = sent.due(&[(addr(3), 0), (addr(4), 0)], minute).unwrap();
        assert_eq!(second.added, [(addr(4), 0)]);
        assert_eq!(second.dropped, [addr(2)]);
        let nothing_new = sent.due(&[(addr(3), 0), (addr(4), 0)], minute + PEX_INTERVAL);
        assert_eq!(nothing_new, None);
    }

    #[test]
    fn at_most_fifty_are_told_at_once_and_the_rest_next_time() {
        let start = Instant::now();
        let mut sent = PexSent::default();
        let many: Vec<(SocketAddr, u8)> = (2..=121).map(|n| (addr(n), 0)).collect();
        let first = sent.due(&many, start).unwrap();
        assert_eq!(first.added.len(), MAX_SENT_PER_LIST);
        let second = sent.due(&many, start + PEX_INTERVAL).unwrap();
        assert_eq!(second.added.len(), MAX_SENT_PER_LIST);
        assert!(second.added.iter().all(|a| !first.added.contains(a)));
        let third = sent.due(&many, start + 2 * PEX_INTERVAL).unwrap();
        assert_eq!(third.added.len(), 20);
    }

    #[test]
    fn a_fourth_message_within_a_minute_is_a_flood() {
        let start = Instant::now();
        let mut received = PexReceived::default();
        for s in 0..3 {
            received.arrived(start + Duration::from_secs(s)).unwrap();
        }
        assert_eq!(received.arrived(start + Duration::from_secs(3)), Err(Flood));
        // One a minute is fine for ever.
        let mut calm = PexReceived::default();
        for minute in 0..10 {
            calm.arrived(start + minute * PEX_INTERVAL).unwrap();
        }
    }
}
