//! Magnet links (BEP 9), parsed: the info-hash, a display name, trackers and
//! peer addresses.
//!
//! `magnet:?xt=urn:btih:<40 hex or 32 base32>&dn=<name>&tr=<url>&x.pe=<host:port>`.
//! Each `tr` (or `tr.N`) becomes a tier of its own, in the order given, so
//! the trackers are tried one after another as a torrent's tiers are. A link
//! that names only a BitTorrent v2 hash (`urn:btmh:`) is refused with a
//! clear error; a hybrid link with both is read for its v1 hash.
//!
//! Bounds: the link is at most [`MAX_LINK_LEN`] bytes, with at most
//! [`MAX_TRACKERS`] trackers and [`MAX_PEERS`] peers; parameters this module
//! does not know are ignored, as BEP 9 expects of a client.

use percent_encoding::percent_decode_str;
use thiserror::Error;

use crate::types::InfoHash;

/// Longest magnet link accepted, in bytes.
pub const MAX_LINK_LEN: usize = 16 * 1024;
/// Most `tr` parameters kept.
pub const MAX_TRACKERS: usize = 64;
/// Most `x.pe` parameters kept.
pub const MAX_PEERS: usize = 64;

/// A parsed magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    pub info_hash: InfoHash,
    /// `dn`: a name to show until the metadata says the real one.
    pub name: Option<String>,
    /// `tr`, one tier per tracker, in the order given.
    pub trackers: Vec<Vec<String>>,
    /// `x.pe`: peers to dial, as `host:port` (an IP or a name).
    pub peers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MagnetError {
    #[error("not a magnet link (it must start with `magnet:?`)")]
    NotMagnet,
    #[error("the magnet link is {0} bytes, over the {MAX_LINK_LEN}-byte limit")]
    TooLong(usize),
    #[error("the magnet link has no BitTorrent info-hash (`xt=urn:btih:`)")]
    NoInfoHash,
    #[error("the magnet link names only a BitTorrent v2 hash (`urn:btmh:`), which this peer does not speak")]
    OnlyV2,
    #[error("the info-hash `{0}` is neither 40 hex digits nor 32 base32 letters")]
    BadInfoHash(String),
    #[error("the magnet link names two different info-hashes")]
    TwoInfoHashes,
    #[error("`x.pe={0}` is not HOST:PORT with a port from 1 to 65535")]
    BadPeer(String),
    #[error("`{0}` is not valid percent-encoded UTF-8")]
    BadEncoding(String),
}

impl Magnet {
    /// Whether `text` looks like a magnet link rather than a file path.
    pub fn is_magnet(text: &str) -> bool {
        text.get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
    }

    pub fn parse(link: &str) -> Result<Magnet, MagnetError> {
        if link.len() > MAX_LINK_LEN {
            return Err(MagnetError::TooLong(link.len()));
        }
        let query = link
            .get(..8)
            .filter(|p| p.eq_ignore_ascii_case("magnet:?"))
            .map(|_| &link[8..])
            .ok_or(MagnetError::NotMagnet)?;
        let mut info_hash = None;
        let mut saw_v2 = false;
        let mut magnet = Magnet {
            info_hash: InfoHash([0; 20]),
            name: None,
            trackers: Vec::new(),
            peers: Vec::new(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = || {
                percent_decode_str(raw)
                    .decode_utf8()
                    .map(|v| v.into_owned())
                    .map_err(|_| MagnetError::BadEncoding(pair.to_owned()))
            };
            let indexed = |name: &str| {
                key == name
                    || key
                        .strip_prefix(name)
                        .and_then(|rest| rest.strip_prefix('.'))
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            };
            if indexed("xt") {
                let value = value()?;
                if let Some(hash) = strip_prefix_ci(&value, "urn:btih:") {
                    let hash = parse_hash(hash)?;
                    if info_hash.is_some_and(|h| h != hash) {
                        return Err(MagnetError::TwoInfoHashes);
                    }
                    info_hash = Some(hash);
                } else if strip_prefix_ci(&value, "urn:btmh:").is_some() {
                    saw_v2 = true;
                }
            } else if key == "dn" {
                magnet.name = Some(value()?);
            } else if indexed("tr") {
                let url = value()?;
                let known = magnet.trackers.iter().any(|tier| tier[0] == url);
                if !url.is_empty() && !known && magnet.trackers.len() < MAX_TRACKERS {
                    magnet.trackers.push(vec![url]);
                }
            } else if key == "x.pe" {
                let peer = value()?;
                check_peer(&peer)?;
                if magnet.peers.len() < MAX_PEERS && !magnet.peers.contains(&peer) {
                    magnet.peers.push(peer);
                }
            }
        }
        magnet.info_hash = match info_hash {
            Some(hash) => hash,
            None if saw_v2 => return Err(MagnetError::OnlyV2),
            None => return Err(MagnetError::NoInfoHash),
        };
        Ok(magnet)
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))
        .map(|_| &text[prefix.len()..])
}

/// 40 hex digits or 32 base32 letters (RFC 4648, either case).
fn parse_hash(text: &str) -> Result<InfoHash, MagnetError> {
    let bad = || MagnetError::BadInfoHash(text.chars().take(64).collect());
    match text.len() {
        40 => InfoHash::from_hex(text).ok_or_else(bad),
        32 => {
            let mut out = [0u8; 20];
            let mut bits: u64 = 0;
            let mut count = 0;
            let mut at = 0;
            for byte in text.bytes() {
                let value = match byte.to_ascii_uppercase() {
                    c @ b'A'..=b'Z' => c - b'A',
                    c @ b'2'..=b'7' => c - b'2' + 26,
                    _ => return Err(bad()),
                };
                bits = (bits << 5) | u64::from(value);
                count += 5;
                if count >= 8 {
                    count -= 8;
                    out[at] = (bits >> count) as u8;
                    at += 1;
                }
            }
            Ok(InfoHash(out))
        }
        _ => Err(bad()),
    }
}

/// Whether `text` is a peer address as `x.pe` and `--peer` take it:
/// `host:port` or `[v6]:port`, port 1 to 65535.
pub fn is_peer_address(text: &str) -> bool {
    check_peer(text).is_ok()
}

fn check_peer(peer: &str) -> Result<(), MagnetError> {
    let bad = || MagnetError::BadPeer(peer.chars().take(300).collect());
    let (host, port) = peer.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    if port == 0 || !host_ok {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn a_full_link_is_read() {
        let link = format!(
            "magnet:?xt=urn:btih:{HEX}&dn=Big%20File&tr=udp%3A%2F%2F127.0.0.1%3A6969%2Fannounce\
             &tr=http://127.0.0.1:8080/announce&x.pe=127.0.0.1:6881&x.pe=%5B%3A%3A1%5D%3A51413&xl=123&so=0"
        );
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.name.as_deref(), Some("Big File"));
        assert_eq!(
            m.trackers,
            vec![
                vec!["udp://127.0.0.1:6969/announce".to_owned()],
                vec!["http://127.0.0.1:8080/announce".to_owned()]
            ]
        );
        assert_eq!(m.peers, ["127.0.0.1:6881", "[::1]:51413"]);
    }

    #[test]
    fn base32_and_hex_name_the_same_hash() {
        // The same 20 bytes in base32 (RFC 4648), upper and lower case.
        let base32 = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK";
        for text in [base32.to_owned(), base32.to_lowercase()] {
            let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{text}")).unwrap();
            assert_eq!(m.info_hash.to_hex(), HEX);
        }
        let upper = Magnet::parse(&format!("MAGNET:?XT=urn:BTIH:{}", HEX.to_uppercase()));
        assert!(upper.is_err(), "parameter names are case-sensitive");
        let m = Magnet::parse(&format!("MAGNET:?xt=URN:BTIH:{}", HEX.to_uppercase())).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
    }

    #[test]
    fn a_link_with_only_a_hash_has_no_trackers_or_peers() {
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}")).unwrap();
        assert!(m.trackers.is_empty() && m.peers.is_empty() && m.name.is_none());
        let hybrid = format!("magnet:?xt=urn:btmh:1220abcd&xt=urn:btih:{HEX}&tr.1=http://a/announce&tr.2=http://b/announce&tr.x=c");
        let m = Magnet::parse(&hybrid).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.trackers.len(), 2, "tr.N counts, tr.x does not");
    }

    #[test]
    fn each_bad_link_is_its_error() {
        let cases = [
            ("./file.torrent".to_owned(), MagnetError::NotMagnet),
            ("magnet:?dn=x".to_owned(), MagnetError::NoInfoHash),
            (
                "magnet:?xt=urn:btmh:1220abcd".to_owned(),
                MagnetError::OnlyV2,
            ),
            (
                "magnet:?xt=urn:btih:abc".to_owned(),
                MagnetError::BadInfoHash("abc".into()),
            ),
            (
                format!("magnet:?xt=urn:btih:{}", "g".repeat(40)),
                MagnetError::BadInfoHash("g".repeat(40)),
            ),
            (
                format!("magnet:?xt=urn:btih:{}", "1".repeat(32)),
                MagnetError::BadInfoHash("1".repeat(32)),
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{}", "0".repeat(40)),
                MagnetError::TwoInfoHashes,
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&x.pe=127.0.0.1:0"),
                MagnetError::BadPeer("127.0.0.1:0".into()),
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&x.pe=127.0.0.1"),
                MagnetError::BadPeer("127.0.0.1".into()),
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&x.pe=a%20b:1"),
                MagnetError::BadPeer("a b:1".into()),
            ),
            (
                format!("magnet:?xt=urn:btih:{HEX}&dn=%FF"),
                MagnetError::BadEncoding("dn=%FF".into()),
            ),
        ];
        for (link, error) in cases {
            assert_eq!(Magnet::parse(&link), Err(error), "{link}");
        }
        let long = format!("magnet:?xt=urn:btih:{HEX}&dn={}", "a".repeat(MAX_LINK_LEN));
        assert_eq!(Magnet::parse(&long), Err(MagnetError::TooLong(long.len())));
    }

    #[test]
    fn lists_are_capped_and_repeats_dropped() {
        let mut link =
            format!("magnet:?xt=urn:btih:{HEX}&tr=http://a/announce&tr=http://a/announce");
        for i in 0..100 {
            link.push_str(&format!(
                "&tr=http://t{i}/announce&x.pe=127.0.0.{i}:1&x.pe=127.0.0.{i}:1"
            ));
        }
        let m = Magnet::parse(&link).unwrap();
        assert_eq!(m.trackers.len(), MAX_TRACKERS);
        assert_eq!(m.peers.len(), MAX_PEERS);
        assert_eq!(m.trackers[1][0], "http://t0/announce");
        assert_eq!(m.peers[1], "127.0.0.1:1");
    }

    #[test]
    fn our_own_links_read_back() {
        let torrent =
            crate::Metainfo::from_bytes(include_bytes!("../../torrents/seed-1g.torrent")).unwrap();
        let m = Magnet::parse(&torrent.magnet_link()).unwrap();
        assert_eq!(m.info_hash, torrent.info_hash);
        let tiers: Vec<Vec<String>> = torrent
            .tracker_tiers()
            .iter()
            .flatten()
            .map(|url| vec![url.clone()])
            .collect();
        assert_eq!(m.trackers, tiers);
        assert_eq!(m.name.as_deref(), Some(torrent.info.name.as_str()));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_keeps_its_bounds(text in "magnet:\\?[ -~]{0,300}") {
            if let Ok(m) = Magnet::parse(&text) {
                prop_assert!(m.trackers.len() <= MAX_TRACKERS && m.peers.len() <= MAX_PEERS);
                prop_assert!(m.trackers.iter().all(|t| t.len() == 1 && !t[0].is_empty()));
            }
        }

        #[test]
        fn any_hash_round_trips_in_hex(bytes in any::<[u8; 20]>()) {
            let hash = InfoHash(bytes);
            let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", hash.to_hex())).unwrap();
            prop_assert_eq!(m.info_hash, hash);
        }
    }
}
