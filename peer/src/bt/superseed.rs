//! Super-seeding (BEP 16): an initial seeder that hands each piece out once.
//!
//! A plain seeder shows every peer its full bitfield. Leechers then pick
//! pieces at random among the equally rare ones, and two leechers often ask
//! the seeder for the same piece before either can announce it: the seeder's
//! upload, the swarm's bottleneck, carries duplicates. A super-seeder instead
//! sends no bitfield and tells each peer, with `have`, of a few pieces it
//! chose for that peer alone: pieces never offered before, or failing that
//! the least offered and rarest. When the peer reports a piece (its own
//! `have`), the seeder offers it a new one, so the peer has to fetch
//! everything else from the other leechers.
//!
//! This is the non-strict variant (as libtorrent's default): an offer is done
//! when the peer that received it has the piece, without waiting to see it on
//! a second peer. A peer keeps [`Offers::per_peer`] open offers while it is
//! unchoked, enough to fill its request pipeline, and one while it is choked
//! (so it stays interested); the offers of a peer that is choked or leaves
//! are withdrawn and go to other peers first.
//!
//! Pure: no I/O, no clock; randomness is passed in. Owned by the torrent's
//! shared state; a session asks it what to announce.

use std::collections::HashMap;

use common::bitfield::Bitfield;
use rand::Rng;

use super::picker::{least_at_random, PeerKey};

/// Bytes of open offers an unchoked peer holds: about a request pipeline's worth.
pub const OFFER_BYTES: u64 = 1 << 20;
/// Fewest open offers for an unchoked peer, whatever the piece size.
pub const MIN_OFFERS: usize = 2;
/// Most open offers for a peer, so that small pieces cannot make offers
/// cover a large part of the torrent.
pub const MAX_OFFERS: usize = 64;

#[derive(Debug)]
struct PeerOffers {
    /// Offered and not yet reported by the peer.
    open: Vec<u32>,
    /// Every piece the peer was told of with `have`.
    told: Bitfield,
}

#[derive(Debug)]
pub struct Offers {
    /// Open offers per piece, plus the offers that ended with the peer having it.
    offered: Vec<u32>,
    peers: HashMap<PeerKey, PeerOffers>,
    per_peer: usize,
}

impl Offers {
    pub fn new(piece_count: usize, piece_length: u64) -> Self {
        let per_peer = OFFER_BYTES.div_ceil(piece_length.max(1)) as usize;
        Offers {
            offered: vec![0; piece_count],
            peers: HashMap::new(),
            per_peer: per_peer.clamp(MIN_OFFERS, MAX_OFFERS),
        }
    }

    /// Open offers an unchoked peer holds.
    #[cfg(test)]
    pub fn per_peer(&self) -> usize {
        self.per_peer
    }

    /// Brings `peer`'s open offers up to `per_peer` (unchoked) or one
    /// (choked), after dropping those it now has. Returns the pieces it must
    /// be told of with `have` (a withdrawn offer taken up again needs none).
    /// `availability(i)`: how many connected peers have piece `i`.
    pub fn top_up<R: Rng>(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        unchoked: bool,
        availability: impl Fn(usize) -> u32,
        rng: &mut R,
    ) -> Vec<u32> {
        let count = self.offered.len();
        let target = if unchoked { self.per_peer } else { 1 };
        let entry = self.peers.entry(peer).or_insert_with(|| PeerOffers {
            open: Vec::new(),
            told: Bitfield::new(count),
        });
        // Offers the peer completed, from us or from anyone, are done: the
        // piece stays counted as offered.
        entry.open.retain(|&i| !peer_has.get(i as usize));
        // A choked peer gives back what it cannot download from us now.
        while entry.open.len() > target {
            if let Some(index) = entry.open.pop() {
                self.offered[index as usize] = self.offered[index as usize].saturating_sub(1);
            }
        }
        let mut tell = Vec::new();
        while entry.open.len() < target {
            let Some(index) =
                least_offered(&self.offered, peer_has, &entry.open, &availability, rng)
            else {
                break; // the peer has (or is offered) every piece
            };
            self.offered[index] += 1;
            entry.open.push(index as u32);
            if !entry.told.get(index) {
                entry.told.set(index);
                tell.push(index as u32);
            }
        }
        tell
    }

    /// The peer is choked or gone: its open offers go back to the pool (it
    /// stays told of them, and may still ask if unchoked later).
    pub fn withdraw(&mut self, peer: PeerKey) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            for index in entry.open.drain(..) {
                self.offered[index as usize] = self.offered[index as usize].saturating_sub(1);
            }
        }
    }

    /// Forgets a peer that left.
    pub fn remove(&mut self, peer: PeerKey) {
        self.withdraw(peer);
        self.peers.remove(&peer);
    }

    /// Pieces offered to some peer and not withdrawn, with multiplicity.
    #[cfg(test)]
    pub fn total_offered(&self) -> u64 {
        self.offered.iter().map(|&n| u64::from(n)).sum()
    }
}

/// The piece `has` lacks that was offered least, then is rarest, random among
/// equals; never one already open for this peer.
fn least_offered<R: Rng>(
    offered: &[u32],
    has: &Bitfield,
    open: &[u32],
    availability: &impl Fn(usize) -> u32,
    rng: &mut R,
) -> Option<usize> {
    let candidates = offered
        .iter()
        .enumerate()
        .filter(|&(index, _)| !has.get(index) && !open.contains(&(index as u32)))
        .map(|(index, &times)| ((times, availability(index)), index));
    least_at_random(candidates, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    const PIECES: usize = 40;
    const PIECE: u64 = 256 * 1024; // four offers per unchoked peer

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn none() -> Bitfield {
        Bitfield::new(PIECES)
    }

    #[test]
    fn offers_cover_a_pipeline_within_bounds() {
        assert_eq!(Offers::new(PIECES, PIECE).per_peer(), 4);
        assert_eq!(Offers::new(PIECES, 16 << 20).per_peer(), MIN_OFFERS);
        assert_eq!(Offers::new(100_000, 16 << 10).per_peer(), MAX_OFFERS);
    }

    #[test]
    fn peers_are_offered_disjoint_pieces_while_unoffered_ones_remain() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut rng = rng();
        let mut seen = Bitfield::new(PIECES);
        for peer in 1..=10 {
            let told = offers.top_up(peer, &none(), true, |_| 0, &mut rng);
            assert_eq!(told.len(), 4);
            for index in told {
                assert!(seen.set(index as usize), "piece {index} offered twice");
            }
        }
        assert!(seen.is_complete());
        // Every piece is out once: the next offer is a second copy.
        let told = offers.top_up(11, &none(), true, |_| 0, &mut rng);
        assert_eq!(told.len(), 4);
        assert_eq!(offers.total_offered(), 44);
    }

    #[test]
    fn a_reported_piece_is_replaced_by_a_new_one() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut rng = rng();
        let first = offers.top_up(1, &none(), true, |_| 0, &mut rng);
        let mut has = none();
        has.set(first[0] as usize);
        let next = offers.top_up(1, &has, true, |_| 0, &mut rng);
        assert_eq!(next.len(), 1);
        assert!(!first.contains(&next[0]));
        // Nothing new to say until the peer reports another piece.
        assert!(offers.top_up(1, &has, true, |_| 0, &mut rng).is_empty());
    }

    #[test]
    fn rarer_pieces_come_first_among_the_least_offered() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut rng = rng();
        // Piece 17 is on nobody; every other piece is on three peers.
        let availability = |i: usize| if i == 17 { 0 } else { 3 };
        let told = offers.top_up(1, &none(), false, availability, &mut rng);
        assert_eq!(told, vec![17]);
    }

    #[test]
    fn a_choked_peer_keeps_one_offer_and_gives_the_rest_back() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut rng = rng();
        offers.top_up(1, &none(), true, |_| 0, &mut rng);
        assert_eq!(offers.total_offered(), 4);
        assert!(offers.top_up(1, &none(), false, |_| 0, &mut rng).is_empty());
        assert_eq!(offers.total_offered(), 1);
        // Unchoked again: three more, each told at most once.
        let again = offers.top_up(1, &none(), true, |_| 0, &mut rng);
        assert!(again.len() <= 3);
        assert_eq!(offers.total_offered(), 4);
    }

    #[test]
    fn withdrawn_offers_go_to_other_peers_first() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut rng = rng();
        let mut all = none();
        for peer in 1..=10 {
            for index in offers.top_up(peer, &none(), true, |_| 0, &mut rng) {
                all.set(index as usize);
            }
        }
        let gone = offers.top_up(3, &none(), true, |_| 0, &mut rng);
        assert!(gone.is_empty(), "peer 3 already holds its offers");
        offers.remove(3);
        assert_eq!(offers.total_offered(), 36);
        // Peer 11 gets exactly the four pieces peer 3 held (offered 0 times now).
        let taken = offers.top_up(11, &none(), true, |_| 0, &mut rng);
        assert_eq!(taken.len(), 4);
        assert_eq!(offers.total_offered(), 40);
        assert!(offers.offered.iter().all(|&n| n == 1));
    }

    #[test]
    fn a_peer_with_every_piece_is_offered_nothing() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut all = none();
        for i in 0..PIECES {
            all.set(i);
        }
        assert!(offers.top_up(1, &all, true, |_| 0, &mut rng()).is_empty());
        assert_eq!(offers.total_offered(), 0);
    }
}
