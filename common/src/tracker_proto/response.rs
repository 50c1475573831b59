//! Tracker responses, both ways: announce (BEP 3, compact peers of BEP 23,
//! `peers6` of BEP 7), scrape (BEP 48) and the `failure reason` reply.
//!
//! Encoding writes keys in sorted order with [`Writer`]; decoding goes
//! through [`bencode::decode`], so a hostile tracker reply is bounded like
//! any other input, and a compact list whose length is not a multiple of the
//! entry size is an error, never a partial read.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde_bencode::value::Value;
use thiserror::Error;

use crate::bencode::{self, BencodeError, Writer};
use crate::types::{InfoHash, PeerId};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResponseError {
    /// The tracker refused the request and said why.
    #[error("tracker says: {0}")]
    Failure(String),
    #[error("tracker reply is not bencode: {0}")]
    Bencode(#[from] BencodeError),
    #[error("tracker reply: `{0}` is missing or of the wrong type")]
    BadField(&'static str),
    #[error("tracker reply: compact `{field}` is {len} bytes, not a multiple of {entry}")]
    BadCompactLength {
        field: &'static str,
        len: usize,
        entry: usize,
    },
}

/// A peer in an announce reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerEntry {
    pub addr: SocketAddr,
    /// Only in dictionary-model replies, unless `no_peer_id` was asked.
    pub peer_id: Option<PeerId>,
}

/// The reply to an announce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    pub interval: u32,
    pub min_interval: Option<u32>,
    /// Seeders.
    pub complete: u32,
    /// Leechers.
    pub incomplete: u32,
    pub peers: Vec<PeerEntry>,
    pub warning: Option<String>,
}

/// Swarm counters in a scrape reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    pub complete: u32,
    pub downloaded: u32,
    pub incomplete: u32,
}

/// The reply to any refused request: `d14:failure reason<len>:<reason>e`.
pub fn encode_failure(reason: &str) -> Vec<u8> {
    let mut w = Writer::with_capacity(reason.len() + 24);
    w.dict()
        .bytes(b"failure reason")
        .bytes(reason.as_bytes())
        .end();
    w.finish()
}

impl AnnounceResponse {
    /// Encodes the reply: compact (`peers` for IPv4, `peers6` for IPv6) or
    /// a list of dictionaries (with `peer id` unless `no_peer_id`).
    pub fn encode(&self, compact: bool, no_peer_id: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(96 + self.peers.len() * if compact { 6 } else { 64 });
        self.encode_into(&mut out, compact, no_peer_id);
        out
    }

    /// [`AnnounceResponse::encode`], appended to `out`: a server reuses one
    /// buffer, and the compact lists are written in place, so a reply costs
    /// no allocation once `out` has grown.
    pub fn encode_into(&self, out: &mut Vec<u8>, compact: bool, no_peer_id: bool) {
        let mut w = Writer::appending(std::mem::take(out));
        w.dict();
        w.bytes(b"complete").int(self.complete.into());
        w.bytes(b"incomplete").int(self.incomplete.into());
        w.bytes(b"interval").int(self.interval.into());
        if let Some(min) = self.min_interval {
            w.bytes(b"min interval").int(min.into());
        }
        if compact {
            let v4 = self.peers.iter().filter(|p| p.addr.is_ipv4()).count();
            let v6 = self.peers.len() - v4;
            w.bytes(b"peers").bytes_with(v4 * 6, |buf| {
                for peer in self.peers.iter().filter(|p| p.addr.is_ipv4()) {
                    push_compact(buf, peer.addr);
                }
            });
            if v6 > 0 {
                w.bytes(b"peers6").bytes_with(v6 * 18, |buf| {
                    for peer in self.peers.iter().filter(|p| p.addr.is_ipv6()) {
                        push_compact(buf, peer.addr);
                    }
                });
            }
        } else {
            w.bytes(b"peers").list();
            for peer in &self.peers {
                w.dict()
                    .bytes(b"ip")
                    .bytes(peer.addr.ip().to_string().as_bytes());
                if let (Some(id), false) = (peer.peer_id, no_peer_id) {
                    w.bytes(b"peer id").bytes(&id.0);
                }
                w.bytes(b"port").int(peer.addr.port().into()).end();
            }
            w.end();
        }
        if let Some(warning) = &self.warning {
            w.bytes(b"warning message").bytes(warning.as_bytes());
        }
        w.end();
        *out = w.finish();
    }

    /// Decodes a tracker's reply, compact or not; `failure reason` becomes
    /// [`ResponseError::Failure`]. Peers with unparsable addresses are skipped.
    pub fn decode(bytes: &[u8]) -> Result<Self, ResponseError> {
        let Value::Dict(mut dict) = bencode::decode::<Value>(bytes)? else {
            return Err(ResponseError::BadField("(root)"));
        };
        if let Some(reason) = dict.remove(&b"failure reason"[..]) {
            return Err(ResponseError::Failure(text(reason).unwrap_or_default()));
        }
        let mut int = |key: &'static str| match dict.remove(key.as_bytes()) {
            None => Ok(None),
            Some(Value::Int(n)) => Ok(Some(n.clamp(0, u32::MAX.into()) as u32)),
            Some(_) => Err(ResponseError::BadField(key)),
        };
        let interval = int("interval")?.ok_or(ResponseError::BadField("interval"))?;
        let min_interval = int("min interval")?;
        let complete = int("complete")?.unwrap_or(0);
        let incomplete = int("incomplete")?.unwrap_or(0);
        let mut peers = Vec::new();
        match dict.remove(&b"peers"[..]) {
            None => {}
            Some(Value::Bytes(compact)) => peers.extend(decode_compact(&compact, false)?),
            Some(Value::List(list)) => peers.extend(list.into_iter().filter_map(dictionary_peer)),
            Some(_) => return Err(ResponseError::BadField("peers")),
        }
        match dict.remove(&b"peers6"[..]) {
            None => {}
            Some(Value::Bytes(compact)) => peers.extend(decode_compact(&compact, true)?),
            Some(_) => return Err(ResponseError::BadField("peers6")),
        }
        let warning = dict.remove(&b"warning message"[..]).and_then(text);
        Ok(AnnounceResponse {
            interval,
            min_interval,
            complete,
            incomplete,
            peers,
            warning,
        })
    }
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    }
}

fn dictionary_peer(value: Value) -> Option<PeerEntry> {
    let Value::Dict(mut dict) = value else {
        return None;
    };
    let ip: IpAddr = text(dict.remove(&b"ip"[..])?)?.parse().ok()?;
    let port = match dict.remove(&b"port"[..])? {
        Value::Int(p) => u16::try_from(p).ok().filter(|&p| p != 0)?,
        _ => return None,
    };
    let peer_id = match dict.remove(&b"peer id"[..]) {
        Some(Value::Bytes(id)) => PeerId::from_slice(&id),
        _ => None,
    };
    Some(PeerEntry {
        addr: SocketAddr::new(ip, port),
        peer_id,
    })
}

/// One compact entry (6 bytes for IPv4, 18 for IPv6): the address's octets,
/// then the port, big-endian.
fn push_compact(buf: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => buf.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => buf.extend_from_slice(&ip.octets()),
    }
    buf.extend_from_slice(&addr.port().to_be_bytes());
}

/// Decodes a compact list of IPv4 (`v6` false) or IPv6 peers. An entry with
/// port 0 cannot be connected to and is skipped, as in dictionary replies.
pub fn decode_compact(bytes: &[u8], v6: bool) -> Result<Vec<PeerEntry>, ResponseError> {
    let (entry, field) = if v6 { (18, "peers6") } else { (6, "peers") };
    if !bytes.len().is_multiple_of(entry) {
        return Err(ResponseError::BadCompactLength {
            field,
            len: bytes.len(),
            entry,
        });
    }
    Ok(bytes
        .chunks_exact(entry)
        .filter_map(|chunk| {
            let (ip, port) = chunk.split_at(entry - 2);
            let port = u16::from_be_bytes([port[0], port[1]]);
            if port == 0 {
                return None;
            }
            let ip = match <[u8; 16]>::try_from(ip) {
                Ok(octets) => IpAddr::V6(Ipv6Addr::from(octets)),
                Err(_) => IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
            };
            Some(PeerEntry {
                addr: SocketAddr::new(ip, port),
                peer_id: None,
            })
        })
        .collect())
}

/// Encodes a scrape reply; `files` need not be sorted.
pub fn encode_scrape(files: &mut [(InfoHash, ScrapeStats)]) -> Vec<u8> {
    files.sort_unstable_by_key(|(hash, _)| *hash);
    let mut w = Writer::with_capacity(16 + files.len() * 80);
    w.dict().bytes(b"files").dict();
    for (hash, stats) in files.iter() {
        w.bytes(&hash.0).dict();
        w.bytes(b"complete").int(stats.complete.into());
        w.bytes(b"downloaded").int(stats.downloaded.into());
        w.bytes(b"incomplete").int(stats.incomplete.into());
        w.end();
    }
    w.end().end();
    w.finish()
}

/// Decodes a scrape reply into (info-hash, counters), skipping malformed entries.
pub fn decode_scrape(bytes: &[u8]) -> Result<Vec<(InfoHash, ScrapeStats)>, ResponseError> {
    let Value::Dict(mut dict) = bencode::decode::<Value>(bytes)? else {
        return Err(ResponseError::BadField("(root)"));
    };
    if let Some(reason) = dict.remove(&b"failure reason"[..]) {
        return Err(ResponseError::Failure(text(reason).unwrap_or_default()));
    }
    let Some(Value::Dict(files)) = dict.remove(&b"files"[..]) else {
        return Err(ResponseError::BadField("files"));
    };
    let count = |d: &std::collections::HashMap<Vec<u8>, Value>, key: &[u8]| match d.get(key) {
        Some(Value::Int(n)) => (*n).clamp(0, u32::MAX.into()) as u32,
        _ => 0,
    };
    let mut out: Vec<(InfoHash, ScrapeStats)> = files
        .into_iter()
        .filter_map(|(hash, stats)| {
            let Value::Dict(d) = stats else { return None };
            let stats = ScrapeStats {
                complete: count(&d, b"complete"),
                downloaded: count(&d, b"downloaded"),
                incomplete: count(&d, b"incomplete"),
            };
            Some((InfoHash::from_slice(&hash)?, stats))
        })
        .collect();
    out.sort_unstable_by_key(|(hash, _)| *hash);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(peers: Vec<PeerEntry>) -> AnnounceResponse {
        AnnounceResponse {
            interval: 120,
            min_interval: Some(60),
            complete: 3,
            incomplete: 4,
            peers,
            warning: None,
        }
    }

    fn peer(addr: &str, id: u8) -> PeerEntry {
        PeerEntry {
            addr: addr.parse().unwrap(),
            peer_id: Some(PeerId([id; 20])),
        }
    }

    #[test]
    fn encode_into_appends_what_encode_returns() {
        let response = sample(vec![peer("10.0.0.1:6881", 1), peer("[::1]:51413", 2)]);
        for (compact, no_peer_id) in [(true, false), (false, false), (false, true)] {
            let mut out = b"HTTP head".to_vec();
            response.encode_into(&mut out, compact, no_peer_id);
            assert_eq!(&out[..9], b"HTTP head");
            assert_eq!(out[9..], response.encode(compact, no_peer_id));
        }
    }

    #[test]
    fn compact_reply_round_trips_with_v4_and_v6() {
        let response = sample(vec![
            peer("10.0.0.1:6881", 1),
            peer("[::1]:51413", 2),
            peer("127.0.0.1:1", 3),
        ]);
        let bytes = response.encode(true, false);
        bencode::check(&bytes).unwrap();
        let decoded = AnnounceResponse::decode(&bytes).unwrap();
        let addrs: Vec<_> = decoded.peers.iter().map(|p| p.addr.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:6881", "127.0.0.1:1", "[::1]:51413"]);
        assert!(decoded.peers.iter().all(|p| p.peer_id.is_none()));
        assert_eq!(
            decoded,
            AnnounceResponse {
                peers: decoded.peers.clone(),
                ..response
            }
        );
    }

    #[test]
    fn dictionary_reply_carries_peer_ids_unless_asked_not_to() {
        let response = sample(vec![peer("10.0.0.1:6881", 7)]);
        assert_eq!(
            AnnounceResponse::decode(&response.encode(false, false)).unwrap(),
            response
        );
        let without = AnnounceResponse::decode(&response.encode(false, true)).unwrap();
        assert_eq!(without.peers[0].peer_id, None);
    }

    #[test]
    fn failure_and_malformed_replies_are_errors() {
        assert_eq!(
            AnnounceResponse::decode(&encode_failure("go away")),
            Err(ResponseError::Failure("go away".into()))
        );
        assert_eq!(
            AnnounceResponse::decode(b"d8:intervali5e5:peers5:abcdee"),
            Err(ResponseError::BadCompactLength {
                field: "peers",
                len: 5,
                entry: 6
            })
        );
        assert_eq!(
            AnnounceResponse::decode(b"d5:peers0:e"),
            Err(ResponseError::BadField("interval"))
        );
        assert!(matches!(
            AnnounceResponse::decode(b"<html>"),
            Err(ResponseError::Bencode(_))
        ));
    }

    #[test]
    fn scrape_round_trips_sorted() {
        let mut files = vec![
            (
                InfoHash([9; 20]),
                ScrapeStats {
                    complete: 1,
                    downloaded: 2,
                    incomplete: 3,
                },
            ),
            (InfoHash([1; 20]), ScrapeStats::default()),
        ];
        let bytes = encode_scrape(&mut files);
        bencode::check(&bytes).unwrap();
        assert_eq!(decode_scrape(&bytes).unwrap(), files);
    }

    proptest! {
        #[test]
        fn any_reply_round_trips(
            peers in proptest::collection::vec((any::<[u8; 4]>(), 1u16.., any::<[u8; 20]>()), 0..20),
            interval in any::<u32>(), complete in any::<u32>(), incomplete in any::<u32>(), compact in any::<bool>(),
        ) {
            let peers: Vec<PeerEntry> = peers.into_iter().map(|(ip, port, id)| PeerEntry {
                addr: SocketAddr::new(IpAddr::V4(ip.into()), port), peer_id: (!compact).then_some(PeerId(id)),
            }).collect();
            let response = AnnounceResponse { interval, min_interval: None, complete, incomplete, peers, warning: Some("w".into()) };
            prop_assert_eq!(AnnounceResponse::decode(&response.encode(compact, false)).unwrap(), response);
        }

        #[test]
        fn arbitrary_replies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let announce = AnnounceResponse::decode(&bytes);
            let scrape = decode_scrape(&bytes);
            // Only a well-formed dictionary is ever accepted.
            if announce.is_ok() || scrape.is_ok() {
                prop_assert!(bencode::check(&bytes).is_ok() && bytes[0] == b'd');
            }
            // A reply must say its interval.
            if !bytes.windows(10).any(|w| w == b"8:interval") {
                prop_assert!(announce.is_err());
            }
        }

        #[test]
        fn a_cut_reply_is_refused(
            peers in proptest::collection::vec((any::<[u8; 4]>(), 1u16..), 0..8),
            interval in any::<u32>(), at in any::<prop::sample::Index>(),
        ) {
            let peers = peers.into_iter().map(|(ip, port)| PeerEntry {
                addr: SocketAddr::new(IpAddr::V4(ip.into()), port), peer_id: None,
            }).collect();
            let response = AnnounceResponse { interval, min_interval: None, complete: 0, incomplete: 0, peers, warning: None };
            let bytes = response.encode(true, false);
            let cut = at.index(bytes.len());
            prop_assert!(AnnounceResponse::decode(&bytes[..cut]).is_err());
            prop_assert_eq!(AnnounceResponse::decode(&bytes).unwrap(), response);
            // Without its interval, the same reply is refused.
            let key = bytes.windows(10).position(|w| w == b"8:interval").unwrap();
            let mut unnamed = bytes.clone();
            unnamed[key + 9] = b'X';
            prop_assert_eq!(AnnounceResponse::decode(&unnamed), Err(ResponseError::BadField("interval")));
        }
    }
}
