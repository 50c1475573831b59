//! The peers others announced to us (`announce_peer`), bounded per
//! info-hash and in the number of info-hashes, each entry expiring unless
//! announced again.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use common::InfoHash;
use rand::{seq::IteratorRandom, Rng};
use tokio::time::Instant;

/// An announced peer is forgotten after this long without a new announce.
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);
/// Most peers kept per info-hash; a new one replaces the stalest.
pub const MAX_PEERS_PER_HASH: usize = 200;
/// Most info-hashes kept; announces for a new one are refused when full.
pub const MAX_HASHES: usize = 2000;
/// Most peers given in one `get_peers` reply.
pub const MAX_PEERS_PER_REPLY: usize = 50;

#[derive(Debug, Default)]
pub struct PeerStore {
    hashes: HashMap<InfoHash, Vec<(SocketAddr, Instant)>>,
}

impl PeerStore {
    /// Records `peer` for `hash`; false when the store is full of other
    /// info-hashes.
    pub fn announce(&mut self, hash: InfoHash, peer: SocketAddr, now: Instant) -> bool {
        if !self.hashes.contains_key(&hash) && self.hashes.len() >= MAX_HASHES {
            self.expire(now);
            if self.hashes.len() >= MAX_HASHES {
                return false;
            }
        }
        let peers = self.hashes.entry(hash).or_default();
        let expires = now + PEER_TTL;
        if let Some(entry) = peers.iter_mut().find(|(addr, _)| *addr == peer) {
            entry.1 = expires;
        } else if peers.len() < MAX_PEERS_PER_HASH {
            peers.push((peer, expires));
        } else if let Some(stalest) = peers.iter_mut().min_by_key(|(_, expires)| *expires) {
            *stalest = (peer, expires);
        }
        true
    }

    /// Up to [`MAX_PEERS_PER_REPLY`] live peers of `hash`, chosen at random.
    pub fn peers<R: Rng>(&self, hash: &InfoHash, now: Instant, rng: &mut R) -> Vec<SocketAddr> {
        self.hashes
            .get(hash)
            .map(|peers| {
                peers
                    .iter()
                    .filter(|(_, expires)| *expires > now)
                    .map(|(addr, _)| *addr)
                    .choose_multiple(rng, MAX_PEERS_PER_REPLY)
            })
            .unwrap_or_default()
    }

    /// Drops expired peers and info-hashes left with none.
    pub fn expire(&mut self, now: Instant) {
        self.hashes.retain(|_, peers| {
            peers.retain(|(_, expires)| *expires > now);
            !peers.is_empty()
        });
    }

    pub fn hash_count(&self) -> usize {
        self.hashes.len()
    }
}

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, SeedableRng};

    use super::*;

    fn peer(n: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], n))
    }

    #[test]
    fn bounded_per_hash_and_in_hashes_and_entries_expire() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = Instant::now();
        let mut store = PeerStore::default();
        let hash = InfoHash([1; 20]);
        for n in 1..=(MAX_PEERS_PER_HASH as u16 + 50) {
            assert!(store.announce(hash, peer(n), now));
        }
        assert_eq!(store.hashes[&hash].len(), MAX_PEERS_PER_HASH);
        assert_eq!(store.peers(&hash, now, &mut rng).len(), MAX_PEERS_PER_REPLY);
        for n in 0..MAX_HASHES as u32 {
            let mut bytes = [2; 20];
            bytes[..4].copy_from_slice(&n.to_be_bytes());
            store.announce(InfoHash(bytes), peer(1), now);
        }
        assert_eq!(store.hash_count(), MAX_HASHES);
        assert!(!store.announce(InfoHash([3; 20]), peer(1), now));
        // Later, everything has expired: room again, nothing handed out.
        let later = now + PEER_TTL;
        assert!(store.peers(&hash, later, &mut rng).is_empty());
        assert!(store.announce(InfoHash([3; 20]), peer(1), later));
        assert_eq!(store.hash_count(), 1);
    }

    #[test]
    fn announcing_again_refreshes_instead_of_duplicating() {
        let now = Instant::now();
        let mut store = PeerStore::default();
        let hash = InfoHash([1; 20]);
        store.announce(hash, peer(1), now);
        store.announce(hash, peer(1), now + PEER_TTL / 2);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(store.peers(&hash, now + PEER_TTL, &mut rng), vec![peer(1)]);
    }
}
