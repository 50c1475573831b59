//! The peer wire protocol of BEP 3 with no I/O: the handshake, the messages,
//! and a `tokio_util` codec that refuses anything out of bounds.
//!
//! The codec knows the torrent's [`Geometry`], so it checks every field
//! before a message leaves it: a length prefix above the largest legal
//! message is refused before any byte of the body is buffered; fixed-size
//! messages must have their exact length; a bitfield must be exactly
//! `ceil(pieces / 8)` bytes with the spare bits clear; an index must name a
//! piece, and `begin + length` must stay inside that piece; a request or a
//! block is at most [`MAX_BLOCK_LEN`]. Every violation is a [`WireError`],
//! which closes that one connection. "Need more bytes" is `Ok(None)`, a
//! different outcome from malformed.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder};

use crate::{
    bitfield::Bitfield,
    extension::{metadata::MAX_METADATA_SIZE, EXTENDED_ID, MAX_EXTENDED_LEN},
    types::{InfoHash, PeerId},
};

pub use crate::geometry::{BlockRef, Geometry, MAX_BLOCK_LEN};

pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
pub const HANDSHAKE_LEN: usize = 68;

impl Geometry {
    /// Largest legal frame body (after the 4-byte length prefix): a block,
    /// the bitfield, or an extended message, whichever is longest. Each
    /// message id then has its own, tighter length check.
    pub fn max_frame_len(&self) -> usize {
        (9 + MAX_BLOCK_LEN as usize)
            .max(1 + self.bitfield_len())
            .max(2 + MAX_EXTENDED_LEN)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Bitfield),
    Request(BlockRef),
    Piece {
        index: u32,
        begin: u32,
        data: Bytes,
    },
    Cancel(BlockRef),
    /// The sender's DHT port (BEP 5).
    Port(u16),
    /// BEP 6, sent only to a peer that set the fast extension's bit: this
    /// piece is worth asking for.
    Suggest(u32),
    /// BEP 6: instead of a full bitfield.
    HaveAll,
    /// BEP 6: instead of an empty bitfield.
    HaveNone,
    /// BEP 6: this request will not be served.
    Reject(BlockRef),
    /// BEP 6: this piece may be asked for while choked.
    AllowedFast(u32),
    /// An extended message (BEP 10): the extended id (0 for the extension
    /// handshake) and the body, at most [`MAX_EXTENDED_LEN`] bytes; what the
    /// body means is for [`crate::extension`] to read.
    Extended {
        id: u8,
        payload: Bytes,
    },
    /// A message id this client does not speak (e.g. an extension it never
    /// advertised), within the frame limit: skipped.
    Unknown(u8),
}

#[derive(Debug, Error)]
pub enum WireError {
    #[error("frame of {0} bytes is over the limit")]
    FrameTooLong(usize),
    #[error("message {id} has length {len}, expected {expected}")]
    BadLength { id: u8, len: usize, expected: usize },
    #[error("bitfield is malformed (wrong length or spare bits set)")]
    BadBitfield,
    #[error("piece index {0} is out of range")]
    BadIndex(u32),
    #[error("block {0:?} is outside its piece or over 16 KiB")]
    BadBlock(BlockRef),
    #[error("not a BitTorrent handshake (an encrypted or foreign protocol)")]
    NotBitTorrent,
    #[error("handshake for another torrent ({0})")]
    WrongInfoHash(InfoHash),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The fast extension's message ids (BEP 6).
pub const SUGGEST: u8 = 0x0d;
pub const HAVE_ALL: u8 = 0x0e;
pub const HAVE_NONE: u8 = 0x0f;
pub const REJECT: u8 = 0x10;
pub const ALLOWED_FAST: u8 = 0x11;

/// A reserved bit: its byte and mask.
type ReservedBit = (usize, u8);
/// BEP 10's bit: the 20th from the right of the 64 reserved bits.
const EXTENSION_BIT: ReservedBit = (5, 0x10);
/// BEP 6's bit: the 3rd from the right.
const FAST_BIT: ReservedBit = (7, 0x04);
/// BEP 5's bit (the sender runs a DHT node): the last.
const DHT_BIT: ReservedBit = (7, 0x01);

fn set_bit(reserved: &mut [u8; 8], (byte, mask): ReservedBit, on: bool) {
    if on {
        reserved[byte] |= mask;
    } else {
        reserved[byte] &= !mask;
    }
}

/// The 68-byte handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
}

impl Handshake {
    pub fn new(info_hash: InfoHash, peer_id: PeerId) -> Self {
        Handshake {
            reserved: [0; 8],
            info_hash,
            peer_id,
        }
    }

    /// This handshake with the reserved bits of the extension protocol
    /// (BEP 10: bit 20 from the right, byte 5's 0x10) set or cleared.
    pub fn with_extensions(mut self, on: bool) -> Self {
        set_bit(&mut self.reserved, EXTENSION_BIT, on);
        self
    }

    /// This handshake with the fast extension's bit (BEP 6: the last byte's
    /// 0x04) set or cleared.
    pub fn with_fast(mut self, on: bool) -> Self {
        set_bit(&mut self.reserved, FAST_BIT, on);
        self
    }

    /// This handshake with the DHT's bit (BEP 5: the last byte's 0x01) set
    /// or cleared: the sender runs a DHT node and will say its port.
    pub fn with_dht(mut self, on: bool) -> Self {
        set_bit(&mut self.reserved, DHT_BIT, on);
        self
    }

    /// Whether the sender runs a DHT node (BEP 5).
    pub fn supports_dht(&self) -> bool {
        self.reserved[DHT_BIT.0] & DHT_BIT.1 != 0
    }

    /// Whether the sender speaks the extension protocol (BEP 10).
    pub fn supports_extensions(&self) -> bool {
        self.reserved[EXTENSION_BIT.0] & EXTENSION_BIT.1 != 0
    }

    /// Whether the sender speaks the fast extension (BEP 6).
    pub fn supports_fast(&self) -> bool {
        self.reserved[FAST_BIT.0] & FAST_BIT.1 != 0
    }

    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = 19;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash.0);
        out[48..68].copy_from_slice(&self.peer_id.0);
        out
    }

    /// Checks only the first 20 bytes: enough to tell an encrypted (MSE)
    /// handshake, which starts with random bytes, from a plaintext one.
    pub fn check_prefix(prefix: &[u8]) -> Result<(), WireError> {
        let expected = [&[19u8][..], PROTOCOL].concat();
        let n = prefix.len().min(20);
        if prefix[..n] != expected[..n] {
            return Err(WireError::NotBitTorrent);
        }
        Ok(())
    }

    pub fn decode(bytes: &[u8; HANDSHAKE_LEN]) -> Result<Self, WireError> {
        Handshake::check_prefix(&bytes[..20])?;
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&bytes[20..28]);
        let info_hash = InfoHash::from_slice(&bytes[28..48]).ok_or(WireError::NotBitTorrent)?;
        let peer_id = PeerId::from_slice(&bytes[48..68]).ok_or(WireError::NotBitTorrent)?;
        Ok(Handshake {
            reserved,
            info_hash,
            peer_id,
        })
    }
}

/// Largest bitfield accepted before the torrent's geometry is known: one of
/// a torrent whose metadata is as large as any accepted
/// ([`MAX_METADATA_SIZE`]), 20 bytes of hash per piece.
pub const MAX_BITFIELD_BEFORE_METADATA: usize = (MAX_METADATA_SIZE as usize / 20).div_ceil(8);

/// Frames messages after the handshake, checking them against a geometry.
///
/// Before the geometry is known (a magnet link's metadata is still being
/// fetched), [`MessageCodec::before_metadata`] decodes with the checks that
/// need no geometry: frames bounded, fixed lengths exact, blocks at most
/// [`MAX_BLOCK_LEN`]; a bitfield is taken at its byte length (at most
/// [`MAX_BITFIELD_BEFORE_METADATA`]) and indexes are not checked.
/// [`MessageCodec::set_geometry`] turns every check on.
#[derive(Debug, Clone)]
pub struct MessageCodec {
    geometry: Option<Geometry>,
    max_frame: usize,
}

impl MessageCodec {
    pub fn new(geometry: Geometry) -> Self {
        MessageCodec {
            geometry: Some(geometry),
            max_frame: geometry.max_frame_len(),
        }
    }

    /// A codec for a connection whose torrent's geometry is not known yet.
    pub fn before_metadata() -> Self {
        MessageCodec {
            geometry: None,
            max_frame: (9 + MAX_BLOCK_LEN as usize)
                .max(2 + MAX_EXTENDED_LEN)
                .max(1 + MAX_BITFIELD_BEFORE_METADATA),
        }
    }

    /// Checks everything against `geometry` from the next message on.
    pub fn set_geometry(&mut self, geometry: Geometry) {
        *self = MessageCodec::new(geometry);
    }
}

/// Whether a block is within `geometry`, or, with none known yet, at least
/// a legal size.
fn block_ok(geometry: Option<&Geometry>, block: &BlockRef) -> bool {
    match geometry {
        Some(g) => g.block_fits(block.index, block.begin, block.length),
        None => block.length > 0 && block.length <= MAX_BLOCK_LEN,
    }
}

fn expect_len(id: u8, len: usize, expected: usize) -> Result<(), WireError> {
    if len != expected {
        return Err(WireError::BadLength { id, len, expected });
    }
    Ok(())
}

impl Decoder for MessageCodec {
    type Item = Message;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, WireError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_frame {
            return Err(WireError::FrameTooLong(len));
        }
        if src.len() < 4 + len {
            // Room for the rest of this frame only: never more than the limit.
            src.reserve(4 + len - src.len());
            return Ok(None);
        }
        src.advance(4);
        if len == 0 {
            return Ok(Some(Message::KeepAlive));
        }
        let mut body = src.split_to(len);
        let id = body.get_u8();
        let g = self.geometry.as_ref();
        let message = match id {
            0..=3 => {
                expect_len(id, len, 1)?;
                [
                    Message::Choke,
                    Message::Unchoke,
                    Message::Interested,
                    Message::NotInterested,
                ][id as usize]
                    .clone()
            }
            4 => {
                expect_len(id, len, 5)?;
                let index = body.get_u32();
                if g.is_some_and(|g| index >= g.piece_count) {
                    return Err(WireError::BadIndex(index));
                }
                Message::Have(index)
            }
            5 => Message::Bitfield(
                Bitfield::from_bytes(&body, g.map_or(8 * body.len(), |g| g.piece_count as usize))
                    .ok_or(WireError::BadBitfield)?,
            ),
            6 | 8 | REJECT => {
                expect_len(id, len, 13)?;
                let block = BlockRef {
                    index: body.get_u32(),
                    begin: body.get_u32(),
                    length: body.get_u32(),
                };
                if !block_ok(g, &block) {
                    return Err(WireError::BadBlock(block));
                }
                match id {
                    6 => Message::Request(block),
                    8 => Message::Cancel(block),
                    _ => Message::Reject(block),
                }
            }
            7 => {
                if len < 9 {
                    return Err(WireError::BadLength {
                        id,
                        len,
                        expected: 9 + MAX_BLOCK_LEN as usize,
                    });
                }
                let (index, begin) = (body.get_u32(), body.get_u32());
                let block = BlockRef {
                    index,
                    begin,
                    length: (len - 9) as u32,
                };
                if !block_ok(g, &block) {
                    return Err(WireError::BadBlock(block));
                }
                Message::Piece {
                    index,
                    begin,
                    data: body.freeze(),
                }
            }
            9 => {
                expect_len(id, len, 3)?;
                Message::Port(body.get_u16())
            }
            SUGGEST | ALLOWED_FAST => {
                expect_len(id, len, 5)?;
                let index = body.get_u32();
                if g.is_some_and(|g| index >= g.piece_count) {
                    return Err(WireError::BadIndex(index));
                }
                if id == SUGGEST {
                    Message::Suggest(index)
                } else {
                    Message::AllowedFast(index)
                }
            }
            HAVE_ALL | HAVE_NONE => {
                expect_len(id, len, 1)?;
                if id == HAVE_ALL {
                    Message::HaveAll
                } else {
                    Message::HaveNone
                }
            }
            EXTENDED_ID => {
                if !(2..=2 + MAX_EXTENDED_LEN).contains(&len) {
                    return Err(WireError::BadLength {
                        id,
                        len,
                        expected: 2 + MAX_EXTENDED_LEN,
                    });
                }
                Message::Extended {
                    id: body.get_u8(),
                    payload: body.freeze(),
                }
            }
            other => Message::Unknown(other),
        };
        Ok(Some(message))
    }
}

/// A `piece` message's bytes before its data: length prefix, id, index, begin.
pub const PIECE_HEADER_LEN: usize = 13;

fn put_piece_header(dst: &mut BytesMut, index: u32, begin: u32, length: u32) {
    dst.put_u32(9 + length);
    dst.put_u8(7);
    dst.put_u32(index);
    dst.put_u32(begin);
}

/// Appends a `piece` message for each of `blocks` to `dst`, each block's
/// data left zeroed, and returns the data slices in order: a seeder reads
/// from disk straight into them, one copy and one system call for a run of
/// blocks, and the bytes are what encoding `Message::Piece` would give.
pub fn frame_pieces<'a>(dst: &'a mut BytesMut, blocks: &[BlockRef]) -> Vec<&'a mut [u8]> {
    let start = dst.len();
    let total: usize = blocks
        .iter()
        .map(|b| PIECE_HEADER_LEN + b.length as usize)
        .sum();
    dst.reserve(total);
    for block in blocks {
        put_piece_header(dst, block.index, block.begin, block.length);
        dst.resize(dst.len() + block.length as usize, 0);
    }
    let mut slices = Vec::with_capacity(blocks.len());
    let mut rest = &mut dst[start..];
    for block in blocks {
        let (data, after) = rest[PIECE_HEADER_LEN..].split_at_mut(block.length as usize);
        slices.push(data);
        rest = after;
    }
    slices
}

impl Encoder<Message> for MessageCodec {
    type Error = WireError;

    fn encode(&mut self, message: Message, dst: &mut BytesMut) -> Result<(), WireError> {
        let simple = |dst: &mut BytesMut, id: u8| {
            dst.put_u32(1);
            dst.put_u8(id);
        };
        match message {
            Message::KeepAlive => dst.put_u32(0),
            Message::Choke => simple(dst, 0),
            Message::Unchoke => simple(dst, 1),
            Message::Interested => simple(dst, 2),
            Message::NotInterested => simple(dst, 3),
            Message::Have(index) => {
                dst.put_u32(5);
                dst.put_u8(4);
                dst.put_u32(index);
            }
            Message::Bitfield(field) => {
                dst.put_u32(1 + field.as_bytes().len() as u32);
                dst.put_u8(5);
                dst.put_slice(field.as_bytes());
            }
            Message::Request(b) | Message::Cancel(b) | Message::Reject(b) => {
                dst.put_u32(13);
                dst.put_u8(match message {
                    Message::Request(_) => 6,
                    Message::Cancel(_) => 8,
                    _ => REJECT,
                });
                dst.put_u32(b.index);
                dst.put_u32(b.begin);
                dst.put_u32(b.length);
            }
            Message::Piece { index, begin, data } => {
                dst.reserve(PIECE_HEADER_LEN + data.len());
                put_piece_header(dst, index, begin, data.len() as u32);
                dst.put_slice(&data);
            }
            Message::Port(port) => {
                dst.put_u32(3);
                dst.put_u8(9);
                dst.put_u16(port);
            }
            Message::HaveAll => simple(dst, HAVE_ALL),
            Message::HaveNone => simple(dst, HAVE_NONE),
            Message::Suggest(index) | Message::AllowedFast(index) => {
                dst.put_u32(5);
                dst.put_u8(if matches!(message, Message::Suggest(_)) {
                    SUGGEST
                } else {
                    ALLOWED_FAST
                });
                dst.put_u32(index);
            }
            Message::Extended { id, payload } => {
                dst.reserve(6 + payload.len());
                dst.put_u32(2 + payload.len() as u32);
                dst.put_u8(EXTENDED_ID);
                dst.put_u8(id);
                dst.put_slice(&payload);
            }
            Message::Unknown(id) => simple(dst, id),
        }
        Ok(())
    }
}

pub mod fast;

#[cfg(test)]
mod tests;
