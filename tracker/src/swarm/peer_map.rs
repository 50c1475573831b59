//! One swarm's peers of one address family, keyed by address.
//!
//! The peers sit in a dense `Vec` (a reply reads a run of consecutive
//! entries, and a departure moves the last entry into the gap), found
//! through a hash table of `u32` indexes into it (hashbrown's `HashTable`:
//! 4 bytes and a control byte per slot) hashed with SipHash under a key
//! drawn at start, so an attacker who picks ports cannot pile them into one
//! chain. An IPv4 peer is 40 bytes, an IPv6 peer 48; the table adds 5 bytes
//! per slot at a load of 44–88%, so about 48 and 56 bytes per stored peer.
//! (An `IndexMap` by peer id stored each key's 8-byte hash and 20-byte id
//! beside the entry and an 8-byte index: 94–96 bytes.)
//!
//! Keyed by address, as opentracker and aquatic key theirs, not by peer id:
//! an address is what a reply hands out, and a peer id is public (dictionary
//! replies carried it), so keying by id let anyone who had seen one stop or
//! move that peer's entry, and clients that send one id for many peers
//! collapsed into one. One address is one peer, whatever id it announces
//! with; ids are not stored, and dictionary replies leave them out, as
//! `no_peer_id` does.

use std::{
    hash::{BuildHasher, Hash, RandomState},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::OnceLock,
};

use common::tracker_proto::PeerEntry;
use hashbrown::HashTable;
use rand::Rng;

const FLAG_COMPLETED: u8 = 1;

/// An address family's IP type, as stored.
pub trait Ip: Copy + Eq + Hash + Into<IpAddr> {}
impl Ip for Ipv4Addr {}
impl Ip for Ipv6Addr {}

/// One peer as stored: its address, counters and last announce.
#[derive(Debug, Clone, Copy)]
pub struct Peer<I> {
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    /// Seconds since the tracker started.
    pub last_seen: u32,
    ip: I,
    port: u16,
    flags: u8,
}

impl<I: Ip> Peer<I> {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip.into(), self.port)
    }

    pub fn is_seeder(&self) -> bool {
        self.left == 0
    }

    fn entry(&self) -> PeerEntry {
        PeerEntry {
            addr: self.addr(),
            peer_id: None,
        }
    }
}

/// What an announce says about the announcing peer.
#[derive(Debug, Clone, Copy)]
pub struct Update {
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub now: u32,
    pub completed: bool,
}

/// What [`PeerMap::announce`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    /// The announcing peer's index, for [`PeerMap::pick`] to skip.
    pub index: usize,
    /// This announce counted a completed download (the peer's first
    /// `completed`).
    pub completed: bool,
}

/// One family's peers of one swarm.
#[derive(Debug)]
pub struct PeerMap<I> {
    peers: Vec<Peer<I>>,
    index: HashTable<u32>,
    seeders: u32,
}

impl<I> Default for PeerMap<I> {
    fn default() -> Self {
        PeerMap {
            peers: Vec::new(),
            index: HashTable::new(),
            seeders: 0,
        }
    }
}

/// The hash of an address, under one key per process.
fn hash_of<I: Ip>(ip: I, port: u16) -> u64 {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new).hash_one((ip, port))
}

impl<I: Ip> PeerMap<I> {
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn seeders(&self) -> u32 {
        self.seeders
    }

    pub fn iter(&self) -> impl Iterator<Item = &Peer<I>> {
        self.peers.iter()
    }

    fn find(&self, ip: I, port: u16) -> Option<usize> {
        let peers = &self.peers;
        self.index
            .find(hash_of(ip, port), |&i| {
                let p = &peers[i as usize];
                p.ip == ip && p.port == port
            })
            .map(|&i| i as usize)
    }

    /// Records an announce from `ip:port`. A peer not stored yet is added
    /// only if `admit` agrees (the tracker's peer limit); `None` when it
    /// refused.
    pub fn announce(
        &mut self,
        ip: I,
        port: u16,
        update: Update,
        admit: impl FnOnce() -> bool,
    ) -> Option<Announced> {
        let index = match self.find(ip, port) {
            Some(i) => {
                let peer = &mut self.peers[i];
                let was_seeder = peer.is_seeder();
                peer.uploaded = update.uploaded;
                peer.downloaded = update.downloaded;
                peer.left = update.left;
                peer.last_seen = update.now;
                self.seeders = self.seeders + u32::from(peer.is_seeder()) - u32::from(was_seeder);
                i
            }
            None => {
                let i = u32::try_from(self.peers.len()).ok()?;
                if !admit() {
                    return None;
                }
                let peer = Peer {
                    uploaded: update.uploaded,
                    downloaded: update.downloaded,
                    left: update.left,
                    last_seen: update.now,
                    ip,
                    port,
                    flags: 0,
                };
                self.seeders += u32::from(peer.is_seeder());
                self.peers.push(peer);
                let peers = &self.peers;
                self.index.insert_unique(hash_of(ip, port), i, |&j| {
                    let p = &peers[j as usize];
                    hash_of(p.ip, p.port)
                });
                i as usize
            }
        };
        // Count each peer's completion once, however often it says so.
        let peer = &mut self.peers[index];
        let completed = update.completed && peer.flags & FLAG_COMPLETED == 0;
        if completed {
            peer.flags |= FLAG_COMPLETED;
        }
        Some(Announced { index, completed })
    }

    /// Removes the peer at `ip:port`; whether it was stored.
    pub fn remove(&mut self, ip: I, port: u16) -> bool {
        let peers = &self.peers;
        let Ok(entry) = self.index.find_entry(hash_of(ip, port), |&i| {
            let p = &peers[i as usize];
            p.ip == ip && p.port == port
        }) else {
            return false;
        };
        let index = *entry.get() as usize;
        entry.remove();
        let removed = self.peers.swap_remove(index);
        self.seeders -= u32::from(removed.is_seeder());
        if let Some(moved) = self.peers.get(index) {
            // The last peer moved into the gap: point its slot there.
            let old = self.peers.len() as u32;
            if let Some(slot) = self
                .index
                .find_mut(hash_of(moved.ip, moved.port), |&i| i == old)
            {
                *slot = index as u32;
            }
        }
        true
    }

    /// Keeps the peers `keep` says to; returns how many went. The table is
    /// rebuilt only when some did, and both shrink once mostly empty.
    pub fn retain(&mut self, keep: impl FnMut(&Peer<I>) -> bool) -> usize {
        let before = self.peers.len();
        self.peers.retain(keep);
        let removed = before - self.peers.len();
        if removed == 0 {
            return 0;
        }
        self.seeders = self.peers.iter().filter(|p| p.is_seeder()).count() as u32;
        if self.peers.capacity() > 4 * self.peers.len() {
            self.peers.shrink_to_fit();
        }
        self.index.clear();
        let peers = &self.peers;
        let rehash = |&j: &u32| {
            let p = &peers[j as usize];
            hash_of(p.ip, p.port)
        };
        self.index.shrink_to(peers.len(), rehash);
        for (i, p) in peers.iter().enumerate() {
            self.index
                .insert_unique(hash_of(p.ip, p.port), i as u32, rehash);
        }
        removed
    }

    /// Up to `want` random peers other than the one at index `asker`, into
    /// `out`; only leechers when `only_leechers`.
    pub fn pick<R: Rng>(
        &self,
        asker: Option<usize>,
        only_leechers: bool,
        want: usize,
        rng: &mut R,
        out: &mut Vec<PeerEntry>,
    ) {
        if want == 0 || self.peers.is_empty() {
            return;
        }
        if only_leechers {
            // Only leechers (so never a seeder asking): one pass over the
            // swarm (seeders announce rarely).
            let leechers: Vec<usize> = (0..self.peers.len())
                .filter(|&i| !self.peers[i].is_seeder() && Some(i) != asker)
                .collect();
            out.extend(
                sample_distinct(rng, leechers.len(), want)
                    .into_iter()
                    .map(|i| self.peers[leechers[i]].entry()),
            );
            return;
        }
        // Consecutive entries from a random start, wrapping, as opentracker
        // answers: the entries are contiguous in memory, so the reply reads
        // one run of cache lines instead of `want` random ones (in a large
        // swarm each random read is a cache miss, and they made a tenth of
        // the tracker's time under load). The order is not fixed: every
        // departure moves the last peer into the gap.
        let len = self.peers.len();
        let start = rng.random_range(0..len);
        let mut taken = 0;
        for i in (start..len).chain(0..start) {
            if taken == want {
                break;
            }
            if Some(i) != asker {
                out.push(self.peers[i].entry());
                taken += 1;
            }
        }
    }
}

/// `amount` distinct indexes below `len`, uniformly at random, in O(amount)
/// when `amount` is small next to `len` (the common case: 50 of thousands).
/// A general-purpose sampler may allocate all of `0..len` instead, which made
/// every announce cost O(swarm size).
pub fn sample_distinct<R: Rng>(rng: &mut R, len: usize, amount: usize) -> Vec<usize> {
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
