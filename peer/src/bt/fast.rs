//! The fast extension (BEP 6) on one connection: the allowed-fast pieces
//! this peer may ask for while we choke it. The rest of BEP 6 is in the
//! session: `have_all`/`have_none` for full and empty bitfields (a
//! super-seeder sends `have_none`), a `reject_request` for every request we
//! drop (on a choke too), and a peer's rejects return its blocks to the
//! picker. None of these goes to a peer that did not set the bit.

use std::net::{IpAddr, SocketAddr};

use common::{
    bitfield::Bitfield,
    wire::fast::{allowed_fast_set, ALLOWED_FAST_COUNT},
};

use super::shared::Shared;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastPeer {
    /// BEP 6's set for the peer's address (none for IPv6, which BEP 6 does
    /// not define).
    pub allowed: Vec<u32>,
}

impl FastPeer {
    pub fn new(shared: &Shared, addr: SocketAddr) -> Self {
        let allowed = match addr.ip() {
            IpAddr::V4(ip) => allowed_fast_set(
                ip,
                &shared.info_hash,
                shared.geometry.piece_count,
                ALLOWED_FAST_COUNT,
            ),
            IpAddr::V6(_) => Vec::new(),
        };
        FastPeer { allowed }
    }

    /// The allowed-fast pieces to announce: those we have.
    pub fn allowed_of(&self, have: &Bitfield) -> Vec<u32> {
        self.allowed
            .iter()
            .copied()
            .filter(|&i| have.get(i as usize))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pieces_we_have_are_announced() {
        let peer = FastPeer {
            allowed: vec![3, 0, 7],
        };
        let mut have = Bitfield::new(8);
        have.set(7);
        have.set(0);
        assert_eq!(peer.allowed_of(&have), [0, 7]);
    }
}
