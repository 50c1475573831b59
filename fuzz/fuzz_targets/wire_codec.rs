//! `wire::MessageCodec` (the peer wire protocol after the handshake) on an
//! arbitrary byte stream, fed whole and in chunks cut at arbitrary points.
//!
//! Input layout: 6 bytes of geometry (piece length 1..=65536, 1..=2048
//! pieces, the last piece's length), 1 byte giving the number of cuts (0..16),
//! 2 bytes per cut, then the stream.
//!
//! Holds: the same messages and the same final outcome (an error, or the same
//! unread bytes) whatever the cuts; every message is within its limits (a
//! block at most `MAX_BLOCK_LEN` and inside its piece, a bitfield of exactly
//! the geometry's length, indexes below the piece count); a frame over
//! `max_frame_len` is refused as soon as its length prefix is in, never
//! buffered; every message except `Unknown` re-encodes to the exact frame it
//! came from.
#![no_main]

use bytes::BytesMut;
use common::{
    extension::{EXTENDED_ID, MAX_EXTENDED_LEN},
    wire::{Geometry, Message, MessageCodec, WireError, ALLOWED_FAST, MAX_BLOCK_LEN, SUGGEST},
};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

const HEADER: usize = 7;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let word = |i: usize| u64::from(u16::from_be_bytes([data[i], data[i + 1]]));
    let piece_length = 1 + word(0);
    let piece_count = 1 + word(2) % 2048;
    let last = 1 + word(4) % piece_length;
    let geometry = Geometry {
        piece_length,
        total_length: (piece_count - 1) * piece_length + last,
        piece_count: piece_count as u32,
    };
    let cut_count = usize::from(data[6] % 16);
    let Some(cut_bytes) = data.get(HEADER..HEADER + 2 * cut_count) else {
        return;
    };
    let stream = &data[HEADER + 2 * cut_count..];
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_be_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.push(stream.len());
    cuts.sort_unstable();

    let whole = decode_whole(geometry, stream);
    let chunked = decode_chunked(geometry, stream, &cuts);
    assert_eq!(whole.messages, chunked.messages, "cuts {cuts:?}");
    assert_eq!(whole.end, chunked.end, "cuts {cuts:?}");
});

#[derive(Debug, PartialEq)]
enum End {
    /// Waiting for more bytes; these are still unread.
    NeedMore(Vec<u8>),
    /// Refused, with the error's text (`WireError` is not `PartialEq`).
    Error(String),
}

struct Outcome {
    messages: Vec<Message>,
    end: End,
}

fn decode_whole(geometry: Geometry, stream: &[u8]) -> Outcome {
    let mut codec = MessageCodec::new(geometry);
    let mut buf = BytesMut::from(stream);
    let mut messages = Vec::new();
    let mut read = 0;
    loop {
        let before = read;
        let result = codec.decode(&mut buf);
        read = stream.len() - buf.len();
        match result {
            Ok(Some(message)) => {
                check_message(&geometry, &message, &stream[before..read]);
                messages.push(message);
            }
            Ok(None) => {
                check_waiting(&geometry, &buf);
                return Outcome {
                    messages,
                    end: End::NeedMore(buf.to_vec()),
                };
            }
            Err(error) => {
                check_error(&geometry, &error, &stream[before..]);
                return Outcome {
                    messages,
                    end: End::Error(error.to_string()),
                };
            }
        }
    }
}

fn decode_chunked(geometry: Geometry, stream: &[u8], cuts: &[usize]) -> Outcome {
    let mut codec = MessageCodec::new(geometry);
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        buf.extend_from_slice(&stream[start..cut]);
        start = cut;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => {
                    check_waiting(&geometry, &buf);
                    break;
                }
                Err(error) => {
                    return Outcome {
                        messages,
                        end: End::Error(error.to_string()),
                    }
                }
            }
        }
    }
    Outcome {
        messages,
        end: End::NeedMore(buf.to_vec()),
    }
}

/// Every field of a decoded message is within the torrent's geometry, and
/// the message re-encodes to the frame it was read from.
fn check_message(g: &Geometry, message: &Message, frame: &[u8]) {
    assert!(frame.len() - 4 <= g.max_frame_len());
    match message {
        Message::Have(index) => assert!(*index < g.piece_count),
        Message::Bitfield(field) => {
            assert_eq!(field.len(), g.piece_count as usize);
            assert_eq!(field.as_bytes().len(), g.bitfield_len());
            assert!(field.count() <= field.len());
        }
        Message::Request(block) | Message::Cancel(block) => {
            assert!(block.index < g.piece_count);
            assert!(block.length > 0 && block.length <= MAX_BLOCK_LEN);
            assert!(g.block_fits(block.index, block.begin, block.length));
        }
        Message::Piece { index, begin, data } => {
            assert!(*index < g.piece_count);
            assert!(!data.is_empty() && data.len() <= MAX_BLOCK_LEN as usize);
            let size = g.piece_size(*index).unwrap();
            assert!(u64::from(*begin) + data.len() as u64 <= size);
        }
        Message::Extended { payload, .. } => {
            assert_eq!(frame[4], EXTENDED_ID);
            assert!(payload.len() <= MAX_EXTENDED_LEN);
        }
        Message::Suggest(index) | Message::AllowedFast(index) => assert!(*index < g.piece_count),
        Message::Reject(block) => {
            assert!(g.block_fits(block.index, block.begin, block.length));
        }
        Message::Unknown(id) => {
            assert!(*id > 9 && *id != EXTENDED_ID && !(SUGGEST..=ALLOWED_FAST).contains(id));
            assert_eq!(frame[4], *id);
            return; // its body is skipped, so it cannot re-encode to the same frame
        }
        Message::KeepAlive
        | Message::HaveAll
        | Message::HaveNone
        | Message::Choke
        | Message::Unchoke
        | Message::Interested
        | Message::NotInterested
        | Message::Port(_) => {}
    }
    let mut encoded = BytesMut::new();
    MessageCodec::new(*g)
        .encode(message.clone(), &mut encoded)
        .unwrap();
    assert_eq!(&encoded[..], frame, "{message:?} re-encodes to its frame");
}

/// Waiting for more bytes is only allowed for a frame within the limit.
fn check_waiting(g: &Geometry, buf: &[u8]) {
    if let Some(prefix) = buf.get(..4) {
        let len = u32::from_be_bytes(prefix.try_into().unwrap()) as usize;
        assert!(len <= g.max_frame_len(), "buffering a {len}-byte frame");
        assert!(buf.len() < 4 + len, "a whole frame is waiting");
    }
}

fn check_error(g: &Geometry, error: &WireError, buf: &[u8]) {
    if let WireError::FrameTooLong(len) = error {
        assert!(*len > g.max_frame_len());
        assert_eq!(
            u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize,
            *len
        );
    }
}
