//! An iterative lookup (BEP 5): ask the [`ALPHA`] closest unasked nodes at a
//! time, learn closer ones from their replies, and stop when the [`K`]
//! closest nodes known have all answered (or failed), or when a bound on
//! queries or time is reached. A `get_peers` lookup also gathers the peers
//! and the tokens the closest nodes gave, for the announce that follows.
//!
//! Pure: the node sends the queries this asks for and reports replies and
//! timeouts back.

use std::{collections::HashSet, net::SocketAddr, time::Duration};

use common::krpc::{NodeId, NodeInfo, Reply};
use tokio::time::Instant;

use super::table::K;

/// Queries in flight at once (BEP 5's α).
pub const ALPHA: usize = 3;
/// Candidates kept, closest first; farther ones are forgotten.
const MAX_CANDIDATES: usize = 4 * K;
/// Most queries one lookup sends.
pub const MAX_QUERIES: u32 = 128;
/// Longest a lookup runs.
pub const MAX_DURATION: Duration = Duration::from_secs(60);
/// Most distinct peers one lookup gathers.
pub const MAX_PEERS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Fresh,
    Asked,
    Replied { token: Option<Vec<u8>> },
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    info: NodeInfo,
    distance: [u8; 20],
    state: State,
}

/// One lookup for `target` (a node id, or an info-hash for `get_peers`).
#[derive(Debug)]
pub struct Lookup {
    target: NodeId,
    candidates: Vec<Candidate>,
    in_flight: usize,
    queries: u32,
    started: Instant,
    peers: HashSet<SocketAddr>,
}

impl Lookup {
    /// Starts from `seeds` (the table's closest nodes, or bootstrap nodes).
    pub fn new(target: NodeId, seeds: &[NodeInfo], now: Instant) -> Self {
        let mut lookup = Lookup {
            target,
            candidates: Vec::new(),
            in_flight: 0,
            queries: 0,
            started: now,
            peers: HashSet::new(),
        };
        lookup.learn(seeds);
        lookup
    }

    pub fn target(&self) -> NodeId {
        self.target
    }

    /// No candidate at all (nothing to start from yet).
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// Queries sent so far.
    pub fn queries(&self) -> u32 {
        self.queries
    }

    /// Adds nodes from a reply, closest first, without duplicates (by id or
    /// by address).
    pub fn learn(&mut self, nodes: &[NodeInfo]) {
        for node in nodes {
            if node.addr.port() == 0
                || self
                    .candidates
                    .iter()
                    .any(|c| c.info.id == node.id || c.info.addr == node.addr)
            {
                continue;
            }
            let distance = node.id.distance(&self.target);
            let at = self.candidates.partition_point(|c| c.distance <= distance);
            if at >= MAX_CANDIDATES {
                continue;
            }
            self.candidates.insert(
                at,
                Candidate {
                    info: *node,
                    distance,
                    state: State::Fresh,
                },
            );
            if self.candidates.len() > MAX_CANDIDATES {
                // Forget the farthest, unless it is waiting for a reply.
                if let Some(last) = self
                    .candidates
                    .iter()
                    .rposition(|c| c.state != State::Asked)
                {
                    self.candidates.remove(last);
                }
            }
        }
    }

    /// The closest `K` candidates that have not failed.
    fn frontier(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.state != State::Failed)
            .take(K)
    }

    /// The next node to ask, if the lookup may send a query now; the caller
    /// sends it and later reports [`Lookup::replied`] or [`Lookup::failed`].
    pub fn next_query(&mut self, now: Instant) -> Option<NodeInfo> {
        if self.in_flight >= ALPHA || self.out_of_budget(now) {
            return None;
        }
        let addr = self.frontier().find(|c| c.state == State::Fresh)?.info.addr;
        let candidate = self.candidates.iter_mut().find(|c| c.info.addr == addr)?;
        candidate.state = State::Asked;
        self.in_flight += 1;
        self.queries += 1;
        Some(candidate.info)
    }

    fn out_of_budget(&self, now: Instant) -> bool {
        self.queries >= MAX_QUERIES || now.saturating_duration_since(self.started) >= MAX_DURATION
    }

    /// A node we asked answered; returns the peers in its reply that are new
    /// to this lookup.
    pub fn replied(&mut self, from: SocketAddr, reply: &Reply) -> Vec<SocketAddr> {
        let Some(candidate) = self
            .candidates
            .iter_mut()
            .find(|c| c.info.addr == from && c.state == State::Asked)
        else {
            return Vec::new();
        };
        candidate.state = State::Replied {
            token: reply.token.clone(),
        };
        self.in_flight -= 1;
        self.learn(&reply.nodes);
        let mut new = Vec::new();
        for peer in &reply.values {
            if self.peers.len() < MAX_PEERS && self.peers.insert(*peer) {
                new.push(*peer);
            }
        }
        new
    }

    /// A node we asked did not answer in time (or answered with an error).
    pub fn failed(&mut self, from: SocketAddr) {
        if let Some(candidate) = self
            .candidates
            .iter_mut()
            .find(|c| c.info.addr == from && c.state == State::Asked)
        {
            candidate.state = State::Failed;
            self.in_flight -= 1;
        }
    }

    /// Done: nothing in flight and nothing left to ask among the closest
    /// `K`, or out of queries or time.
    pub fn is_done(&self, now: Instant) -> bool {
        self.in_flight == 0
            && (self.out_of_budget(now) || !self.frontier().any(|c| c.state == State::Fresh))
    }

    /// The closest nodes that answered, with the token each gave (for
    /// `announce_peer`), at most `K`.
    pub fn closest_replied(&self) -> Vec<(NodeInfo, Option<Vec<u8>>)> {
        self.candidates
            .iter()
            .filter_map(|c| match &c.state {
                State::Replied { token } => Some((c.info, token.clone())),
                _ => None,
            })
            .take(K)
            .collect()
    }

    /// How many distinct peers the lookup has found.
    pub fn peers_found(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
#[path = "lookup_tests.rs"]
mod tests;
