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
//! Each swarm keeps its IPv4 and its IPv6 peers apart ([`PeerMap`], keyed
//! by address; its docs give the layout and the bytes per peer): a UDP reply
//! carries one family, an HTTP reply both, in `peers` and `peers6`. The
//! HTTP and the UDP front ends share this one store, so a peer that
//! announced over either is handed out over both.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex, MutexGuard,
    },
};

use common::{
    tracker_proto::{AnnounceEvent, PeerEntry, ScrapeStats},
    InfoHash, PeerId,
};
use rand::Rng;

mod peer_map;

use peer_map::Update;
pub use peer_map::{Ip, Peer, PeerMap};

/// Number of shards; a power of two so the shard is a byte of the hash.
pub const SHARDS: usize = 64;

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
}

/// A stored peer of either family, as `/stats` shows it.
#[derive(Debug, Clone, Copy)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    /// Seconds since the tracker started.
    pub last_seen: u32,
}

impl PeerInfo {
    pub fn is_seeder(&self) -> bool {
        self.left == 0
    }

    fn of<I: Ip>(peer: &Peer<I>) -> PeerInfo {
        PeerInfo {
            addr: peer.addr(),
            uploaded: peer.uploaded,
            downloaded: peer.downloaded,
            left: peer.left,
            last_seen: peer.last_seen,
        }
    }
}

/// One torrent's swarm.
#[derive(Debug, Default)]
pub struct Swarm {
    pub v4: PeerMap<Ipv4Addr>,
    pub v6: PeerMap<Ipv6Addr>,
    /// Downloads completed (event=completed), ever.
    pub completed: u32,
    pub last_activity: u32,
}

impl Swarm {
    /// Peers stored, of both families.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Every stored peer, the IPv4 ones first.
    pub fn peers(&self) -> impl Iterator<Item = PeerInfo> + '_ {
        let v4 = self.v4.iter().map(PeerInfo::of);
        v4.chain(self.v6.iter().map(PeerInfo::of))
    }

    pub fn stats(&self) -> ScrapeStats {
        let seeders = self.v4.seeders() + self.v6.seeders();
        ScrapeStats {
            complete: seeders,
            downloaded: self.completed,
            incomplete: self.len() as u32 - seeders,
        }
    }

    fn remove(&mut self, addr: SocketAddr) -> bool {
        match addr.ip().to_canonical() {
            IpAddr::V4(ip) => self.v4.remove(ip, addr.port()),
            IpAddr::V6(ip) => self.v6.remove(ip, addr.port()),
        }
    }

    /// Up to `want` random peers other than the asker (of family `own`, at
    /// `asker` in its map), of `family` when one is given, the asker's own
    /// family first; only leechers when `only_leechers`.
    fn pick<R: Rng>(
        &self,
        own: Family,
        asker: usize,
        only_leechers: bool,
        family: Option<Family>,
        want: usize,
        rng: &mut R,
    ) -> Vec<PeerEntry> {
        let mut picked = Vec::with_capacity(want.min(self.len()));
        let order = match own {
            Family::V4 => [Family::V4, Family::V6],
            Family::V6 => [Family::V6, Family::V4],
        };
        for f in order {
            if family.is_some_and(|only| only != f) {
                continue;
            }
            let skip = (f == own).then_some(asker);
            let rest = want - picked.len();
            match f {
                Family::V4 => self.v4.pick(skip, only_leechers, rest, rng, &mut picked),
                Family::V6 => self.v6.pick(skip, only_leechers, rest, rng, &mut picked),
            }
        }
        picked
    }
}

/// What an announce says about one peer, after the query is parsed and the
/// peer's address is decided.
#[derive(Debug, Clone, Copy)]
pub struct Announce {
    pub info_hash: InfoHash,
    /// Logged, not stored: peers are keyed by address ([`PeerMap`]).
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
            if swarm.remove(a.addr) {
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
        let update = Update {
            uploaded: a.uploaded,
            downloaded: a.downloaded,
            left: a.left,
            now,
            completed: a.event == AnnounceEvent::Completed,
        };
        let admit = || self.take_peer_slot();
        let ip = a.addr.ip().to_canonical();
        let announced = match ip {
            IpAddr::V4(ip) => swarm.v4.announce(ip, a.addr.port(), update, admit),
            IpAddr::V6(ip) => swarm.v6.announce(ip, a.addr.port(), update, admit),
        };
        let Some(announced) = announced else {
            // A swarm made for this announce alone would stay, empty, until
            // the next sweep: a flood of new info-hashes on a full tracker
            // would grow the store between sweeps without bound. So a
            // refusal leaves nothing behind.
            if swarm.is_empty() {
                shard.remove(&a.info_hash);
            }
            return Err(SwarmError::Full);
        };
        swarm.completed += u32::from(announced.completed);
        // A seeder gets only leechers; but a first announce with nothing
        // downloaded and nothing left may be a magnet leecher that does not
        // know the size yet (aria2c announces so): it gets seeders too, at
        // the cost of a fresh seeder meeting a few seeders once.
        let may_be_magnet = a.event == AnnounceEvent::Started && a.downloaded == 0;
        let peers = swarm.pick(
            Family::of(ip),
            announced.index,
            a.left == 0 && !may_be_magnet,
            family,
            a.numwant,
            rng,
        );
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
                removed += swarm
                    .v4
                    .retain(|peer| now.saturating_sub(peer.last_seen) <= timeout);
                removed += swarm
                    .v6
                    .retain(|peer| now.saturating_sub(peer.last_seen) <= timeout);
                !swarm.is_empty()
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
