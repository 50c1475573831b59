//! The client-server baseline that the swarm is measured against: `peer
//! serve` hands whole files to any number of HTTP/1.1 clients (curl and wget
//! included), and `peer fetch` downloads one file the same way.
//!
//! This module owns the HTTP side of both, and nothing of the command line:
//!
//! - [`serve`]: the accept loop, connection limit and shutdown, and the totals;
//! - [`respond`]: one request to one response (ETag, ranges, HEAD, listing),
//!   bodies streamed from disk through the server-wide rate limiter;
//! - [`resolve`]: request path to a path inside the served directory, or a refusal;
//! - [`http_range`]: `Range` and `Content-Range`, pure;
//! - [`listing`]: the optional HTML directory page;
//! - [`pool`]: reusable buffers for the chunks read from disk;
//! - [`fetch`]: the client, with resume;
//! - [`part`]: the `.part` file and its sidecar.
//!
//! The rate limiter itself is [`crate::rate`], shared with the BitTorrent side.

pub mod fetch;
pub mod http_range;
pub mod listing;
pub mod part;
pub mod pool;
pub mod resolve;
pub mod respond;
pub mod serve;
