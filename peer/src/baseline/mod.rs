//! The client-server baseline that the swarm is measured against: `peer
//! serve` hands whole files to any number of HTTP/1.1 clients (curl and wget
//! included), and `peer fetch` downloads one file the same way.
//!
//! This module owns the HTTP side of both, and nothing of the command line:
//!
//! - [`serve`]: the accept loop, connection limit and shutdown, and the totals;
//! - [`slots`]: the connection slots, head deadlines and eviction, pure;
//! - [`gate`]: those slots shared by the accept loop and the connections;
//! - [`conn`]: one connection: request heads in, replies out, file bodies by
//!   `sendfile(2)` through the server-wide rate limiter;
//! - [`http1`]: HTTP/1.1 request heads and response heads, without I/O;
//! - [`respond`]: one request head to one reply (ETag, ranges, HEAD, listing);
//! - [`resolve`]: request path to a path inside the served directory, or a refusal;
//! - [`http_range`]: `Range` and `Content-Range`, pure;
//! - [`listing`]: the optional HTML directory page;
//! - [`fetch`]: the client, with resume;
//! - [`part`]: the `.part` file and its sidecar.
//!
//! The rate limiter itself is [`crate::rate`], shared with the BitTorrent side.

pub mod conn;
pub mod fetch;
pub mod gate;
pub mod http1;
pub mod http_range;
pub mod listing;
pub mod part;
pub mod resolve;
pub mod respond;
pub mod serve;
pub mod slots;
