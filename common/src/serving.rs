//! What every listening server here (the tracker, `peer serve`, the peer's
//! BitTorrent listener) does the same way, with no socket of its own: how an
//! accept loop backs off when `accept` fails ([`AcceptBackoff`]), and giving
//! the heap that a burst of connections left behind back to the kernel
//! ([`heap`]).

mod accept_backoff;
pub mod heap;

pub use accept_backoff::{AcceptBackoff, FIRST_PAUSE, MAX_PAUSE};
