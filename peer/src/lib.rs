//! The peer's engine as a library: the BitTorrent peer ([`bt`]: download,
//! seed, magnet links and their metadata, peer exchange, the fast
//! extension), the DHT ([`dht`]: a node of BEP 5 with no socket inside,
//! and its UDP service) and the client-server baseline ([`baseline`]: `serve` and
//! `fetch`), with what both use: token buckets ([`rate`]), rates and sizes
//! as people write them ([`units`]). The accept loops' back-off and the
//! heap trimming every server runs are `common::serving`'s.
//!
//! The `peer` binary (`src/main.rs`, `src/commands/`) parses arguments,
//! calls these, prints, and turns errors into exit codes; tests and other
//! tools can drive the engine directly.

pub mod baseline;
pub mod bt;
pub mod dht;
pub mod rate;
pub mod units;
