//! The tracker's state: every swarm and its peers, with no I/O.
//!
//! Swarms are sharded by info-hash over [`SHARDS`] mutexes, so announces for
//! different torrents rarely wait on each other and never on one global lock.
//! The locks are `std::sync::Mutex`, not async ones: every critical section is
//! a few hash-map operations with no `.await` inside, so a blocking lock held
//! for microseconds is cheaper than an async one.
//!
//! The clock (`now`, whole seconds since the tracker started) and the random
//! generator are passed in, so tests are deterministic.
//!
//! Memory per stored peer: a [`Peer`] is 48 bytes; in the swarm's `IndexMap`
//! each entry also holds its key (20) and hash (8), 80 bytes with padding,
//! plus an 8-byte index slot and a control byte in the hash table, all times
//! the maps' spare capacity (up to 2x just after growth). The tracker memory
//! benchmark measures the total.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex, MutexGuard,
    },
};

use common::{
    tracker_proto::{AnnounceEvent, PeerEntry, ScrapeStats},
    InfoHash, PeerId,
};
use indexmap::IndexMap;
use rand::Rng;

/// Number of shards; a power of two so the shard is a byte of the hash.
pub const SHARDS: usize = 64;

const FLAG_COMPLETED: u8 = 1;

/// One peer as stored: counters, address and last announce, nothing else.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    /// IPv6, or IPv4-mapped IPv6 for an IPv4 peer.
    ip: [u8; 16],
    /// Seconds since the tracker started.
    pub last_seen: u32,
    port: u16,
    flags: u8,
}

impl Peer {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(Ipv6Addr::from(self.ip).to_canonical(), self.port)
    }

    pub fn is_seeder(&self) -> bool {
        self.left == 0
    }
}

/// An address family. Over UDP a reply carries one family only (BEP 15), so
/// an IPv4 client is given IPv4 peers and an IPv6 client IPv6 peers; over
/// HTTP both go out, in `peers` and `peers6` (BEP 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of `ip`, an IPv4-mapped IPv6 address counting as IPv4.
    pub fn of(ip: IpAddr) -> Family {
        match ip.to_canonical() {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn has(family: Option<Family>, peer: &Peer) -> bool {
        family.is_none_or(|f| f == Family::of(peer.addr().ip()))
    }
}

/// One torrent's swarm.
#[derive(Debug, Default)]
pub struct Swarm {
    pub peers: IndexMap<PeerId, Peer>,
    pub seeders: u32,
    /// Downloads completed (event=completed), ever.
    pub completed: u32,
    pub last_activity: u32,
}

impl Swarm {
    pub fn stats(&self) -> ScrapeStats {
        ScrapeStats {
            complete: self.seeders,
            downloaded: self.completed,
            incomplete: self.peers.len() as u32 - self.seeders,
        }
    }

    fn remove(&mut self, id: &PeerId) -> bool {
        match self.peers.swap_remove(id) {
            Some(peer) => {
                self.seeders -= u32::from(peer.is_seeder());
                true
            }
            None => false,
        }
    }

    /// Up to `want` random peers other than the one at index `asker`, of
    /// `family` when one is given; only leechers for a seeder.
    fn pick<R: Rng>(
        &self,
        asker: usize,
        asker_is_seeder: bool,
        family: Option<Family>,
        want: usize,
        rng: &mut R,
    ) -> Vec<PeerEntry> {
        let entry = |(id, peer): (&PeerId, &Peer)| PeerEntry {
            addr: peer.addr(),
            peer_id: Some(*id),
        };
        if asker_is_seeder {
            // Only leechers (so never the asker): one pass over the swarm
            // (seeders announce rarely).
            let leechers: Vec<usize> = (0..self.peers.len())
                .filter(|&i| !self.peers[i].is_seeder() && Family::has(family, &self.peers[i]))
                .collect();
            return sample_distinct(rng, leechers.len(), want)
                .into_iter()
                .filter_map(|i| self.peers.get_index(leechers[i]))
                .map(entry)
                .collect();
        }
        // Consecutive entries from a random start, wrapping, as opentracker
        // answers: the entries are contiguous in memory, so the reply reads
        // one run of cache lines instead of `want` random ones (in a large
        // swarm each random read is a cache miss, and they made a tenth of
        // the tracker's time under load). The order is not fixed: every
        // departure moves the last peer into the gap (`swap_remove`).
        let len = self.peers.len();
        if len == 0 {
            return Vec::new();
        }
        let start = rng.random_range(0..len);
        let mut picked = Vec::with_capacity(want.min(len - 1));
        for i in (start..len).chain(0..start) {
            if picked.len() == want {
                break;
            }
            if i != asker {
                picked.extend(
                    self.peers
                        .get_index(i)
                        .filter(|(_, peer)| Family::has(family, peer))
                        .map(entry),
                );
            }
        }
        picked
    }
}

/// `amount` distinct indexes below `len`, uniformly at random, in O(amount)
/// when `amount` is small next to `len` (the common case: 50 of thousands).
/// A general-purpose sampler may allocate all of `0..len` instead, which made
/// every announce cost O(swarm size).
fn sample_distinct<R: Rng>(rng: &mut R, len: usize, amount: usize) -> Vec<usize> {
    if amount >= len {
        return (0..len).collect();
    }
    if amount * 4 > len {
        // Dense: a partial Fisher-Yates shuffle, O(len) with len < 4 * amount.
        let mut all: Vec<usize> = (0..len).collect();
        for i in 0..amount {
            let j = rng.random_range(i..len);
            all.swap(i, j);
        }
        all.truncate(amount);
        return all;
    }
    // Sparse: draw until `amount` distinct; fewer than 4/3 draws per index.
    let mut chosen = Vec::with_capacity(amount);
    while chosen.len() < amount {
        let i = rng.random_range(0..len);
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    chosen
}

/// What an announce says about one peer, after the query is parsed and the
/// peer's address is decided.
#[derive(Debug, Clone, Copy)]
pub struct Announce {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub addr: SocketAddr,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: AnnounceEvent,
    pub numwant: usize,
}

/// What the tracker answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceOutcome {
    pub stats: ScrapeStats,
    pub peers: Vec<PeerEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwarmError {
    /// The tracker holds its configured maximum of peers.
    Full,
}

/// Every swarm, sharded.
pub struct Swarms {
    shards: Box<[Mutex<HashMap<InfoHash, Swarm>>]>,
    peer_count: AtomicUsize,
    max_peers: usize,
}

impl Swarms {
    pub fn new(max_peers: usize) -> Self {
        Swarms {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            peer_count: AtomicUsize::new(0),
            max_peers,
        }
    }

    fn shard(&self, hash: &InfoHash) -> MutexGuard<'_, HashMap<InfoHash, Swarm>> {
        // A panic while holding a shard cannot leave a swarm half-updated in a
        // way that matters more than losing the tracker, so poison is ignored.
        self.shards[hash.0[0] as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Peers stored, over all swarms.
    pub fn peer_count(&self) -> usize {
        self.peer_count.load(Ordering::Relaxed)
    }

    /// Counts one more stored peer unless `max_peers` are stored: one atomic
    /// step, so two announces on different shards (other threads, or HTTP
    /// and UDP) cannot both take the last place.
    fn take_peer_slot(&self) -> bool {
        self.peer_count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_peers).then_some(n + 1)
            })
            .is_ok()
    }

    /// Records an announce and answers it with peers of any family.
    pub fn announce<R: Rng>(
        &self,
        a: &Announce,
        now: u32,
        rng: &mut R,
    ) -> Result<AnnounceOutcome, SwarmError> {
        self.announce_family(a, None, now, rng)
    }

    /// Records an announce and answers it with peers of `family` only, when
    /// one is given.
    pub fn announce_family<R: Rng>(
        &self,
        a: &Announce,
        family: Option<Family>,
        now: u32,
        rng: &mut R,
    ) -> Result<AnnounceOutcome, SwarmError> {
        let mut shard = self.shard(&a.info_hash);
        if a.event == AnnounceEvent::Stopped {
            let Some(swarm) = shard.get_mut(&a.info_hash) else {
                return Ok(AnnounceOutcome {
                    stats: ScrapeStats::default(),
                    peers: Vec::new(),
                });
            };
            if swarm.remove(&a.peer_id) {
                self.peer_count.fetch_sub(1, Ordering::Relaxed);
            }
            swarm.last_activity = now;
            return Ok(AnnounceOutcome {
                stats: swarm.stats(),
                peers: Vec::new(),
            });
        }
        let swarm = shard.entry(a.info_hash).or_default();
        swarm.last_activity = now;
        let ip = match a.addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let fresh = Peer {
            uploaded: a.uploaded,
            downloaded: a.downloaded,
            left: a.left,
            ip,
            last_seen: now,
            port: a.addr.port(),
            flags: 0,
        };
        let index = match swarm.peers.get_full_mut(&a.peer_id) {
            Some((index, _, peer)) => {
                let was_seeder = peer.is_seeder();
                *peer = Peer {
                    flags: peer.flags,
                    ..fresh
                };
                swarm.seeders = swarm.seeders + u32::from(peer.is_seeder()) - u32::from(was_seeder);
                index
            }
            None => {
                if !self.take_peer_slot() {
                    // A swarm made for this announce alone would stay, empty,
                    // until the next sweep: a flood of new info-hashes on a
                    // full tracker would grow the store between sweeps
                    // without bound. So a refusal leaves nothing behind.
                    if swarm.peers.is_empty() {
                        shard.remove(&a.info_hash);
                    }
                    return Err(SwarmError::Full);
                }
                swarm.seeders += u32::from(fresh.is_seeder());
                swarm.peers.insert_full(a.peer_id, fresh).0
            }
        };
        if a.event == AnnounceEvent::Completed {
            // Count each peer's completion once, however often it says so.
            if let Some((_, peer)) = swarm.peers.get_index_mut(index) {
                if peer.flags & FLAG_COMPLETED == 0 {
                    peer.flags |= FLAG_COMPLETED;
                    swarm.completed += 1;
                }
            }
        }
        // A seeder gets only leechers; but a first announce with nothing
        // downloaded and nothing left may be a magnet leecher that does not
        // know the size yet (aria2c announces so): it gets seeders too, at
        // the cost of a fresh seeder meeting a few seeders once.
        let may_be_magnet = a.event == AnnounceEvent::Started && a.downloaded == 0;
        let peers = swarm.pick(index, a.left == 0 && !may_be_magnet, family, a.numwant, rng);
        Ok(AnnounceOutcome {
            stats: swarm.stats(),
            peers,
        })
    }

    /// Counters of one swarm; `None` when nobody announced it.
    pub fn scrape(&self, hash: &InfoHash) -> Option<ScrapeStats> {
        self.shard(hash).get(hash).map(Swarm::stats)
    }

    /// Removes peers not seen for more than `timeout` seconds, and swarms left
    /// empty. Returns how many peers were removed.
    pub fn expire(&self, now: u32, timeout: u32) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            shard.retain(|_, swarm| {
                let before = swarm.peers.len();
                swarm
                    .peers
                    .retain(|_, peer| now.saturating_sub(peer.last_seen) <= timeout);
                swarm.seeders = swarm.peers.values().filter(|p| p.is_seeder()).count() as u32;
                removed += before - swarm.peers.len();
                !swarm.peers.is_empty()
            });
        }
        self.peer_count.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    /// Calls `visit` with every swarm in turn, one shard locked at a time.
    pub fn for_each(&self, mut visit: impl FnMut(&InfoHash, &Swarm)) {
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for (hash, swarm) in shard.iter() {
                visit(hash, swarm);
            }
        }
    }
}

#[cfg(test)]
mod tests;
