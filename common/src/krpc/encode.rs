//! Writing a KRPC message: [`Message::encode`]. Keys are written in sorted
//! order, as bencode requires.

use std::net::{IpAddr, SocketAddr};

use super::{Body, Message, NodeInfo, Query, Reply, MAX_NODES, MAX_VALUES};
use crate::bencode::Writer;

impl Message {
    /// The datagram. Lists over [`MAX_NODES`] or [`MAX_VALUES`] entries are
    /// cut to them, so whatever we send, we would accept.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128);
        let id = self.id.unwrap_or_default();
        w.dict();
        match &self.body {
            Body::Query(query) => {
                w.bytes(b"a");
                args(&mut w, &id.0, query);
            }
            Body::Error { code, message } => {
                w.bytes(b"e")
                    .list()
                    .int(*code)
                    .bytes(message.as_bytes())
                    .end();
            }
            Body::Reply(_) => {}
        }
        if let Some(addr) = &self.requester {
            w.bytes(b"ip")
                .bytes_with(compact_len(addr), |b| put_addr(b, addr));
        }
        if let Body::Query(query) = &self.body {
            w.bytes(b"q").bytes(method(query).as_bytes());
        }
        if let Body::Reply(reply) = &self.body {
            w.bytes(b"r");
            values(&mut w, &id.0, reply);
        }
        if self.read_only {
            w.bytes(b"ro").int(1);
        }
        w.bytes(b"t").bytes(&self.transaction);
        if let Some(version) = &self.version {
            w.bytes(b"v").bytes(version);
        }
        let kind: &[u8] = match self.body {
            Body::Query(_) => b"q",
            Body::Reply(_) => b"r",
            Body::Error { .. } => b"e",
        };
        w.bytes(b"y").bytes(kind);
        w.end();
        w.finish()
    }
}

fn method(query: &Query) -> &str {
    match query {
        Query::Ping => "ping",
        Query::FindNode { .. } => "find_node",
        Query::GetPeers { .. } => "get_peers",
        Query::AnnouncePeer { .. } => "announce_peer",
        Query::Unknown { method } => method,
    }
}

fn args(w: &mut Writer, id: &[u8; 20], query: &Query) {
    w.dict().bytes(b"id").bytes(id);
    match query {
        Query::Ping | Query::Unknown { .. } => {}
        Query::FindNode { target } => {
            w.bytes(b"target").bytes(&target.0);
        }
        Query::GetPeers { info_hash } => {
            w.bytes(b"info_hash").bytes(&info_hash.0);
        }
        Query::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
        } => {
            if *implied_port {
                w.bytes(b"implied_port").int(1);
            }
            w.bytes(b"info_hash").bytes(&info_hash.0);
            w.bytes(b"port").int(i64::from(*port));
            w.bytes(b"token").bytes(token);
        }
    }
    w.end();
}

fn values(w: &mut Writer, id: &[u8; 20], reply: &Reply) {
    w.dict().bytes(b"id").bytes(id);
    let nodes: Vec<&NodeInfo> = reply.nodes.iter().take(MAX_NODES).collect();
    let v4: Vec<_> = nodes.iter().filter(|n| n.addr.is_ipv4()).collect();
    let v6: Vec<_> = nodes.iter().filter(|n| n.addr.is_ipv6()).collect();
    if !v4.is_empty() {
        w.bytes(b"nodes").bytes_with(26 * v4.len(), |b| {
            for node in &v4 {
                b.extend_from_slice(&node.id.0);
                put_addr(b, &node.addr);
            }
        });
    }
    if !v6.is_empty() {
        w.bytes(b"nodes6").bytes_with(38 * v6.len(), |b| {
            for node in &v6 {
                b.extend_from_slice(&node.id.0);
                put_addr(b, &node.addr);
            }
        });
    }
    if let Some(token) = &reply.token {
        w.bytes(b"token").bytes(token);
    }
    if !reply.values.is_empty() {
        w.bytes(b"values").list();
        for addr in reply.values.iter().take(MAX_VALUES) {
            w.bytes_with(compact_len(addr), |b| put_addr(b, addr));
        }
        w.end();
    }
    w.end();
}

fn compact_len(addr: &SocketAddr) -> usize {
    if addr.is_ipv4() {
        6
    } else {
        18
    }
}

/// Appends an address in compact form (4 or 16 address bytes, then the port).
pub(crate) fn put_addr(buf: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => buf.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => buf.extend_from_slice(&ip.octets()),
    }
    buf.extend_from_slice(&addr.port().to_be_bytes());
}
