//! KRPC, the DHT's message format (BEP 5), with no I/O: node ids, the four
//! queries (`ping`, `find_node`, `get_peers`, `announce_peer`), their
//! replies and errors, compact node and peer lists, and the read-only flag of
//! BEP 43.
//!
//! A KRPC message is one bencoded dictionary in one UDP datagram: `t` the
//! transaction id the reply echoes, `y` its kind (`q` query, `r` reply, `e`
//! error), then `q` and `a` (method and arguments), `r` (reply values) or `e`
//! (`[code, message]`). A reply does not name its method; the sender matches
//! it to its query by the transaction id, so [`Reply`] holds every field any
//! reply may carry.
//!
//! [`Message::decode`] takes an untrusted datagram: it refuses one longer
//! than [`MAX_PACKET`], checks it with [`crate::bencode::check`] (depth and
//! length prefixes bounded) before reading a field, bounds the transaction id
//! and token, refuses node and peer lists over [`MAX_NODES`] and
//! [`MAX_VALUES`], and ignores fields it does not know. Any violation is a
//! [`KrpcError`]; the node drops the datagram.
//!
//! [`state`] is the node's saved state (its id and table), in the same
//! compact node form.

mod decode;
mod encode;
pub mod state;
#[cfg(test)]
mod tests;

use std::{fmt, net::SocketAddr};

use thiserror::Error;

use crate::{bencode::BencodeError, types::InfoHash};

/// Largest datagram decoded. Honest KRPC messages fit one Ethernet frame
/// (libtorrent keeps its replies under 1,500 bytes); anything longer is
/// refused unread.
pub const MAX_PACKET: usize = 4096;
/// Longest transaction id accepted (clients use 2 to 4 bytes).
pub const MAX_TRANSACTION_LEN: usize = 16;
/// Longest token accepted (clients use 4 to 20 bytes).
pub const MAX_TOKEN_LEN: usize = 64;
/// Most nodes in one reply's `nodes` plus `nodes6` (honest replies hold 8).
pub const MAX_NODES: usize = 64;
/// Most peers in one `get_peers` reply's `values`.
pub const MAX_VALUES: usize = 256;
/// Longest error message kept (longer ones are cut, not refused).
pub const MAX_ERROR_TEXT: usize = 256;

/// The error codes of BEP 5.
pub mod codes {
    pub const GENERIC: i64 = 201;
    pub const SERVER: i64 = 202;
    pub const PROTOCOL: i64 = 203;
    pub const METHOD_UNKNOWN: i64 = 204;
}

/// A DHT node's 160-bit id; distances between ids are their XOR.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// The XOR distance to `other`, comparable as a big-endian number.
    pub fn distance(&self, other: &NodeId) -> [u8; 20] {
        let mut d = [0u8; 20];
        for (i, byte) in d.iter_mut().enumerate() {
            *byte = self.0[i] ^ other.0[i];
        }
        d
    }

    /// How many leading bits `self` and `other` share (160 when equal).
    pub fn common_prefix_len(&self, other: &NodeId) -> usize {
        for (i, (a, b)) in self.0.iter().zip(other.0.iter()).enumerate() {
            let x = a ^ b;
            if x != 0 {
                return i * 8 + x.leading_zeros() as usize;
            }
        }
        160
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(NodeId)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl From<InfoHash> for NodeId {
    fn from(hash: InfoHash) -> Self {
        NodeId(hash.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", &self.to_hex()[..12])
    }
}

/// A node as replies list it: its id and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    pub id: NodeId,
    pub addr: SocketAddr,
}

/// What one side asks of another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Ping,
    FindNode {
        target: NodeId,
    },
    GetPeers {
        info_hash: InfoHash,
    },
    AnnouncePeer {
        info_hash: InfoHash,
        /// The port the announcer's peer listens on; with `implied_port`
        /// the receiver uses the datagram's source port instead.
        port: u16,
        implied_port: bool,
        token: Vec<u8>,
    },
    /// A method this codec does not speak; answered with error 204.
    Unknown {
        method: String,
    },
}

/// The values of a reply; which are present depends on the query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// Compact nodes (`nodes` for IPv4, `nodes6` for IPv6).
    pub nodes: Vec<NodeInfo>,
    /// Peers of a `get_peers` reply (`values`).
    pub values: Vec<SocketAddr>,
    /// The token a later `announce_peer` to this node must carry.
    pub token: Option<Vec<u8>>,
}

/// A message's kind and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Query(Query),
    Reply(Reply),
    Error { code: i64, message: String },
}

/// One KRPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Chosen by the querier, echoed by the reply; at most
    /// [`MAX_TRANSACTION_LEN`] bytes.
    pub transaction: Vec<u8>,
    /// The sender's node id (queries and replies carry one; errors do not).
    pub id: Option<NodeId>,
    pub body: Body,
    /// BEP 43: the sender answers no queries, so it must not enter a
    /// routing table.
    pub read_only: bool,
    /// BEP 42 `ip`: the address the replier saw the query come from.
    pub requester: Option<SocketAddr>,
    /// `v`: the sender's client and version, when given (at most 8 bytes
    /// kept).
    pub version: Option<Vec<u8>>,
}

/// Why a datagram is not a KRPC message this codec accepts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KrpcError {
    #[error("krpc: {0}")]
    Bencode(#[from] BencodeError),
    #[error("krpc: datagram of {0} bytes is over the {MAX_PACKET}-byte limit")]
    TooLong(usize),
    #[error("krpc: field `{0}` is missing or has the wrong type")]
    BadField(&'static str),
    #[error("krpc: `{field}` holds {count} entries, over the limit of {limit}")]
    TooMany {
        field: &'static str,
        count: usize,
        limit: usize,
    },
}
