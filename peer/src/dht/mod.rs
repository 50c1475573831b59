//! The mainline DHT (BEP 5), as a node of our own: trackerless torrents and
//! magnet links find their peers here.
//!
//! The core has no socket and no clock of its own: [`node::Node`] takes
//! datagrams and the time and gives datagrams and findings back, over the
//! routing table ([`table`]), iterative lookups ([`lookup`]), `announce_peer`
//! tokens ([`tokens`]), the peers others announced ([`store`]) and the rate
//! limits both ways ([`limits`]). The messages themselves are
//! `common::krpc`'s. [`service`] runs a node on a UDP socket for the
//! commands, [`state`] keeps its id and table between runs, and [`swarm`]
//! is what a torrent asks of it (peers, announces, on a schedule).

pub mod limits;
pub mod lookup;
pub mod node;
pub mod service;
pub mod state;
pub mod store;
pub mod swarm;
pub mod table;
pub mod tokens;
