//! What the peer and the tracker share, with no I/O policy of its own.
//!
//! - [`types`]: the info-hash and peer id.
//! - [`bencode`]: a bounded structural check in front of `serde_bencode`, and
//!   the byte spans of a dictionary's values.
//! - [`metainfo`]: `.torrent` files, from raw bytes to a validated
//!   [`metainfo::Metainfo`] whose paths cannot escape the download directory.
//! - [`magnet`]: magnet links (BEP 9) parsed: info-hash, name, trackers, peers.
//! - [`create`]: building a torrent from files: piece-length rule, directory
//!   walk, parallel hashing.
//! - [`tracker_proto`]: announce and scrape queries and replies, both ways.
//! - [`geometry`]: piece and block arithmetic, owned by one type.
//! - [`wire`]: the peer wire protocol: handshake, messages, a bounded codec;
//!   [`bitfield`]: the have-bits both sides exchange.
//! - [`extension`]: the extension protocol (BEP 10) and its messages:
//!   metadata exchange (BEP 9) and peer exchange (BEP 11).
//! - [`krpc`]: the DHT's messages (BEP 5, with BEP 43's read-only flag):
//!   node ids, queries, replies, a bounded datagram decoder.
//! - [`serving`]: what every listening server does alike: the accept loop's
//!   back-off, and giving heap freed after a burst of connections back to
//!   the kernel (its one thread; no socket or file).

pub mod bencode;
pub mod bitfield;
pub mod create;
pub mod extension;
pub mod geometry;
pub mod krpc;
pub mod magnet;
pub mod metainfo;
pub mod serving;
pub mod tracker_proto;
pub mod types;
pub mod wire;

pub use metainfo::{Metainfo, MetainfoError};
pub use types::{InfoHash, PeerId};
