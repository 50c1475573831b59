//! `ut_pex` (BEP 11): peers tell each other which peers they connected to
//! and dropped since their last message.
//!
//! Addresses travel in compact form: 6 bytes per IPv4 peer (`added`,
//! `dropped`), 18 per IPv6 peer (`added6`, `dropped6`), with one flag byte
//! per added peer (`added.f`, `added6.f`). A message is refused whole when
//! a list is not a whole number of entries or holds more than
//! [`MAX_RECEIVED_PER_LIST`]; entries with port 0 are skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{field, ExtensionError, MAX_EXTENDED_LEN};
use crate::bencode::{self, bytes_of, Writer};

/// Most entries in one list of a message we send (BEP 11 says 50).
pub const MAX_SENT_PER_LIST: usize = 50;
/// Most entries in one list of a message we accept. Generous beside what we
/// send, as some clients send more than 50; a message over it is refused.
pub const MAX_RECEIVED_PER_LIST: usize = 200;

/// Flag bits of an added peer.
pub mod flags {
    /// Prefers encryption.
    pub const ENCRYPTION: u8 = 0x01;
    /// Is a seed (or upload-only).
    pub const SEED: u8 = 0x02;
    /// Supports uTP.
    pub const UTP: u8 = 0x04;
    /// Supports ut_holepunch.
    pub const HOLEPUNCH: u8 = 0x08;
    /// Reachable: the sender connected to it (outgoing connection).
    pub const REACHABLE: u8 = 0x10;
}

/// One `ut_pex` message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PexMessage {
    /// Peers connected since the last message, with their flags.
    pub added: Vec<(SocketAddr, u8)>,
    /// Peers disconnected since the last message.
    pub dropped: Vec<SocketAddr>,
}

impl PexMessage {
    pub fn decode(body: &[u8]) -> Result<Self, ExtensionError> {
        if body.len() > MAX_EXTENDED_LEN {
            return Err(ExtensionError::TooLong(body.len()));
        }
        bencode::check(body)?;
        let spans = bencode::dict_value_spans(body)?;
        let list = |key: &'static str| -> Result<&[u8], ExtensionError> {
            match field(&spans, body, key.as_bytes()) {
                None => Ok(&[]),
                Some(value) => bytes_of(value).ok_or(ExtensionError::BadField(key)),
            }
        };
        let mut message = PexMessage::default();
        for (key, flag_key, width) in [("added", "added.f", 6), ("added6", "added6.f", 18)] {
            let entries = compact(list(key)?, key, width)?;
            // Flags are advisory: a flag list of the wrong length is ignored.
            let flag_bytes = list(flag_key).unwrap_or(&[]);
            let flag_bytes = if flag_bytes.len() == entries.len() {
                flag_bytes
            } else {
                &[]
            };
            for (i, addr) in entries.into_iter().enumerate() {
                if let Some(addr) = addr {
                    message
                        .added
                        .push((addr, flag_bytes.get(i).copied().unwrap_or(0)));
                }
            }
        }
        for (key, width) in [("dropped", 6), ("dropped6", 18)] {
            message
                .dropped
                .extend(compact(list(key)?, key, width)?.into_iter().flatten());
        }
        Ok(message)
    }

    /// The body of the extended message; at most [`MAX_SENT_PER_LIST`]
    /// entries of each list are written, the rest left for the next one.
    pub fn encode(&self) -> Vec<u8> {
        let v4 = |a: &&SocketAddr| a.is_ipv4();
        let v6 = |a: &&SocketAddr| a.is_ipv6();
        let added: Vec<(&SocketAddr, u8)> = self.added.iter().map(|(a, f)| (a, *f)).collect();
        let added4: Vec<_> = added
            .iter()
            .filter(|(a, _)| v4(a))
            .take(MAX_SENT_PER_LIST)
            .collect();
        let added6: Vec<_> = added
            .iter()
            .filter(|(a, _)| v6(a))
            .take(MAX_SENT_PER_LIST)
            .collect();
        let dropped4: Vec<_> = self
            .dropped
            .iter()
            .filter(v4)
            .take(MAX_SENT_PER_LIST)
            .collect();
        let dropped6: Vec<_> = self
            .dropped
            .iter()
            .filter(v6)
            .take(MAX_SENT_PER_LIST)
            .collect();
        let mut w = Writer::with_capacity(64 + 19 * (added4.len() + added6.len()));
        w.dict();
        w.bytes(b"added").bytes_with(6 * added4.len(), |b| {
            added4.iter().for_each(|(a, _)| put(b, a))
        });
        w.bytes(b"added.f")
            .bytes_with(added4.len(), |b| b.extend(added4.iter().map(|(_, f)| *f)));
        w.bytes(b"added6").bytes_with(18 * added6.len(), |b| {
            added6.iter().for_each(|(a, _)| put(b, a))
        });
        w.bytes(b"added6.f")
            .bytes_with(added6.len(), |b| b.extend(added6.iter().map(|(_, f)| *f)));
        w.bytes(b"dropped").bytes_with(6 * dropped4.len(), |b| {
            dropped4.iter().for_each(|a| put(b, a))
        });
        w.bytes(b"dropped6").bytes_with(18 * dropped6.len(), |b| {
            dropped6.iter().for_each(|a| put(b, a))
        });
        w.end();
        w.finish()
    }
}

/// Appends an address in compact form (4 or 16 address bytes, then the port).
fn put(buf: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => buf.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => buf.extend_from_slice(&ip.octets()),
    }
    buf.extend_from_slice(&addr.port().to_be_bytes());
}

/// Splits a compact list into addresses (`None` for port 0), refusing a list
/// that is not whole entries or is over the limit.
fn compact(
    bytes: &[u8],
    key: &'static str,
    width: usize,
) -> Result<Vec<Option<SocketAddr>>, ExtensionError> {
    if !bytes.len().is_multiple_of(width) {
        return Err(ExtensionError::BadField(key));
    }
    let count = bytes.len() / width;
    if count > MAX_RECEIVED_PER_LIST {
        return Err(ExtensionError::TooMany {
            field: key,
            count,
            limit: MAX_RECEIVED_PER_LIST,
        });
    }
    Ok(bytes
        .chunks_exact(width)
        .map(|entry| {
            let (ip, port) = entry.split_at(width - 2);
            let port = u16::from_be_bytes([port[0], port[1]]);
            let ip = match <[u8; 4]>::try_from(ip) {
                Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
                Err(_) => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?)),
            };
            (port != 0).then_some(SocketAddr::new(ip, port))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_message_round_trips_with_flags_and_both_families() {
        let message = PexMessage {
            added: vec![
                (addr("127.0.0.2:6881"), flags::SEED | flags::REACHABLE),
                (addr("[::1]:51413"), flags::ENCRYPTION),
                (addr("127.1.2.3:1"), 0),
            ],
            dropped: vec![addr("127.0.0.9:9"), addr("[::1]:2")],
        };
        let encoded = message.encode();
        bencode::check(&encoded).unwrap();
        assert!(encoded.starts_with(
            b"d5:added12:\x7f\x00\x00\x02\x1a\xe1\x7f\x01\x02\x03\x00\x017:added.f2:\x12\x00"
        ));
        let decoded = PexMessage::decode(&encoded).unwrap();
        // IPv4 entries come first, then IPv6, each in the order given.
        assert_eq!(
            decoded.added,
            vec![message.added[0], message.added[2], message.added[1]]
        );
        assert_eq!(decoded.dropped, message.dropped);
    }

    #[test]
    fn at_most_50_of_each_list_are_sent() {
        let message = PexMessage {
            added: (0..120u16)
                .map(|i| (SocketAddr::new([127, 0, 1, i as u8].into(), 1000 + i), 0))
                .collect(),
            dropped: (0..80u16)
                .map(|i| SocketAddr::new([127, 0, 2, i as u8].into(), 1000 + i))
                .collect(),
        };
        let decoded = PexMessage::decode(&message.encode()).unwrap();
        assert_eq!(decoded.added.len(), MAX_SENT_PER_LIST);
        assert_eq!(decoded.dropped.len(), MAX_SENT_PER_LIST);
        assert_eq!(decoded.added[..], message.added[..MAX_SENT_PER_LIST]);
    }

    #[test]
    fn ragged_oversized_and_mistyped_lists_are_refused() {
        assert_eq!(
            PexMessage::decode(b"d5:added5:abcdee"),
            Err(ExtensionError::BadField("added"))
        );
        assert_eq!(
            PexMessage::decode(b"d7:droppedi3ee"),
            Err(ExtensionError::BadField("dropped"))
        );
        let many = [b"d5:added1206:".to_vec(), vec![1u8; 1206], b"e".to_vec()].concat();
        assert_eq!(
            PexMessage::decode(&many),
            Err(ExtensionError::TooMany {
                field: "added",
                count: 201,
                limit: MAX_RECEIVED_PER_LIST
            })
        );
        let ten_thousand = [b"d5:added60000:".to_vec(), vec![1u8; 60000], b"e".to_vec()].concat();
        assert_eq!(
            PexMessage::decode(&ten_thousand),
            Err(ExtensionError::TooLong(ten_thousand.len()))
        );
        assert!(PexMessage::decode(b"d5:added").is_err());
    }

    #[test]
    fn port_zero_entries_are_skipped_and_bad_flags_ignored() {
        let body = b"d5:added12:\x7f\x00\x00\x01\x00\x00\x7f\x00\x00\x02\x00\x077:added.f1:\x02e";
        let decoded = PexMessage::decode(body).unwrap();
        assert_eq!(decoded.added, vec![(addr("127.0.0.2:7"), 0)]);
        assert_eq!(PexMessage::decode(b"de").unwrap(), PexMessage::default());
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_what_decodes_round_trips(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(message) = PexMessage::decode(&body) {
                prop_assert!(message.added.len() <= 2 * MAX_RECEIVED_PER_LIST);
                prop_assert!(message.added.iter().all(|(a, _)| a.port() != 0));
                let small = message.added.len() <= MAX_SENT_PER_LIST && message.dropped.len() <= MAX_SENT_PER_LIST;
                if small {
                    let again = PexMessage::decode(&message.encode()).unwrap();
                    prop_assert_eq!(again.added.len(), message.added.len());
                    prop_assert_eq!(again.dropped.len(), message.dropped.len());
                }
            }
        }

        #[test]
        fn any_list_of_v4_peers_round_trips(peers in proptest::collection::vec((any::<[u8; 4]>(), 1u16.., any::<u8>()), 0..50)) {
            let message = PexMessage {
                added: peers.iter().map(|&(ip, port, f)| (SocketAddr::new(ip.into(), port), f)).collect(),
                dropped: peers.iter().map(|&(ip, port, _)| SocketAddr::new(ip.into(), port)).collect(),
            };
            prop_assert_eq!(PexMessage::decode(&message.encode()).unwrap(), message);
        }
    }
}
