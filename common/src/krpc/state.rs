//! The DHT node's saved state: our node id and the nodes of our routing
//! table, so a restarted node keeps its id and starts from the nodes it
//! knew. A bencoded dictionary: `id` (20 bytes), `nodes` and `nodes6`
//! (compact, 26 bytes per IPv4 node and 38 per IPv6 node, as in replies).
//!
//! [`State::decode`] reads a file as hostile input: checked with
//! [`crate::bencode::check`] first, node lists in whole entries, at most
//! [`MAX_SAVED_NODES`] nodes kept, nodes with port 0 skipped.

use std::net::{IpAddr, SocketAddr};

use super::{encode::put_addr, NodeId, NodeInfo};
use crate::bencode::{self, bytes_of, Writer};

/// Most nodes saved and loaded.
pub const MAX_SAVED_NODES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub id: NodeId,
    pub nodes: Vec<NodeInfo>,
}

impl State {
    pub fn encode(&self) -> Vec<u8> {
        let nodes: Vec<&NodeInfo> = self.nodes.iter().take(MAX_SAVED_NODES).collect();
        let mut w = Writer::with_capacity(64 + 38 * nodes.len());
        w.dict().bytes(b"id").bytes(&self.id.0);
        for (key, v4, width) in [(&b"nodes"[..], true, 26), (b"nodes6", false, 38)] {
            let family: Vec<&&NodeInfo> = nodes.iter().filter(|n| n.addr.is_ipv4() == v4).collect();
            w.bytes(key).bytes_with(width * family.len(), |b| {
                for node in &family {
                    b.extend_from_slice(&node.id.0);
                    put_addr(b, &node.addr);
                }
            });
        }
        w.end();
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<State, String> {
        bencode::check(bytes).map_err(|e| e.to_string())?;
        let spans = bencode::dict_value_spans(bytes).map_err(|e| e.to_string())?;
        let field = |key: &[u8]| {
            spans
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, r)| bytes_of(&bytes[r.clone()]))
        };
        let id = field(b"id")
            .and_then(NodeId::from_slice)
            .ok_or("no 20-byte `id`")?;
        let mut nodes = Vec::new();
        for (key, width) in [(&b"nodes"[..], 26), (b"nodes6", 38)] {
            let compact = field(key).unwrap_or_default();
            if compact.len() % width != 0 {
                return Err("a node list is not whole entries".into());
            }
            for entry in compact
                .chunks_exact(width)
                .take(MAX_SAVED_NODES - nodes.len())
            {
                let id = NodeId::from_slice(&entry[..20]).ok_or("bad node id")?;
                let addr = &entry[20..];
                let ip: IpAddr = match <[u8; 4]>::try_from(addr.get(..4).unwrap_or_default()) {
                    Ok(v4) if width == 26 => v4.into(),
                    _ => <[u8; 16]>::try_from(&addr[..16])
                        .map_err(|_| "bad address")?
                        .into(),
                };
                let port = u16::from_be_bytes([addr[width - 22], addr[width - 21]]);
                if port != 0 {
                    nodes.push(NodeInfo {
                        id,
                        addr: SocketAddr::new(ip, port),
                    });
                }
            }
        }
        Ok(State { id, nodes })
    }
}
