//! Small value types every layer speaks: the info-hash and the peer id.
//! Both are 20 raw bytes; they print as lowercase hex.

use std::fmt;

use sha1::{Digest, Sha1};

/// SHA-1 of a torrent's bencoded `info` dictionary: the swarm's identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Hashes the exact bytes of an `info` dictionary.
    pub fn of_info_bytes(info: &[u8]) -> Self {
        InfoHash(Sha1::digest(info).into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 40 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(InfoHash(bytes))
    }

    /// From a byte slice of exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(InfoHash)
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

/// The 20-byte id a peer announces and sends in its handshake.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    /// From a byte slice of exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(PeerId)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Azureus-style ids start with a printable prefix such as `-PR0100-`.
        write!(
            f,
            "PeerId({})",
            String::from_utf8_lossy(&self.0).escape_debug()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_length_checks() {
        let hash = InfoHash::of_info_bytes(b"de");
        assert_eq!(InfoHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(
            InfoHash::from_hex(&hash.to_hex().to_uppercase()),
            Some(hash)
        );
        assert_eq!(InfoHash::from_hex("abc"), None);
        assert_eq!(InfoHash::from_slice(&[0; 19]), None);
        assert!(PeerId::from_slice(&[0; 21]).is_none());
    }
}
