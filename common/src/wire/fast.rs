//! The fast extension's allowed-fast set (BEP 6): the pieces a peer may ask
//! for while choked, chosen from its IPv4 address (the /24) and the
//! info-hash, so that every client computes the same set for it.

use std::{collections::HashSet, net::Ipv4Addr};

use sha1::{Digest, Sha1};

use crate::types::InfoHash;

/// The set's size BEP 6 suggests.
pub const ALLOWED_FAST_COUNT: usize = 10;

/// The first `k` allowed-fast pieces of a torrent of `piece_count` pieces
/// for a peer at `ip`, in the order BEP 6 generates them. At most
/// `piece_count` pieces; none for an empty torrent.
pub fn allowed_fast_set(
    ip: Ipv4Addr,
    info_hash: &InfoHash,
    piece_count: u32,
    k: usize,
) -> Vec<u32> {
    let k = k.min(piece_count as usize);
    let mut set = Vec::with_capacity(k);
    let mut seen = HashSet::with_capacity(k);
    let mut x: Vec<u8> = (u32::from(ip) & 0xffff_ff00).to_be_bytes().to_vec();
    x.extend_from_slice(&info_hash.0);
    while set.len() < k {
        x = Sha1::digest(&x).to_vec();
        for word in x.chunks_exact(4) {
            if set.len() == k {
                break;
            }
            let index = u32::from_be_bytes(word.try_into().expect("4 bytes")) % piece_count;
            if seen.insert(index) {
                set.push(index);
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of BEP 6 itself.
    #[test]
    fn the_example_of_bep_6() {
        let ip = Ipv4Addr::new(80, 4, 4, 200);
        let hash = InfoHash([0xaa; 20]);
        assert_eq!(
            allowed_fast_set(ip, &hash, 1313, 7),
            [1059, 431, 808, 1217, 287, 376, 1188]
        );
        assert_eq!(
            allowed_fast_set(ip, &hash, 1313, 9),
            [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
        );
        // The same /24 gets the same set.
        assert_eq!(
            allowed_fast_set(Ipv4Addr::new(80, 4, 4, 1), &hash, 1313, 9),
            allowed_fast_set(ip, &hash, 1313, 9)
        );
    }

    #[test]
    fn a_small_torrent_gives_each_piece_once() {
        let set = allowed_fast_set(Ipv4Addr::LOCALHOST, &InfoHash([1; 20]), 3, 10);
        let mut sorted = set.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2]);
        assert!(allowed_fast_set(Ipv4Addr::LOCALHOST, &InfoHash([1; 20]), 0, 10).is_empty());
    }
}
