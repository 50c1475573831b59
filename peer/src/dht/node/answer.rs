//! How the node answers a query: `ping`, `find_node`, `get_peers` (with a
//! token), `announce_peer` (only with a token it gave that address lately),
//! anything else with error 204; nothing at all past the source's rate
//! limit. A querier not in the table is pinged, to prove its address before
//! it may enter.

use std::net::SocketAddr;

use common::krpc::{codes, Body, NodeId, Query, Reply};
use rand::Rng;
use tokio::time::Instant;

use super::{error, message, Node, Purpose, K, MAX_PENDING};

impl<R: Rng> Node<R> {
    pub(super) fn answer(
        &mut self,
        from: SocketAddr,
        transaction: Vec<u8>,
        id: Option<NodeId>,
        read_only: bool,
        query: Query,
        now: Instant,
    ) {
        if !self.reply_limits.allow(from, now) {
            self.counters.queries_refused += 1;
            return;
        }
        self.counters.queries_answered += 1;
        let body = match query {
            Query::Ping => Body::Reply(Reply::default()),
            Query::FindNode { target } => Body::Reply(Reply {
                nodes: self.table.closest(&target, K),
                ..Reply::default()
            }),
            Query::GetPeers { info_hash } => Body::Reply(Reply {
                nodes: self.table.closest(&info_hash.into(), K),
                values: self.store.peers(&info_hash, now, &mut self.rng),
                token: Some(self.tokens.token_for(from.ip())),
            }),
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => {
                if !self.tokens.is_valid(from.ip(), &token) {
                    self.counters.bad_tokens += 1;
                    error(codes::PROTOCOL, "bad token")
                } else if !implied_port && port == 0 {
                    error(codes::PROTOCOL, "port 0")
                } else {
                    let port = if implied_port { from.port() } else { port };
                    if self
                        .store
                        .announce(info_hash, SocketAddr::new(from.ip(), port), now)
                    {
                        self.counters.announces_stored += 1;
                        Body::Reply(Reply::default())
                    } else {
                        error(codes::SERVER, "peer store full")
                    }
                }
            }
            Query::Unknown { .. } => error(codes::METHOD_UNKNOWN, "Method Unknown"),
        };
        self.send(from, message(transaction, self.id(), body));
        // A querier may belong in the table: prove its address first.
        if let Some(id) = id {
            if !read_only && !self.table.contains(&id) && self.pending.len() < MAX_PENDING / 2 {
                self.query(from, Some(id), Query::Ping, Purpose::Ping, now);
            }
        }
    }
}
