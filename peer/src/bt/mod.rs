//! The BitTorrent peer: downloading and seeding over the wire protocol.
//!
//! Layers, each readable alone:
//! - [`storage`]: pieces to files, positional I/O, the resume check;
//! - [`picker`]: which blocks to ask whom for (pure, rarest first), with
//!   [`buffers`], the piece buffers it reuses;
//! - [`choke`]: whom to upload to (pure);
//! - [`superseed`]: which pieces an initial seeder shows each peer (pure, BEP 16);
//! - [`metadata`]: fetching the info dictionary of a magnet link from peers
//!   (pure, BEP 9), and [`magnet`], the connections that do it;
//! - [`tracker_client`]: announces with tier failover, over HTTP and, with
//!   [`udp_tracker`], UDP (BEP 15);
//! - [`session`]: one peer connection over any [`transport`] (TCP today),
//!   its protocol state kept in the pure [`peer_state`], with
//!   [`uploads`], the peer's queued requests and the writer task;
//!   [`delay`], the one-way delays its peer measures of our messages, and
//!   [`uplink`], the upload rate that keeps our uplink's queue short (both
//!   pure);
//!   [`extensions`], what its extended messages (BEP 10) call for;
//!   [`pex`], what peer exchange (BEP 11) tells each peer and how often;
//!   and [`fast`], the fast extension's allowed set (BEP 6);
//! - [`shared`]: the state sessions and the coordinator share, and its lock;
//! - [`workers`]: the threads that hash and write complete pieces, and
//!   [`verdict`], what becomes of each (announce, refetch and blame, stop);
//! - [`listener`]: the listening socket, which hands the coordinator only
//!   peers whose handshake is in, within [`admission`]'s limits (pure: the
//!   handshakes in progress, connections per address);
//! - [`torrent`]: the coordinator that ties them together, [`dialer`], whom
//!   it dials (pure: only below three fifths of its peer slots), and
//!   [`events`], the optional record of each piece's arrival for a study.
//!
//! `DESIGN.md` follows a block from request to disk through these layers.

pub mod admission;
pub mod buffers;
pub mod choke;
pub mod delay;
pub mod dialer;
pub mod events;
pub mod extensions;
pub mod fast;
pub mod listener;
pub mod magnet;
pub mod metadata;
pub mod peer_state;
pub mod pex;
pub mod picker;
pub mod session;
pub mod shared;
pub mod storage;
pub mod superseed;
pub mod torrent;
pub mod tracker_client;
pub mod transport;
pub mod udp_tracker;
pub mod uplink;
pub mod uploads;
pub mod verdict;
pub mod workers;
