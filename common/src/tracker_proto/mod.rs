//! The tracker protocols with no I/O. Over HTTP (BEP 3, 7, 23, 48): announce
//! and scrape queries ([`query`]) and the tracker's bencoded replies
//! ([`response`]). Over UDP (BEP 15, 41): [`udp`]'s packets. The tracker
//! parses requests and encodes replies; the peer's tracker client does the
//! opposite with the same types.

pub mod query;
pub mod response;
pub mod udp;

pub use query::{escape, parse_scrape, AnnounceEvent, AnnounceRequest, QueryError};
pub use response::{encode_failure, AnnounceResponse, PeerEntry, ResponseError, ScrapeStats};
