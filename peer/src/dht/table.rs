//! The routing table (BEP 5): buckets of at most [`K`] nodes by shared id
//! prefix, the bucket holding our own id split as it fills, a replacement
//! cache per bucket, and each node good, questionable or bad.
//!
//! Only nodes that have answered one of our queries enter the table: an
//! address learned from a reply or a query is unproven (it may be spoofed)
//! until it replies, so the node pings or queries it first. An IP address
//! other than loopback appears at most once, so one host cannot fill the
//! table with many ports.

use std::{net::SocketAddr, time::Duration};

use common::krpc::{NodeId, NodeInfo};
use rand::Rng;
use tokio::time::Instant;

/// Nodes per bucket (BEP 5's K).
pub const K: usize = 8;
/// A node that has not replied for this long is questionable; a bucket not
/// changed for this long is refreshed.
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
/// Failed queries in a row after which a node is bad.
pub const BAD_AFTER_FAILURES: u8 = 2;

/// A node in the table.
#[derive(Debug, Clone)]
pub struct Entry {
    pub info: NodeInfo,
    pub last_reply: Instant,
    pub failures: u8,
}

impl Entry {
    pub fn is_bad(&self) -> bool {
        self.failures >= BAD_AFTER_FAILURES
    }

    pub fn is_good(&self, now: Instant) -> bool {
        self.failures == 0 && now.saturating_duration_since(self.last_reply) < GOOD_FOR
    }
}

#[derive(Debug)]
struct Bucket {
    nodes: Vec<Entry>,
    /// Nodes that replied while the bucket was full, newest last.
    cache: Vec<NodeInfo>,
    changed: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Bucket {
            nodes: Vec::with_capacity(K),
            cache: Vec::new(),
            changed: now,
        }
    }
}

/// What [`RoutingTable::replied`] did with a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Added, or already there and now marked as having replied.
    InTable,
    /// Its bucket is full of good nodes; kept in the replacement cache.
    Cached,
    /// Its bucket is full and this node is questionable: ping it, and a
    /// failure makes room for the cached newcomer.
    PingFirst(NodeInfo),
    /// Refused (our own id, or a second node on one non-loopback IP).
    Refused,
}

/// The routing table of the node whose id is `own`.
#[derive(Debug)]
pub struct RoutingTable {
    own: NodeId,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    pub fn new(own: NodeId, now: Instant) -> Self {
        RoutingTable {
            own,
            buckets: vec![Bucket::new(now)],
        }
    }

    pub fn own_id(&self) -> NodeId {
        self.own
    }

    fn index(&self, id: &NodeId) -> usize {
        self.own.common_prefix_len(id).min(self.buckets.len() - 1)
    }

    /// Number of nodes in the table (not counting the caches).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Every node in the table, bucket by bucket.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    pub fn contains(&self, id: &NodeId) -> bool {
        self.buckets[self.index(id)]
            .nodes
            .iter()
            .any(|e| e.info.id == *id)
    }

    /// A node answered one of our queries.
    pub fn replied(&mut self, info: NodeInfo, now: Instant) -> Seen {
        if info.id == self.own {
            return Seen::Refused;
        }
        loop {
            let index = self.index(&info.id);
            let bucket = &mut self.buckets[index];
            if let Some(entry) = bucket.nodes.iter_mut().find(|e| e.info.id == info.id) {
                // Its first address stays: a reply from elsewhere with the
                // same id changes nothing.
                if entry.info.addr == info.addr {
                    entry.last_reply = now;
                    entry.failures = 0;
                    return Seen::InTable;
                }
                return Seen::Refused;
            }
            if !info.addr.ip().is_loopback() && self.has_ip(info.addr) {
                return Seen::Refused;
            }
            let bucket = &mut self.buckets[index];
            if bucket.nodes.len() < K {
                bucket.nodes.push(Entry {
                    info,
                    last_reply: now,
                    failures: 0,
                });
                bucket.changed = now;
                return Seen::InTable;
            }
            if index == self.buckets.len() - 1 && self.buckets.len() < 160 {
                self.split(now);
                continue;
            }
            let bucket = &mut self.buckets[index];
            if let Some(bad) = bucket.nodes.iter_mut().find(|e| e.is_bad()) {
                *bad = Entry {
                    info,
                    last_reply: now,
                    failures: 0,
                };
                bucket.changed = now;
                return Seen::InTable;
            }
            remember(&mut bucket.cache, info);
            return match bucket.nodes.iter().find(|e| !e.is_good(now)) {
                Some(questionable) => Seen::PingFirst(questionable.info),
                None => Seen::Cached,
            };
        }
    }

    fn has_ip(&self, addr: SocketAddr) -> bool {
        self.entries().any(|e| e.info.addr.ip() == addr.ip())
    }

    /// Splits the last bucket (the one holding our own id) in two.
    fn split(&mut self, now: Instant) {
        let depth = self.buckets.len() - 1;
        let mut next = Bucket::new(now);
        let last = &mut self.buckets[depth];
        let (deeper, stay): (Vec<Entry>, Vec<Entry>) = last
            .nodes
            .drain(..)
            .partition(|e| self.own.common_prefix_len(&e.info.id) > depth);
        last.nodes = stay;
        next.nodes = deeper;
        let (deeper_cache, stay_cache): (Vec<NodeInfo>, Vec<NodeInfo>) = last
            .cache
            .drain(..)
            .partition(|n| self.own.common_prefix_len(&n.id) > depth);
        last.cache = stay_cache;
        next.cache = deeper_cache;
        self.buckets.push(next);
    }

    /// A query to `id` went unanswered. A node that turns bad is replaced by
    /// the newest node of its bucket's cache, if any.
    pub fn failed(&mut self, id: &NodeId, now: Instant) {
        let index = self.index(id);
        let bucket = &mut self.buckets[index];
        let Some(position) = bucket.nodes.iter().position(|e| e.info.id == *id) else {
            return;
        };
        let entry = &mut bucket.nodes[position];
        entry.failures = entry.failures.saturating_add(1);
        if entry.is_bad() {
            if let Some(newcomer) = bucket.cache.pop() {
                bucket.nodes[position] = Entry {
                    info: newcomer,
                    // It replied when it was cached, a short while ago.
                    last_reply: now,
                    failures: 0,
                };
                bucket.changed = now;
            }
        }
    }

    /// The `count` nodes closest to `target` that are not bad.
    pub fn closest(&self, target: &NodeId, count: usize) -> Vec<NodeInfo> {
        let mut nodes: Vec<NodeInfo> = self
            .entries()
            .filter(|e| !e.is_bad())
            .map(|e| e.info)
            .collect();
        nodes.sort_by_key(|n| n.id.distance(target));
        nodes.truncate(count);
        nodes
    }

    /// Nodes that have not replied for [`GOOD_FOR`], to ping, at most `max`.
    pub fn to_ping(&self, now: Instant, max: usize) -> Vec<NodeInfo> {
        self.entries()
            .filter(|e| !e.is_bad() && !e.is_good(now))
            .take(max)
            .map(|e| e.info)
            .collect()
    }

    /// A random id in each bucket not changed for [`GOOD_FOR`] (marked as
    /// changed now), to look up: BEP 5's bucket refresh.
    pub fn refresh_targets<R: Rng>(&mut self, now: Instant, rng: &mut R) -> Vec<NodeId> {
        let own = self.own;
        let last = self.buckets.len() - 1;
        let mut targets = Vec::new();
        for (depth, bucket) in self.buckets.iter_mut().enumerate() {
            if now.saturating_duration_since(bucket.changed) >= GOOD_FOR {
                bucket.changed = now;
                targets.push(random_in_bucket(&own, depth, depth == last, rng));
            }
        }
        targets
    }
}

/// Adds `info` to a replacement cache, newest last, at most [`K`] long.
fn remember(cache: &mut Vec<NodeInfo>, info: NodeInfo) {
    cache.retain(|n| n.id != info.id);
    if cache.len() == K {
        cache.remove(0);
    }
    cache.push(info);
}

/// A random id sharing exactly `depth` leading bits with `own` (at least
/// `depth` for the last bucket).
pub fn random_in_bucket<R: Rng>(own: &NodeId, depth: usize, last: bool, rng: &mut R) -> NodeId {
    let mut id = NodeId(rng.random());
    for bit in 0..depth.min(160) {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        id.0[byte] = (id.0[byte] & !mask) | (own.0[byte] & mask);
    }
    if !last && depth < 160 {
        let (byte, mask) = (depth / 8, 0x80u8 >> (depth % 8));
        id.0[byte] = (id.0[byte] & !mask) | (!own.0[byte] & mask);
    }
    id
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
