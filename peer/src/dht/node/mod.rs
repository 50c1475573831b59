//! The DHT node as a state machine with no socket inside: datagrams go in
//! through [`Node::handle`], time through [`Node::tick`], and what it sends
//! and what it found come out of [`Node::poll_transmit`] and
//! [`Node::poll_event`]. It answers queries (rate-limited per source),
//! keeps the routing table, runs searches (iterative lookups), announces
//! when a search asks for it, and does the table's upkeep (bootstrap,
//! refresh, pings of questionable nodes, token rotation, peer expiry).
//!
//! Answering queries is [`answer`]'s part.
//!
//! Time and randomness come from the caller, so tests drive thousands of
//! nodes without a network.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    time::Duration,
};

use common::{
    krpc::{Body, Message, NodeId, NodeInfo, Query, Reply},
    InfoHash,
};
use rand::Rng;
use tokio::time::Instant;

mod answer;

use super::{
    limits::{Bucket, ReplyLimits, QUERIES_PER_SECOND, QUERY_BURST},
    lookup::Lookup,
    store::PeerStore,
    table::{RoutingTable, Seen, K},
    tokens::Tokens,
};

/// A query unanswered after this long has failed.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Upkeep (refresh, pings, token rotation, expiry) runs this often.
const UPKEEP_EVERY: Duration = Duration::from_secs(30);
/// While the table is empty, the bootstrap nodes are asked again this often.
const BOOTSTRAP_EVERY: Duration = Duration::from_secs(10);
/// Most queries waiting for a reply.
const MAX_PENDING: usize = 1024;
/// Most searches at once; more are refused.
pub const MAX_SEARCHES: usize = 64;
/// A search that finds no node to start from waits this long for the table.
const WAIT_FOR_TABLE: Duration = Duration::from_secs(20);
/// Our client and version in `v`: "PL" and 0.1.
const VERSION: &[u8] = b"PL\x00\x01";

/// Which search, for the caller to match events with.
pub type SearchId = u64;

/// What a search looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `find_node`: the nodes closest to an id.
    Node(NodeId),
    /// `get_peers`: peers of a torrent, then `announce_peer` with this port
    /// when given (0: the port our datagrams come from, `implied_port`).
    Peers {
        info_hash: InfoHash,
        announce: Option<u16>,
    },
}

/// What the node reports to its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Peers a `get_peers` search found, new to that search.
    Peers {
        search: SearchId,
        peers: Vec<SocketAddr>,
    },
    /// A search ended.
    Done {
        search: SearchId,
        queries: u32,
        peers: usize,
        announced: usize,
    },
}

#[derive(Debug, Clone, Copy)]
enum Purpose {
    Bootstrap,
    Ping,
    Search(SearchId),
    Announce,
}

#[derive(Debug)]
struct Pending {
    to: SocketAddr,
    id: Option<NodeId>,
    sent: Instant,
    purpose: Purpose,
}

#[derive(Debug)]
struct Search {
    target: Target,
    lookup: Lookup,
    started: Instant,
    /// Internal searches (bootstrap, refresh) report no events.
    report: bool,
}

/// Counters for people watching the node.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Counters {
    pub received: u64,
    pub malformed: u64,
    pub queries_answered: u64,
    pub queries_refused: u64,
    pub queries_sent: u64,
    pub timeouts: u64,
    pub announces_stored: u64,
    pub bad_tokens: u64,
}

pub struct Node<R> {
    table: RoutingTable,
    tokens: Tokens,
    store: PeerStore,
    reply_limits: ReplyLimits,
    query_bucket: Bucket,
    pending: HashMap<u16, Pending>,
    next_transaction: u16,
    searches: HashMap<SearchId, Search>,
    next_search: SearchId,
    bootstrap: Vec<SocketAddr>,
    last_bootstrap: Option<Instant>,
    last_upkeep: Instant,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<Event>,
    counters: Counters,
    rng: R,
}

impl<R: Rng> Node<R> {
    pub fn new(id: NodeId, now: Instant, mut rng: R) -> Self {
        Node {
            table: RoutingTable::new(id, now),
            tokens: Tokens::new(now, &mut rng),
            store: PeerStore::default(),
            reply_limits: ReplyLimits::new(now),
            query_bucket: Bucket::new(QUERIES_PER_SECOND, QUERY_BURST, now),
            pending: HashMap::new(),
            next_transaction: rng.random(),
            searches: HashMap::new(),
            next_search: 1,
            bootstrap: Vec::new(),
            last_bootstrap: None,
            last_upkeep: now,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            rng,
        }
    }

    pub fn id(&self) -> NodeId {
        self.table.own_id()
    }

    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Addresses asked for nodes while the table is empty.
    pub fn add_bootstrap(&mut self, addr: SocketAddr) {
        if !self.bootstrap.contains(&addr) {
            self.bootstrap.push(addr);
        }
    }

    /// Nodes known from an earlier run (the state file): pinged, and
    /// entered in the table when they answer.
    pub fn add_known(&mut self, addr: SocketAddr, now: Instant) {
        self.query(addr, None, Query::Ping, Purpose::Ping, now);
    }

    /// Starts a search; `None` when [`MAX_SEARCHES`] are running.
    pub fn search(&mut self, target: Target, now: Instant) -> Option<SearchId> {
        if self.searches.len() >= MAX_SEARCHES {
            return None;
        }
        let search = self.next_search;
        self.next_search += 1;
        self.start(search, target, true, now);
        self.drive(now);
        Some(search)
    }

    fn start(&mut self, search: SearchId, target: Target, report: bool, now: Instant) {
        let id = target_id(&target);
        let lookup = Lookup::new(id, &self.table.closest(&id, K), now);
        self.searches.insert(
            search,
            Search {
                target,
                lookup,
                started: now,
                report,
            },
        );
    }

    /// One datagram from `from`.
    pub fn handle(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) {
        self.counters.received += 1;
        let Ok(message) = Message::decode(datagram) else {
            self.counters.malformed += 1;
            return;
        };
        match message.body {
            Body::Query(query) => self.answer(
                from,
                message.transaction,
                message.id,
                message.read_only,
                query,
                now,
            ),
            Body::Reply(reply) => self.on_reply(
                from,
                &message.transaction,
                message.id,
                message.read_only,
                Ok(reply),
                now,
            ),
            Body::Error { .. } => {
                self.on_reply(from, &message.transaction, None, true, Err(()), now)
            }
        }
        self.drive(now);
    }

    fn on_reply(
        &mut self,
        from: SocketAddr,
        transaction: &[u8],
        id: Option<NodeId>,
        read_only: bool,
        reply: Result<Reply, ()>,
        now: Instant,
    ) {
        let Some(key) = <[u8; 2]>::try_from(transaction)
            .ok()
            .map(u16::from_be_bytes)
        else {
            return;
        };
        // Only the address we asked may answer (anything else is spoofed or
        // stale), with the id we expected when we knew it.
        match self.pending.get(&key) {
            Some(p) if p.to == from && (p.id.is_none() || id.is_none() || p.id == id) => {}
            _ => return,
        }
        let Some(pending) = self.pending.remove(&key) else {
            return;
        };
        let Ok(reply) = reply else {
            if let Purpose::Search(search) = pending.purpose {
                if let Some(s) = self.searches.get_mut(&search) {
                    s.lookup.failed(from);
                }
            }
            return;
        };
        // We are not a node to ask: others may list us among their closest.
        let own = self.id();
        let mut reply = reply;
        reply.nodes.retain(|n| n.id != own);
        if let (Some(id), false) = (id, read_only) {
            if let Seen::PingFirst(questionable) =
                self.table.replied(NodeInfo { id, addr: from }, now)
            {
                self.query(
                    questionable.addr,
                    Some(questionable.id),
                    Query::Ping,
                    Purpose::Ping,
                    now,
                );
            }
        }
        match pending.purpose {
            Purpose::Bootstrap => {
                let own = self.id();
                let search = self.next_search;
                self.next_search += 1;
                self.start(search, Target::Node(own), false, now);
                if let Some(s) = self.searches.get_mut(&search) {
                    s.lookup.learn(&reply.nodes);
                }
            }
            Purpose::Search(search) => {
                if let Some(s) = self.searches.get_mut(&search) {
                    let peers = s.lookup.replied(from, &reply);
                    if s.report && !peers.is_empty() {
                        self.events.push_back(Event::Peers { search, peers });
                    }
                }
            }
            Purpose::Ping | Purpose::Announce => {}
        }
    }

    /// Timeouts, upkeep and searches; call every few hundred milliseconds.
    pub fn tick(&mut self, now: Instant) {
        let expired: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.sent) >= QUERY_TIMEOUT)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            let Some(p) = self.pending.remove(&key) else {
                continue;
            };
            self.counters.timeouts += 1;
            if let Some(id) = p.id {
                self.table.failed(&id, now);
            }
            if let Purpose::Search(search) = p.purpose {
                if let Some(s) = self.searches.get_mut(&search) {
                    s.lookup.failed(p.to);
                }
            }
        }
        if self.table.is_empty()
            && !self.bootstrap.is_empty()
            && self
                .last_bootstrap
                .is_none_or(|t| now.saturating_duration_since(t) >= BOOTSTRAP_EVERY)
        {
            self.last_bootstrap = Some(now);
            let own = self.id();
            for addr in self.bootstrap.clone() {
                self.query(
                    addr,
                    None,
                    Query::FindNode { target: own },
                    Purpose::Bootstrap,
                    now,
                );
            }
        }
        if now.saturating_duration_since(self.last_upkeep) >= UPKEEP_EVERY {
            self.last_upkeep = now;
            self.tokens.rotate_if_due(now, &mut self.rng);
            self.store.expire(now);
            for target in self.table.refresh_targets(now, &mut self.rng) {
                let search = self.next_search;
                self.next_search += 1;
                self.start(search, Target::Node(target), false, now);
            }
            for node in self.table.to_ping(now, K) {
                self.query(node.addr, Some(node.id), Query::Ping, Purpose::Ping, now);
            }
        }
        self.drive(now);
    }

    /// Sends what the searches may send now, and ends those that are done.
    fn drive(&mut self, now: Instant) {
        let ids: Vec<SearchId> = self.searches.keys().copied().collect();
        for search in ids {
            let Some(s) = self.searches.get_mut(&search) else {
                continue;
            };
            if s.lookup.is_empty() {
                let id = s.lookup.target();
                s.lookup.learn(&self.table.closest(&id, K));
            }
            let mut asks = Vec::new();
            while self.query_bucket.ready(now) && self.pending.len() < MAX_PENDING {
                let Some(node) = s.lookup.next_query(now) else {
                    break;
                };
                self.query_bucket.take(now);
                asks.push(node);
            }
            let target = s.target;
            // With nothing to start from, a search waits for the table only
            // while the node may still learn nodes (a bootstrap or a ping
            // under way); otherwise it ends at once, finding nothing.
            let may_learn = !self.bootstrap.is_empty() || !self.pending.is_empty();
            let waiting = s.lookup.is_empty()
                && may_learn
                && now.saturating_duration_since(s.started) < WAIT_FOR_TABLE;
            let done = !waiting && s.lookup.is_done(now);
            for node in asks {
                let query = match target {
                    Target::Node(id) => Query::FindNode { target: id },
                    Target::Peers { info_hash, .. } => Query::GetPeers { info_hash },
                };
                self.send_query(
                    node.addr,
                    Some(node.id),
                    query,
                    Purpose::Search(search),
                    now,
                );
            }
            if done {
                self.finish(search, now);
            }
        }
    }

    fn finish(&mut self, search: SearchId, now: Instant) {
        let Some(s) = self.searches.remove(&search) else {
            return;
        };
        let mut announced = 0;
        if let Target::Peers {
            info_hash,
            announce: Some(port),
        } = s.target
        {
            for (node, token) in s.lookup.closest_replied() {
                let Some(token) = token else { continue };
                let query = Query::AnnouncePeer {
                    info_hash,
                    port,
                    implied_port: port == 0,
                    token,
                };
                self.send_query(node.addr, Some(node.id), query, Purpose::Announce, now);
                announced += 1;
            }
        }
        if s.report {
            self.events.push_back(Event::Done {
                search,
                queries: s.lookup.queries(),
                peers: s.lookup.peers_found(),
                announced,
            });
        }
    }

    /// A query outside searches (pings, bootstrap), within the query rate.
    fn query(
        &mut self,
        to: SocketAddr,
        id: Option<NodeId>,
        query: Query,
        purpose: Purpose,
        now: Instant,
    ) {
        if self.pending.len() < MAX_PENDING
            && !self.pending.values().any(|p| p.to == to)
            && self.query_bucket.take(now)
        {
            self.send_query(to, id, query, purpose, now);
        }
    }

    fn send_query(
        &mut self,
        to: SocketAddr,
        id: Option<NodeId>,
        query: Query,
        purpose: Purpose,
        now: Instant,
    ) {
        let mut key = self.next_transaction;
        while self.pending.contains_key(&key) {
            key = key.wrapping_add(1);
        }
        self.next_transaction = key.wrapping_add(1);
        self.pending.insert(
            key,
            Pending {
                to,
                id,
                sent: now,
                purpose,
            },
        );
        self.counters.queries_sent += 1;
        let own = self.id();
        self.send(
            to,
            message(key.to_be_bytes().to_vec(), own, Body::Query(query)),
        );
    }

    fn send(&mut self, to: SocketAddr, message: Message) {
        self.outbox.push_back((to, message.encode()));
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.outbox.pop_front()
    }

    /// The next thing found.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Nothing to wait for: no query in flight, no search, and no bootstrap
    /// to retry.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
            && self.searches.is_empty()
            && (self.bootstrap.is_empty() || !self.table.is_empty())
    }

    /// Searches running, including the node's own upkeep.
    pub fn searches_running(&self) -> usize {
        self.searches.len()
    }
}

fn target_id(target: &Target) -> NodeId {
    match target {
        Target::Node(id) => *id,
        Target::Peers { info_hash, .. } => (*info_hash).into(),
    }
}

fn error(code: i64, text: &str) -> Body {
    Body::Error {
        code,
        message: text.to_owned(),
    }
}

fn message(transaction: Vec<u8>, id: NodeId, body: Body) -> Message {
    let id = (!matches!(body, Body::Error { .. })).then_some(id);
    Message {
        transaction,
        id,
        body,
        read_only: false,
        requester: None,
        version: Some(VERSION.to_vec()),
    }
}

#[cfg(test)]
mod tests;
