//! The extension handshake (BEP 10): the dictionary each side sends as
//! extended message 0, saying which extensions it speaks under which ids,
//! and a few facts about itself.
//!
//! Decoding is lenient per field, as real clients need (a field of the wrong
//! type is ignored, not fatal), and strict in size: the body is bounded by
//! the codec, the dictionary checked before any field is read, and `m` keeps
//! at most [`MAX_NAMED_EXTENSIONS`] names of at most [`MAX_NAME_LEN`] bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{field, ExtensionError, MAX_EXTENDED_LEN};
use crate::bencode::{self, bytes_of, int_of, Writer};

/// The name `ut_metadata` (BEP 9) goes by in `m`.
pub const UT_METADATA: &str = "ut_metadata";
/// The name `ut_pex` (BEP 11) goes by in `m`.
pub const UT_PEX: &str = "ut_pex";

/// Most entries of `m` kept; the rest are ignored.
pub const MAX_NAMED_EXTENSIONS: usize = 64;
/// Longest extension name kept.
pub const MAX_NAME_LEN: usize = 64;
/// Longest client name (`v`) kept, in bytes.
pub const MAX_CLIENT_LEN: usize = 128;

/// One side's extension handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtHandshake {
    /// `m`: extension name and the id the sender wants to receive it under;
    /// id 0 means the sender turns that extension off.
    pub extensions: Vec<(String, u8)>,
    /// `v`: the client's name and version.
    pub client: Option<String>,
    /// `p`: the sender's listening port (useful when it dialled us).
    pub listen_port: Option<u16>,
    /// `reqq`: how many outstanding requests the sender queues.
    pub reqq: Option<u32>,
    /// `metadata_size` (BEP 9): the info dictionary's size in bytes, as the
    /// sender states it. The caller compares it with its own limit.
    pub metadata_size: Option<u64>,
    /// `yourip`: our address as the sender sees it.
    pub your_ip: Option<IpAddr>,
}

impl ExtHandshake {
    /// The id the sender assigned to `name`, if it speaks it (not 0).
    pub fn id_of(&self, name: &str) -> Option<u8> {
        self.extensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, id)| id)
            .filter(|&id| id != 0)
    }

    /// Parses the body of extended message 0.
    pub fn decode(body: &[u8]) -> Result<Self, ExtensionError> {
        if body.len() > MAX_EXTENDED_LEN {
            return Err(ExtensionError::TooLong(body.len()));
        }
        bencode::check(body)?;
        let spans = bencode::dict_value_spans(body)?;
        let get = |key: &[u8]| field(&spans, body, key);
        let mut handshake = ExtHandshake::default();
        if let Some(m) = get(b"m") {
            // A checked dictionary value is itself a checked value.
            if let Ok(entries) = bencode::dict_value_spans(m) {
                for (name, range) in entries {
                    if handshake.extensions.len() == MAX_NAMED_EXTENSIONS {
                        break;
                    }
                    let id = int_of(&m[range]).and_then(|id| u8::try_from(id).ok());
                    let name = std::str::from_utf8(name)
                        .ok()
                        .filter(|n| !n.is_empty() && n.len() <= MAX_NAME_LEN);
                    if let (Some(name), Some(id)) = (name, id) {
                        handshake.extensions.push((name.to_owned(), id));
                    }
                }
            }
        }
        handshake.client = get(b"v").and_then(bytes_of).map(|v| {
            let v = &v[..v.len().min(MAX_CLIENT_LEN)];
            String::from_utf8_lossy(v).into_owned()
        });
        handshake.listen_port = get(b"p")
            .and_then(int_of)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0);
        handshake.reqq = get(b"reqq")
            .and_then(int_of)
            .and_then(|r| u32::try_from(r).ok());
        handshake.metadata_size = match get(b"metadata_size") {
            None => None,
            Some(value) => Some(
                int_of(value)
                    .and_then(|s| u64::try_from(s).ok())
                    .ok_or(ExtensionError::BadField("metadata_size"))?,
            ),
        };
        handshake.your_ip = get(b"yourip").and_then(bytes_of).and_then(|ip| {
            if let Ok(v4) = <[u8; 4]>::try_from(ip) {
                Some(IpAddr::V4(Ipv4Addr::from(v4)))
            } else if let Ok(v6) = <[u8; 16]>::try_from(ip) {
                Some(IpAddr::V6(Ipv6Addr::from(v6)))
            } else {
                None
            }
        });
        Ok(handshake)
    }

    /// The bencoded body of extended message 0, keys in sorted order.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128);
        w.dict();
        w.bytes(b"m").dict();
        let mut names: Vec<_> = self.extensions.iter().collect();
        names.sort();
        for (name, id) in names {
            w.bytes(name.as_bytes()).int(i64::from(*id));
        }
        w.end();
        if let Some(size) = self.metadata_size {
            w.bytes(b"metadata_size").int(size as i64);
        }
        if let Some(port) = self.listen_port {
            w.bytes(b"p").int(i64::from(port));
        }
        if let Some(reqq) = self.reqq {
            w.bytes(b"reqq").int(i64::from(reqq));
        }
        if let Some(client) = &self.client {
            w.bytes(b"v").bytes(client.as_bytes());
        }
        match self.your_ip {
            Some(IpAddr::V4(ip)) => {
                w.bytes(b"yourip").bytes(&ip.octets());
            }
            Some(IpAddr::V6(ip)) => {
                w.bytes(b"yourip").bytes(&ip.octets());
            }
            None => {}
        }
        w.end();
        w.finish()
    }
}

/// The ids in force on one connection: what we told the peer to use for each
/// extension (to read its messages) and what it told us (to send ours).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtensionIds {
    /// Ids the peer assigned: send our `ut_metadata` messages with this id.
    pub their_metadata: Option<u8>,
    /// Ids the peer assigned: send our `ut_pex` messages with this id.
    pub their_pex: Option<u8>,
    /// Ids the peer assigned: send our `ledbat_delay` messages with this id.
    pub their_delay: Option<u8>,
}

impl ExtensionIds {
    /// The ids we assign to incoming messages, in the handshake we send.
    pub const OUR_METADATA: u8 = 1;
    pub const OUR_PEX: u8 = 2;
    pub const OUR_DELAY: u8 = 3;

    /// Takes the peer's handshake (a later one replaces an earlier one, as
    /// BEP 10 allows).
    pub fn from_theirs(theirs: &ExtHandshake) -> Self {
        ExtensionIds {
            their_metadata: theirs.id_of(UT_METADATA),
            their_pex: theirs.id_of(UT_PEX),
            their_delay: theirs.id_of(super::delay::LEDBAT_DELAY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours() -> ExtHandshake {
        ExtHandshake {
            extensions: vec![
                (UT_METADATA.into(), ExtensionIds::OUR_METADATA),
                (UT_PEX.into(), ExtensionIds::OUR_PEX),
            ],
            client: Some("peer 0.1.0".into()),
            listen_port: Some(6881),
            reqq: Some(1024),
            metadata_size: Some(31_235),
            your_ip: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
        }
    }

    #[test]
    fn a_handshake_round_trips_and_is_canonical_bencode() {
        let encoded = ours().encode();
        bencode::check(&encoded).unwrap();
        assert_eq!(
            &encoded[..],
            &b"d1:md11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei31235e1:pi6881e4:reqqi1024e1:v10:peer 0.1.06:yourip4:\x7f\x00\x00\x02e"[..]
        );
        assert_eq!(ExtHandshake::decode(&encoded).unwrap(), ours());
    }

    #[test]
    fn libtorrents_handshake_is_read() {
        // As python3-libtorrent 2.0 sends it (fields it adds that we do not
        // read are skipped).
        let body = b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei1234e1:pi6881e4:reqqi500e11:upload_onlyi0e1:v18:libtorrent/2.0.8.06:yourip4:\x7f\x00\x00\x01e";
        let h = ExtHandshake::decode(body).unwrap();
        assert_eq!(h.id_of(UT_METADATA), Some(2));
        assert_eq!(h.id_of(UT_PEX), Some(1));
        assert_eq!(h.metadata_size, Some(1234));
        assert_eq!(h.reqq, Some(500));
        assert_eq!(h.listen_port, Some(6881));
        assert_eq!(h.client.as_deref(), Some("libtorrent/2.0.8.0"));
        assert_eq!(h.your_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let ids = ExtensionIds::from_theirs(&h);
        assert_eq!((ids.their_metadata, ids.their_pex), (Some(2), Some(1)));
    }

    #[test]
    fn id_zero_turns_an_extension_off_and_odd_fields_are_ignored() {
        let body = b"d1:md11:ut_metadatai0e6:ut_pexi300e3:fooi-1ee1:p3:abc4:reqqi-5e1:vi3ee";
        let h = ExtHandshake::decode(body).unwrap();
        assert_eq!(h.id_of(UT_METADATA), None, "id 0 disables");
        assert_eq!(h.id_of(UT_PEX), None, "an id over 255 is no id");
        assert_eq!(h.extensions, vec![(UT_METADATA.to_owned(), 0)]);
        assert_eq!((h.listen_port, h.reqq, h.client), (None, None, None));
    }

    #[test]
    fn malformed_handshakes_are_errors() {
        for body in [
            &b""[..],
            b"le",
            b"d1:mi1ee", // `m` not a dict is ignored, but...
            b"d13:metadata_sizei-1ee",
            b"d13:metadata_size3:abce",
            b"d1:md11:ut_metadatai1e",
            b"d1:pi1e1:pi2ee",
        ] {
            let result = ExtHandshake::decode(body);
            if body == b"d1:mi1ee" {
                assert_eq!(result.unwrap().extensions, vec![]);
            } else {
                assert!(
                    result.is_err(),
                    "{:?} decoded",
                    String::from_utf8_lossy(body)
                );
            }
        }
        let nested = [b"d1:m".to_vec(), vec![b'l'; 100], vec![b'e'; 101]].concat();
        assert!(matches!(
            ExtHandshake::decode(&nested),
            Err(ExtensionError::Bencode(_))
        ));
        let long = [
            b"d1:v".to_vec(),
            format!("{}:", MAX_EXTENDED_LEN).into_bytes(),
            vec![b'a'; MAX_EXTENDED_LEN],
            b"e".to_vec(),
        ]
        .concat();
        assert_eq!(
            ExtHandshake::decode(&long),
            Err(ExtensionError::TooLong(long.len()))
        );
    }

    #[test]
    fn at_most_64_names_are_kept() {
        let mut w = Writer::with_capacity(4096);
        w.dict().bytes(b"m").dict();
        let mut names: Vec<String> = (0..200).map(|i| format!("x{i:03}")).collect();
        names.sort();
        for name in &names {
            w.bytes(name.as_bytes()).int(1);
        }
        w.end().end();
        let h = ExtHandshake::decode(&w.finish()).unwrap();
        assert_eq!(h.extensions.len(), MAX_NAMED_EXTENSIONS);
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_what_decodes_round_trips(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(h) = ExtHandshake::decode(&body) {
                prop_assert!(bencode::check(&body).is_ok());
                // Re-encoding keeps every field we read.
                let again = ExtHandshake::decode(&h.encode()).unwrap();
                prop_assert_eq!(again.metadata_size, h.metadata_size);
                prop_assert_eq!(again.reqq, h.reqq);
                prop_assert_eq!(again.listen_port, h.listen_port);
                prop_assert_eq!(again.your_ip, h.your_ip);
            }
        }

        #[test]
        fn any_handshake_we_build_round_trips(
            size in proptest::option::of(0u64..(1 << 40)),
            port in proptest::option::of(1u16..),
            reqq in proptest::option::of(any::<u32>()),
            ids in proptest::collection::btree_map("[a-z_]{1,20}", any::<u8>(), 0..10),
        ) {
            let h = ExtHandshake {
                extensions: ids.into_iter().collect(),
                client: Some("c".into()),
                listen_port: port,
                reqq,
                metadata_size: size,
                your_ip: None,
            };
            prop_assert_eq!(ExtHandshake::decode(&h.encode()).unwrap(), h);
        }
    }
}
