//! The HTTP tracker protocol (BEP 3, 7, 23, 48) with no I/O: announce and
//! scrape queries ([`query`]) and the tracker's bencoded replies
//! ([`response`]). The tracker parses queries and encodes replies; the peer's
//! tracker client does the opposite with the same types.

pub mod query;
pub mod response;

pub use query::{escape, parse_scrape, AnnounceEvent, AnnounceRequest, QueryError};
pub use response::{encode_failure, AnnounceResponse, PeerEntry, ResponseError, ScrapeStats};
