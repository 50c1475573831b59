//! `ut_metadata` (BEP 9): the info dictionary fetched from peers in 16 KiB
//! pieces, and the arithmetic of those pieces.
//!
//! A message is a bencoded dictionary (`msg_type`, `piece`, and for data
//! `total_size`); a data message carries the piece's bytes right after the
//! dictionary. [`MetadataGeometry`] owns every size of the metadata: how
//! many pieces, how long each is; nothing else recomputes them.

use bytes::Bytes;

use super::{field, ExtensionError, MAX_EXTENDED_LEN};
use crate::bencode::{self, int_of, Writer};

/// Every metadata piece but the last is this long.
pub const PIECE_LEN: usize = 16 * 1024;

/// Largest info dictionary accepted from peers: 32 MiB (rqbit's limit;
/// libtorrent's is 30 MiB, anacrolix's 16 MiB). That is about 1.6 million
/// piece hashes, far more than any torrent people share; a larger stated
/// `metadata_size` is refused before anything is allocated.
pub const MAX_METADATA_SIZE: u64 = 32 << 20;

/// The sizes of one torrent's metadata, once a peer has stated its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataGeometry {
    size: u32,
}

impl MetadataGeometry {
    /// `None` for 0 bytes or more than [`MAX_METADATA_SIZE`].
    pub fn new(size: u64) -> Option<Self> {
        (size > 0 && size <= MAX_METADATA_SIZE).then_some(MetadataGeometry { size: size as u32 })
    }

    pub fn size(&self) -> usize {
        self.size as usize
    }

    pub fn piece_count(&self) -> u32 {
        self.size.div_ceil(PIECE_LEN as u32)
    }

    /// Length of piece `piece`, `None` if there is no such piece.
    pub fn piece_len(&self, piece: u32) -> Option<usize> {
        (piece < self.piece_count())
            .then(|| (self.size() - piece as usize * PIECE_LEN).min(PIECE_LEN))
    }

    /// Where piece `piece` starts in the whole dictionary.
    pub fn offset(&self, piece: u32) -> Option<usize> {
        self.piece_len(piece).map(|_| piece as usize * PIECE_LEN)
    }
}

/// One `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMessage {
    /// `msg_type` 0: send me piece `piece`.
    Request { piece: u32 },
    /// `msg_type` 1: piece `piece` of a dictionary of `total_size` bytes.
    Data {
        piece: u32,
        total_size: u64,
        data: Bytes,
    },
    /// `msg_type` 2: I will not send piece `piece`.
    Reject { piece: u32 },
}

impl MetadataMessage {
    pub fn piece(&self) -> u32 {
        match self {
            MetadataMessage::Request { piece }
            | MetadataMessage::Data { piece, .. }
            | MetadataMessage::Reject { piece } => *piece,
        }
    }

    /// Parses the body of an extended message sent under our `ut_metadata`
    /// id. Sizes are checked against the stated `total_size` by the caller,
    /// which knows what the peer said in its handshake.
    pub fn decode(body: &[u8]) -> Result<Self, ExtensionError> {
        if body.len() > MAX_EXTENDED_LEN {
            return Err(ExtensionError::TooLong(body.len()));
        }
        let dict_len = bencode::value_len(body)?;
        let (dict, rest) = body.split_at(dict_len);
        let spans = bencode::dict_value_spans(dict)?;
        let int = |key: &'static str| {
            field(&spans, dict, key.as_bytes())
                .and_then(int_of)
                .ok_or(ExtensionError::BadField(key))
        };
        let piece = u32::try_from(int("piece")?).map_err(|_| ExtensionError::BadField("piece"))?;
        let message = match int("msg_type")? {
            0 => MetadataMessage::Request { piece },
            1 => {
                let total_size = u64::try_from(int("total_size")?)
                    .map_err(|_| ExtensionError::BadField("total_size"))?;
                return Ok(MetadataMessage::Data {
                    piece,
                    total_size,
                    data: Bytes::copy_from_slice(rest),
                });
            }
            2 => MetadataMessage::Reject { piece },
            _ => return Err(ExtensionError::BadField("msg_type")),
        };
        if !rest.is_empty() {
            return Err(ExtensionError::TrailingData(rest.len()));
        }
        Ok(message)
    }

    /// The body of the extended message (the caller puts the id in front).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(64);
        w.dict();
        let (msg_type, piece) = match self {
            MetadataMessage::Request { piece } => (0, piece),
            MetadataMessage::Data { piece, .. } => (1, piece),
            MetadataMessage::Reject { piece } => (2, piece),
        };
        w.bytes(b"msg_type").int(msg_type);
        w.bytes(b"piece").int(i64::from(*piece));
        if let MetadataMessage::Data { total_size, .. } = self {
            w.bytes(b"total_size").int(*total_size as i64);
        }
        w.end();
        let mut out = w.finish();
        if let MetadataMessage::Data { data, .. } = self {
            out.extend_from_slice(data);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn geometry_of_a_dictionary_split_in_16_kib_pieces() {
        let g = MetadataGeometry::new(40_000).unwrap();
        assert_eq!(g.piece_count(), 3);
        assert_eq!(g.piece_len(0), Some(PIECE_LEN));
        assert_eq!(g.piece_len(2), Some(40_000 - 2 * PIECE_LEN));
        assert_eq!(g.piece_len(3), None);
        assert_eq!(g.offset(2), Some(2 * PIECE_LEN));
        let exact = MetadataGeometry::new(2 * PIECE_LEN as u64).unwrap();
        assert_eq!(
            (exact.piece_count(), exact.piece_len(1)),
            (2, Some(PIECE_LEN))
        );
        assert_eq!(MetadataGeometry::new(0), None);
        assert_eq!(MetadataGeometry::new(MAX_METADATA_SIZE + 1), None);
        assert_eq!(MetadataGeometry::new(1 << 30), None, "1 GiB is refused");
        assert!(MetadataGeometry::new(MAX_METADATA_SIZE).is_some());
    }

    #[test]
    fn each_message_round_trips_as_bep_9_spells_it() {
        let cases = [
            (
                MetadataMessage::Request { piece: 0 },
                &b"d8:msg_typei0e5:piecei0ee"[..],
            ),
            (
                MetadataMessage::Reject { piece: 7 },
                b"d8:msg_typei2e5:piecei7ee",
            ),
            (
                MetadataMessage::Data {
                    piece: 1,
                    total_size: 16390,
                    data: Bytes::from_static(b"abcdef"),
                },
                b"d8:msg_typei1e5:piecei1e10:total_sizei16390eeabcdef",
            ),
        ];
        for (message, wire) in cases {
            assert_eq!(message.encode(), wire);
            assert_eq!(MetadataMessage::decode(wire).unwrap(), message);
        }
    }

    #[test]
    fn malformed_messages_are_errors() {
        for body in [
            &b""[..],
            b"d8:msg_typei0ee",
            b"d5:piecei0ee",
            b"d8:msg_typei3e5:piecei0ee",
            b"d8:msg_typei0e5:piecei-1ee",
            b"d8:msg_typei1e5:piecei0ee",
            b"d8:msg_typei1e5:piecei0e10:total_sizei-3ee",
            b"d8:msg_typei0e5:piecei0eextra",
            b"d8:msg_type1:05:piecei0ee",
            b"i1e",
        ] {
            assert!(
                MetadataMessage::decode(body).is_err(),
                "{:?} decoded",
                String::from_utf8_lossy(body)
            );
        }
        let too_long = [
            b"d8:msg_typei1e5:piecei0e10:total_sizei1ee".to_vec(),
            vec![0; MAX_EXTENDED_LEN],
        ]
        .concat();
        assert_eq!(
            MetadataMessage::decode(&too_long),
            Err(ExtensionError::TooLong(too_long.len()))
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_what_decodes_reencodes_to_the_same_meaning(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(message) = MetadataMessage::decode(&body) {
                prop_assert_eq!(MetadataMessage::decode(&message.encode()).unwrap(), message);
            }
        }

        #[test]
        fn every_piece_is_covered_once(size in 1u64..(1 << 22)) {
            let g = MetadataGeometry::new(size).unwrap();
            let total: usize = (0..g.piece_count()).map(|p| g.piece_len(p).unwrap()).sum();
            prop_assert_eq!(total as u64, size);
            prop_assert_eq!(g.piece_len(g.piece_count()), None);
        }
    }
}
