//! Whom the coordinator dials (pure; time is passed in).
//!
//! It owns the addresses we know of (from trackers, the DHT, peer exchange
//! and by hand), those we are dialling or connected to by our own dial, those
//! never to dial again (ourselves), and when each was last dialled.
//!
//! A peer keeps at most `--max-peers` sessions, but **dials only while it has
//! fewer than three fifths of them** ([`dial_below`]: 30 of the default 50);
//! the rest is left for peers that dial it. This is the original client's
//! rule (it formed new connections only below 30 peers and refused them at
//! 55), and the study shows why: in a swarm larger than `--max-peers` whose
//! peers arrive one after another, peers that dial as many as they may fill
//! each other's slots and the seeder's, and the later ones trade among
//! themselves behind the few links left into the first group. At N = 100
//! (one machine, 5 Mbit/s, 32 MiB, 50 peers each), hosts 1 to 50 finished
//! at 61 s and hosts 51 to 100 at 77 s.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    time::{Duration, Instant},
};

/// How long before dialling the same address again.
pub const REDIAL_AFTER: Duration = Duration::from_secs(10);
/// Most peer addresses kept to dial (from trackers, peer exchange and by
/// hand): peer exchange alone could name thousands.
pub const MAX_KNOWN_PEERS: usize = 2000;

/// We dial only while we have fewer sessions than this (ours and theirs):
/// three fifths of `max_peers`, at least one.
pub fn dial_below(max_peers: usize) -> usize {
    (max_peers * 3).div_ceil(5).max(1)
}

#[derive(Debug, Default)]
pub struct Dialer {
    known: HashSet<SocketAddr>,
    /// Dialled, until that session ends (connecting or connected).
    dialing: HashSet<SocketAddr>,
    never: HashSet<SocketAddr>,
    last_dial: HashMap<SocketAddr, Instant>,
}

impl Dialer {
    /// Remembers addresses to dial, up to [`MAX_KNOWN_PEERS`] in all.
    pub fn learn(&mut self, found: impl IntoIterator<Item = SocketAddr>) {
        let room = MAX_KNOWN_PEERS.saturating_sub(self.known.len());
        self.known.extend(found.into_iter().take(room));
    }

    /// The addresses to dial now, marked as dialled at `now`: known, not
    /// connected (`connected`, either way), not dialled in the last
    /// [`REDIAL_AFTER`], and no more than `sessions` (all sessions, ours and
    /// theirs, connecting or connected) leave under [`dial_below`].
    pub fn due(
        &mut self,
        connected: &HashSet<SocketAddr>,
        sessions: usize,
        max_peers: usize,
        now: Instant,
    ) -> Vec<SocketAddr> {
        let room = dial_below(max_peers).saturating_sub(sessions);
        let mut chosen = Vec::new();
        for &addr in &self.known {
            if chosen.len() >= room {
                break;
            }
            let recent = self
                .last_dial
                .get(&addr)
                .is_some_and(|t| now.duration_since(*t) < REDIAL_AFTER);
            if !(recent
                || self.dialing.contains(&addr)
                || connected.contains(&addr)
                || self.never.contains(&addr))
            {
                chosen.push(addr);
            }
        }
        for &addr in &chosen {
            self.dialing.insert(addr);
            self.last_dial.insert(addr, now);
        }
        chosen
    }

    /// The session we dialled to `addr` ended; `ourselves`: it was us, never
    /// dial it again.
    pub fn ended(&mut self, addr: SocketAddr, ourselves: bool) {
        self.dialing.remove(&addr);
        if ourselves {
            self.never.insert(addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 6000 + n))
    }

    fn dialer(n: u16) -> Dialer {
        let mut dialer = Dialer::default();
        dialer.learn((1..=n).map(addr));
        dialer
    }

    #[test]
    fn two_fifths_of_the_slots_are_left_for_peers_that_dial_us() {
        assert_eq!(dial_below(50), 30);
        assert_eq!(dial_below(5), 3);
        assert_eq!(dial_below(1), 1);
        assert_eq!(dial_below(0), 1);
        let mut dialer = dialer(100);
        let now = Instant::now();
        let first = dialer.due(&HashSet::new(), 0, 50, now);
        assert_eq!(first.len(), 30);
        // Sessions of any kind count: with 25, five more; with 30, none,
        // however long ago the last dial was.
        assert_eq!(dialer.due(&HashSet::new(), 25, 50, now).len(), 5);
        assert!(dialer
            .due(&HashSet::new(), 30, 50, now + REDIAL_AFTER * 2)
            .is_empty());
    }

    #[test]
    fn an_ended_dial_frees_its_address_after_the_redial_delay() {
        let mut dialer = dialer(1);
        let now = Instant::now();
        assert_eq!(dialer.due(&HashSet::new(), 0, 50, now), vec![addr(1)]);
        // Still ours until it ends, whatever the time.
        assert!(dialer
            .due(&HashSet::new(), 1, 50, now + REDIAL_AFTER)
            .is_empty());
        dialer.ended(addr(1), false);
        assert!(dialer
            .due(&HashSet::new(), 0, 50, now + REDIAL_AFTER / 2)
            .is_empty());
        assert_eq!(
            dialer.due(&HashSet::new(), 0, 50, now + REDIAL_AFTER),
            vec![addr(1)]
        );
    }

    #[test]
    fn connected_recent_and_ourselves_are_skipped() {
        let mut dialer = dialer(4);
        let now = Instant::now();
        let connected: HashSet<_> = [addr(1)].into();
        let first = dialer.due(&connected, 0, 50, now);
        assert_eq!(first.len(), 3);
        assert!(!first.contains(&addr(1)));
        for &a in &first {
            dialer.ended(a, a == addr(2));
        }
        // Within REDIAL_AFTER nothing; after it, all but ourselves.
        assert!(dialer
            .due(&connected, 0, 50, now + REDIAL_AFTER / 2)
            .is_empty());
        let mut again = dialer.due(&connected, 0, 50, now + REDIAL_AFTER);
        again.sort();
        assert_eq!(again, vec![addr(3), addr(4)]);
    }

    #[test]
    fn known_addresses_are_bounded() {
        let mut dialer = Dialer::default();
        for n in 0..3 {
            dialer.learn((0..1500u16).map(|i| SocketAddr::from(([127, 0, n, 1], i))));
        }
        assert_eq!(dialer.known.len(), MAX_KNOWN_PEERS);
    }
}
