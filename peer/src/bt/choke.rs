//! The unchoke policy, pure: every round (10 s) unchoke the interested peers
//! that give us the best rate, plus one optimistic unchoke rotated every
//! third round (30 s) so that newcomers get a chance to prove themselves. A
//! downloading peer ranks by the rate it downloads from each peer (tit for
//! tat); a seeder ranks by the rate it uploads to each (the ones that take
//! the most, who are likely to pass pieces on). A super-seeder ranks by the
//! pieces a peer lacks: the peers furthest behind get the new pieces, so
//! that they have something every other peer wants and trade at full rate
//! (ranked by rate, a seeder at N = 30 kept the same peers and a peer that
//! fell behind got unchoked by one or two leechers at a time). Equal ranks
//! are broken at random, so no peer is favoured for its place in our list.

use std::collections::HashSet;

use rand::{
    seq::{IndexedRandom, SliceRandom},
    Rng,
};

use super::picker::PeerKey;

/// Rounds between optimistic rotations.
pub const OPTIMISTIC_EVERY: u64 = 3;

#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub key: PeerKey,
    pub interested: bool,
    /// The rank, higher first: bytes per second over the last round, or
    /// pieces missing, by the rule in the module docs.
    pub rate: f64,
}

pub struct Choker {
    /// Regular slots plus the optimistic one.
    slots: usize,
    optimistic: Option<PeerKey>,
    round: u64,
}

impl Choker {
    pub fn new(slots: usize) -> Self {
        Choker {
            slots: slots.max(1),
            optimistic: None,
            round: 0,
        }
    }

    /// One round: the set of peers to have unchoked.
    pub fn round<R: Rng>(&mut self, candidates: &[Candidate], rng: &mut R) -> HashSet<PeerKey> {
        let mut interested: Vec<&Candidate> = candidates.iter().filter(|c| c.interested).collect();
        // Random among equals: a stable sort of a shuffled list. Ties are
        // common (every peer that sent us nothing ranks 0), and broken by
        // key they went to the peers connected first, in every peer of the
        // swarm alike: at N = 100 the last to arrive were unchoked by one
        // or two peers a round and finished last.
        interested.shuffle(rng);
        interested.sort_by(|a, b| b.rate.total_cmp(&a.rate));
        let regular = self.slots - 1;
        let mut unchoke: HashSet<PeerKey> =
            interested.iter().take(regular).map(|c| c.key).collect();
        let still_there = self
            .optimistic
            .filter(|k| interested.iter().any(|c| c.key == *k) && !unchoke.contains(k));
        self.optimistic = if self.round.is_multiple_of(OPTIMISTIC_EVERY) || still_there.is_none() {
            let rest: Vec<PeerKey> = interested
                .iter()
                .map(|c| c.key)
                .filter(|k| !unchoke.contains(k))
                .collect();
            rest.choose(rng).copied()
        } else {
            still_there
        };
        self.round += 1;
        unchoke.extend(self.optimistic);
        unchoke
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn peers(rates: &[(u64, bool, f64)]) -> Vec<Candidate> {
        rates
            .iter()
            .map(|&(key, interested, rate)| Candidate {
                key,
                interested,
                rate,
            })
            .collect()
    }

    #[test]
    fn the_fastest_interested_peers_plus_one_optimistic() {
        let mut choker = Choker::new(3);
        let all = peers(&[
            (1, true, 10.0),
            (2, true, 50.0),
            (3, false, 99.0),
            (4, true, 30.0),
            (5, true, 1.0),
        ]);
        let chosen = choker.round(&all, &mut StdRng::seed_from_u64(1));
        assert_eq!(chosen.len(), 3);
        assert!(
            chosen.contains(&2) && chosen.contains(&4),
            "the two fastest interested"
        );
        assert!(!chosen.contains(&3), "never the uninterested");
    }

    #[test]
    fn the_optimistic_slot_rotates_every_third_round() {
        let mut choker = Choker::new(2);
        let all = peers(&[
            (1, true, 100.0),
            (2, true, 0.0),
            (3, true, 0.0),
            (4, true, 0.0),
            (5, true, 0.0),
        ]);
        let mut rng = StdRng::seed_from_u64(9);
        let mut optimistic = Vec::new();
        for _ in 0..12 {
            let chosen = choker.round(&all, &mut rng);
            assert!(chosen.contains(&1));
            optimistic.push(*chosen.iter().find(|&&k| k != 1).unwrap());
        }
        for rounds in optimistic.chunks(3) {
            assert!(
                rounds.iter().all(|k| *k == rounds[0]),
                "kept for three rounds: {optimistic:?}"
            );
        }
        let distinct: HashSet<_> = optimistic.iter().collect();
        assert!(distinct.len() > 1, "it rotates: {optimistic:?}");
    }

    #[test]
    fn equal_rates_are_broken_at_random_not_by_key() {
        let all: Vec<Candidate> = (1..=20)
            .map(|key| Candidate {
                key,
                interested: true,
                rate: 0.0,
            })
            .collect();
        let mut rng = StdRng::seed_from_u64(3);
        let mut times = [0u32; 21];
        for _ in 0..200 {
            // A fresh choker each time: only the regular slots (3 of 4).
            let mut choker = Choker::new(4);
            for key in choker.round(&all, &mut rng) {
                times[key as usize] += 1;
            }
        }
        // 200 rounds of 4 slots over 20 equal peers: 40 each on average.
        // By key, peers 1-3 would be chosen every time and 16-20 never.
        assert!(
            times[1..].iter().all(|&n| (15..=70).contains(&n)),
            "{times:?}"
        );
    }
}
