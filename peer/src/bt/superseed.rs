//! Super-seeding (BEP 16): an initial seeder that hands each piece out once.
//!
//! A plain seeder shows every peer its full bitfield. Leechers then pick
//! pieces at random among the equally rare ones, and two leechers often ask
//! the seeder for the same piece before either can announce it: the seeder's
//! upload, the swarm's bottleneck, carries duplicates. A super-seeder instead
//! sends no bitfield and tells each peer, with `have`, of a few pieces it
//! chose for that peer alone: pieces nobody has yet, or failing that the
//! ones with the fewest copies. When the peer reports a piece (its own
//! `have`), the seeder offers it a new one, so the peer has to fetch
//! everything else from the other leechers.
//!
//! This is the non-strict variant (as libtorrent's default): an offer is done
//! when the peer that received it has the piece, without waiting to see it on
//! a second peer. A peer keeps [`Offers::per_peer`] open offers while it is
//! unchoked, enough to keep the seeder's upload busy, and one while it is
//! choked (so it stays interested); the offers of a peer that is choked or
//! leaves are withdrawn and go to other peers first.
//!
//! Which piece an unchoked peer is offered: the one with the fewest copies
//! in the swarm *or on their way* from us (availability plus open offers to
//! unchoked peers), random among equals. So every piece leaves the seeder
//! once before any leaves twice: a piece already on its way to one peer
//! counts as a copy. (Counting offers made instead, done or open, with
//! rarity only to break ties, sent 1.4 copies of a 16 MiB file to 30 peers:
//! once every piece had been offered, the rarest were those still on their
//! way to someone.) A choked peer's single offer is a piece others already have
//! (the most common one it lacks), so it never holds back a piece nobody has.
//!
//! Pure: no I/O, no clock; randomness is passed in. Owned by the torrent's
//! shared state; a session asks it what to announce.

use std::collections::HashMap;

use common::bitfield::Bitfield;
use rand::Rng;

use super::picker::{least_at_random, PeerKey};

/// Bytes of open offers an unchoked peer holds: a few seconds of its share
/// of the seeder's upload at the rates studied. Offers that wait on one peer
/// are pieces no other peer is given; too many and the last new pieces
/// leave late.
pub const OFFER_BYTES: u64 = 256 << 10;
/// While the swarm can spread the file without us (see [`Offers::set_extra_copies`]),
/// an unchoked peer is offered only pieces with fewer copies than this, on
/// peers or on their way: once every piece is out, the seeder sends a second
/// copy only of a piece still on a single peer (the last ones out, which the
/// others wait for), and nothing once each is on two, except to a peer
/// down to its last few pieces (so no peer can stall).
pub const OFFER_BELOW_COPIES: u32 = 2;
/// The seeder keeps sending extra copies while its upload is more than this
/// many times the average leecher's (see [`seeder_is_faster`]).
pub const FASTER_BY: f64 = 1.5;
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
    /// Its open offers count in `Offers::on_the_way` (it was unchoked).
    counted: bool,
}

#[derive(Debug)]
pub struct Offers {
    /// Open offers to unchoked peers, per piece: copies on their way.
    on_the_way: Vec<u32>,
    peers: HashMap<PeerKey, PeerOffers>,
    per_peer: usize,
    /// Offer pieces with any number of copies (the fewest first), not only
    /// those below [`OFFER_BELOW_COPIES`].
    extra_copies: bool,
}

/// Whether a seeder should go on sending copies once every piece is out:
/// in the fluid model (Kumar and Ross) it sends the file once when its
/// upload is no more than the average leecher's, and keeps its upload busy
/// with more copies when it is larger (leechers on slow uplinks). Measured
/// over one choking round: `ours`, bytes we uploaded; `gained`, bytes of
/// pieces our peers announced (from anyone, us included); `peers`, how many.
pub fn seeder_is_faster(ours: u64, gained: u64, peers: usize) -> bool {
    let theirs = gained.saturating_sub(ours) as f64;
    peers == 0 || ours as f64 * peers as f64 > FASTER_BY * theirs
}

impl Offers {
    pub fn new(piece_count: usize, piece_length: u64) -> Self {
        let per_peer = OFFER_BYTES.div_ceil(piece_length.max(1)) as usize;
        Offers {
            on_the_way: vec![0; piece_count],
            peers: HashMap::new(),
            per_peer: per_peer.clamp(MIN_OFFERS, MAX_OFFERS),
            extra_copies: true,
        }
    }

    /// Set each choking round from [`seeder_is_faster`].
    pub fn set_extra_copies(&mut self, extra: bool) {
        self.extra_copies = extra;
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
        let count = self.on_the_way.len();
        let target = if unchoked { self.per_peer } else { 1 };
        let entry = self.peers.entry(peer).or_insert_with(|| PeerOffers {
            open: Vec::new(),
            told: Bitfield::new(count),
            counted: false,
        });
        uncount(&mut self.on_the_way, entry);
        // Offers the peer completed, from us or from anyone, are done.
        entry.open.retain(|&i| !peer_has.get(i as usize));
        // A choked peer gives back what it cannot download from us now.
        entry.open.truncate(target);
        let mut tell = Vec::new();
        while entry.open.len() < target {
            let lacks =
                |index: usize| !peer_has.get(index) && !entry.open.contains(&(index as u32));
            // A peer down to its last few pieces may be sent any of them, so
            // that one whose other sources choke it cannot stall.
            let finishing = count - peer_has.count() <= self.per_peer;
            let most = if finishing || self.extra_copies {
                u32::MAX
            } else {
                OFFER_BELOW_COPIES
            };
            let chosen = if unchoked {
                fewest_copies(&self.on_the_way, most, lacks, &availability, rng)
            } else {
                most_common(count, lacks, &availability, rng)
            };
            let Some(index) = chosen else {
                break; // the peer has (or is offered) every piece
            };
            entry.open.push(index as u32);
            if !entry.told.get(index) {
                entry.told.set(index);
                tell.push(index as u32);
            }
        }
        if unchoked {
            for &index in &entry.open {
                self.on_the_way[index as usize] += 1;
            }
            entry.counted = true;
        }
        tell
    }

    /// The peer is choked or gone: its open offers go back to the pool (it
    /// stays told of them, and may still ask if unchoked later).
    pub fn withdraw(&mut self, peer: PeerKey) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            uncount(&mut self.on_the_way, entry);
            entry.open.clear();
        }
    }

    /// Forgets a peer that left.
    pub fn remove(&mut self, peer: PeerKey) {
        self.withdraw(peer);
        self.peers.remove(&peer);
    }

    /// Copies on their way, over all pieces.
    #[cfg(test)]
    pub fn total_on_the_way(&self) -> u64 {
        self.on_the_way.iter().map(|&n| u64::from(n)).sum()
    }
}

/// Takes `entry`'s open offers out of `on_the_way`, if they were in it.
fn uncount(on_the_way: &mut [u32], entry: &mut PeerOffers) {
    if entry.counted {
        for &index in &entry.open {
            on_the_way[index as usize] = on_the_way[index as usize].saturating_sub(1);
        }
        entry.counted = false;
    }
}

/// The piece the peer lacks with the fewest copies in the swarm or on their
/// way from us, if below `below`, random among equals.
fn fewest_copies<R: Rng>(
    on_the_way: &[u32],
    below: u32,
    lacks: impl Fn(usize) -> bool,
    availability: &impl Fn(usize) -> u32,
    rng: &mut R,
) -> Option<usize> {
    let candidates = on_the_way
        .iter()
        .enumerate()
        .filter(|&(index, _)| lacks(index))
        .map(|(index, &coming)| (availability(index).saturating_add(coming), index))
        .filter(|&(copies, _)| copies < below);
    least_at_random(candidates, rng)
}

/// The piece the peer lacks that most peers have (a choked peer's offer:
/// it will likely get it elsewhere), random among equals.
fn most_common<R: Rng>(
    count: usize,
    lacks: impl Fn(usize) -> bool,
    availability: &impl Fn(usize) -> u32,
    rng: &mut R,
) -> Option<usize> {
    let candidates = (0..count)
        .filter(|&index| lacks(index))
        .map(|index| (std::cmp::Reverse(availability(index)), index));
    least_at_random(candidates, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    const PIECES: usize = 40;
    const PIECE: u64 = 64 * 1024; // four offers per unchoked peer

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
        assert_eq!(Offers::new(100_000, 1 << 10).per_peer(), MAX_OFFERS);
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
        // Every piece is on its way once: the next offer is a second copy.
        let told = offers.top_up(11, &none(), true, |_| 0, &mut rng);
        assert_eq!(told.len(), 4);
        assert_eq!(offers.total_on_the_way(), 44);
    }

    #[test]
    fn a_piece_on_its_way_counts_as_a_copy() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut rng = rng();
        // Pieces 0-3 are on nobody, 4-7 on one peer, the rest on five.
        let availability = |i: usize| match i {
            0..4 => 0,
            4..8 => 1,
            _ => 5,
        };
        let mut first = offers.top_up(1, &none(), true, availability, &mut rng);
        first.sort();
        assert_eq!(first, vec![0, 1, 2, 3]);
        // Now 0-7 all have one copy, on a peer or on its way: peers 2 and 3
        // share them, never one of 0-7 twice before each has two copies.
        let second = offers.top_up(2, &none(), true, availability, &mut rng);
        let third = offers.top_up(3, &none(), true, availability, &mut rng);
        let mut both: Vec<u32> = second.iter().chain(&third).copied().collect();
        both.sort();
        assert_eq!(both, (0..8).collect::<Vec<u32>>(), "{second:?} {third:?}");
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
        assert_eq!(offers.total_on_the_way(), 4);
    }

    #[test]
    fn rarer_pieces_come_first() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut rng = rng();
        // Piece 17 is on nobody; every other piece is on three peers.
        let availability = |i: usize| if i == 17 { 0 } else { 3 };
        let told = offers.top_up(1, &none(), true, availability, &mut rng);
        assert_eq!(told[0], 17);
    }

    #[test]
    fn a_choked_peer_is_offered_a_piece_others_have_and_holds_back_nothing() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut rng = rng();
        let availability = |i: usize| match i {
            17 => 3,
            18 => 2,
            _ => 0,
        };
        let told = offers.top_up(1, &none(), false, availability, &mut rng);
        assert_eq!(told, vec![17]);
        assert_eq!(
            offers.total_on_the_way(),
            0,
            "a choked peer's offer is no copy on its way"
        );
    }

    #[test]
    fn a_choked_peer_keeps_one_offer_and_gives_the_rest_back() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut rng = rng();
        offers.top_up(1, &none(), true, |_| 0, &mut rng);
        assert_eq!(offers.total_on_the_way(), 4);
        assert!(offers.top_up(1, &none(), false, |_| 0, &mut rng).is_empty());
        assert_eq!(offers.total_on_the_way(), 0);
        // Unchoked again: three more, each told at most once.
        let again = offers.top_up(1, &none(), true, |_| 0, &mut rng);
        assert!(again.len() <= 3);
        assert_eq!(offers.total_on_the_way(), 4);
    }

    #[test]
    fn withdrawn_offers_go_to_other_peers_first() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut rng = rng();
        for peer in 1..=10 {
            offers.top_up(peer, &none(), true, |_| 0, &mut rng);
        }
        let gone = offers.top_up(3, &none(), true, |_| 0, &mut rng);
        assert!(gone.is_empty(), "peer 3 already holds its offers");
        offers.remove(3);
        assert_eq!(offers.total_on_the_way(), 36);
        // Peer 11 gets exactly the four pieces peer 3 held (none on the way now).
        let taken = offers.top_up(11, &none(), true, |_| 0, &mut rng);
        assert_eq!(taken.len(), 4);
        assert_eq!(offers.total_on_the_way(), 40);
        assert!(offers.on_the_way.iter().all(|&n| n == 1));
    }

    #[test]
    fn once_every_piece_is_on_two_peers_only_a_finishing_peer_is_offered_more() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut rng = rng();
        assert_eq!(
            offers.top_up(3, &none(), true, |_| 2, &mut rng).len(),
            4,
            "extra copies by default"
        );
        offers.set_extra_copies(false);
        assert!(offers.top_up(1, &none(), true, |_| 2, &mut rng).is_empty());
        // A second copy of a piece on one peer only.
        assert_eq!(
            offers.top_up(1, &none(), true, |i| u32::from(i != 9) + 1, &mut rng),
            vec![9]
        );
        // A peer missing four pieces (its offers' worth) may have them all.
        let mut nearly = none();
        for i in 4..PIECES {
            nearly.set(i);
        }
        let mut last = offers.top_up(2, &nearly, true, |_| 29, &mut rng);
        last.sort();
        assert_eq!(last, vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_seeder_sends_extra_copies_only_when_faster_than_the_average_leecher() {
        // 30 leechers as fast as us: the swarm gained 31 uploads' worth.
        assert!(!seeder_is_faster(100, 3100, 30));
        // Six leechers at a quarter of our rate: 100 + 6 x 25.
        assert!(seeder_is_faster(100, 250, 6));
        // Idle (capped) while leechers trade: stays capped.
        assert!(!seeder_is_faster(0, 3000, 30));
        assert!(
            seeder_is_faster(0, 0, 0),
            "no peers: nothing to hold back for"
        );
    }

    #[test]
    fn a_peer_with_every_piece_is_offered_nothing() {
        let mut offers = Offers::new(PIECES, PIECE);
        let mut all = none();
        for i in 0..PIECES {
            all.set(i);
        }
        assert!(offers.top_up(1, &all, true, |_| 0, &mut rng()).is_empty());
        assert_eq!(offers.total_on_the_way(), 0);
    }
}
