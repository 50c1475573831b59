//! Inputs from the fuzz targets in `fuzz/`, kept in the normal test suite.
//!
//! The first tests are the bugs the fuzzers found (their inputs in
//! `fuzz_cases/`, as libFuzzer wrote them), each asserting the fixed
//! behaviour. The rest are the inputs that reach the deepest refusals of each
//! parser (nesting bombs, huge length prefixes, oversized frames and queries),
//! each asserting the specific error, so that a change to a limit is seen here.

use std::net::SocketAddr;

use bytes::{BufMut, BytesMut};
use common::{
    bencode::{self, BencodeError, MAX_DEPTH},
    extension::MAX_EXTENDED_LEN,
    tracker_proto::{
        escape, parse_scrape,
        query::{MAX_QUERY_BYTES, MAX_SCRAPE_HASHES},
        response::decode_compact,
        AnnounceRequest, AnnounceResponse, PeerEntry, QueryError,
    },
    wire::{Geometry, Handshake, Message, MessageCodec, WireError, MAX_BLOCK_LEN},
    Metainfo, MetainfoError,
};
use serde_bencode::value::Value;
use tokio_util::codec::Decoder;

// ---- Bugs found by the fuzzers ----

/// tracker_response: a compact peer with port 0 was kept, while the same peer
/// in a dictionary reply was dropped, so one reply decoded to different peers
/// depending on its form. Port 0 cannot be connected to: both forms skip it.
#[test]
fn compact_peer_with_port_zero_is_skipped_like_a_dictionary_peer() {
    let reply = include_bytes!("fuzz_cases/response-compact-port-zero");
    let decoded = AnnounceResponse::decode(reply).unwrap();
    let only: SocketAddr = "10.0.0.1:6881".parse().unwrap();
    assert_eq!(
        decoded.peers,
        [PeerEntry {
            addr: only,
            peer_id: None
        }],
        "the [2001:db8::100]:0 entry of peers6 is skipped"
    );
    for compact in [true, false] {
        assert_eq!(
            AnnounceResponse::decode(&decoded.encode(compact, false)).unwrap(),
            decoded
        );
    }
    assert_eq!(decode_compact(&[10, 0, 0, 1, 0, 0], false), Ok(vec![]));
    assert_eq!(decode_compact(&[0; 18], true), Ok(vec![]));
    assert_eq!(
        decode_compact(&[10, 0, 0, 1, 0, 1], false).unwrap().len(),
        1
    );
}

/// tracker_query: `key` was limited to 128 bytes before its lossy UTF-8
/// conversion, which turns each invalid byte into a 3-byte U+FFFD; a request
/// could then hold a key its own `to_query` wrote too long to parse again.
/// The limit now applies to the text kept.
#[test]
fn a_key_that_grows_past_the_limit_when_made_utf8_is_refused() {
    let query = include_bytes!("fuzz_cases/query-lossy-key-grows");
    assert_eq!(
        AnnounceRequest::parse(&String::from_utf8_lossy(query)),
        Err(QueryError::ValueTooLong("key"))
    );

    let base = "info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1&left=0";
    let with_key = |key: &str| AnnounceRequest::parse(&format!("{base}&key={key}"));
    assert_eq!(
        with_key(&"%FF".repeat(43)),
        Err(QueryError::ValueTooLong("key")),
        "43 invalid bytes are 129 bytes of text"
    );
    let request = with_key(&"%FF".repeat(42)).expect("42 invalid bytes are 126 bytes of text");
    assert_eq!(request.key.as_deref().map(str::len), Some(126));
    assert_eq!(AnnounceRequest::parse(&request.to_query()), Ok(request));
    assert!(with_key(&"k".repeat(128)).is_ok());
    assert_eq!(
        with_key(&"k".repeat(129)),
        Err(QueryError::ValueTooLong("key"))
    );
}

// ---- The deepest refusals, one per limit ----

#[test]
fn bencode_nesting_bomb_stops_at_the_depth_limit() {
    let lists = [&b"d1:a"[..], &vec![b'l'; 100_000]].concat();
    assert_eq!(
        bencode::check(&lists),
        Err(BencodeError::TooDeep(4 + MAX_DEPTH - 1))
    );
    let dicts = b"d1:a".repeat(100_000);
    assert_eq!(
        bencode::check(&dicts),
        Err(BencodeError::TooDeep(4 * MAX_DEPTH))
    );
    let deepest = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
    let value: Value = bencode::decode(&deepest).unwrap();
    assert_eq!(bencode::encode(&value).unwrap(), deepest);
}

#[test]
fn a_huge_length_prefix_is_refused_before_any_allocation() {
    assert_eq!(
        bencode::check(b"d4:info99999999999:xe"),
        Err(BencodeError::StringTooLong {
            offset: 7,
            len: 99_999_999_999,
            remaining: 2
        })
    );
    // The longest prefix that still reads as a number, and one digit more.
    assert_eq!(
        bencode::check(b"9223372036854775807:"),
        Err(BencodeError::StringTooLong {
            offset: 0,
            len: i64::MAX as u64,
            remaining: 0
        })
    );
    assert_eq!(
        bencode::check(b"92233720368547758070:"),
        Err(BencodeError::BadInteger(0))
    );
    assert_eq!(
        Metainfo::from_bytes(b"d4:infod6:pieces18446744073709551616:ee"),
        Err(MetainfoError::Bencode(BencodeError::BadInteger(16)))
    );
}

#[test]
fn a_torrent_nesting_bomb_inside_info_is_a_bencode_error() {
    let mut torrent = b"d4:infod5:filesl".to_vec();
    torrent.extend(vec![b'l'; 1_000]);
    assert_eq!(
        Metainfo::from_bytes(&torrent),
        Err(MetainfoError::Bencode(BencodeError::TooDeep(
            16 + MAX_DEPTH - 3
        )))
    );
}

#[test]
fn a_torrent_path_that_escapes_is_refused_at_its_component() {
    let torrent = b"d4:infod5:filesld6:lengthi1e4:pathl2:..6:passwdeee\
                    4:name1:x12:piece lengthi1e6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
    assert_eq!(
        Metainfo::from_bytes(torrent),
        Err(MetainfoError::BadPath {
            field: "info.files[0].path[0]".into(),
            component: "..".into(),
            reason: "is a relative reference",
        })
    );
}

/// 10 pieces of 32 KiB, the last of 1000 bytes: the geometry of the seeds.
const G: Geometry = Geometry {
    piece_length: 32768,
    total_length: 9 * 32768 + 1000,
    piece_count: 10,
};

fn decode_all(bytes: &[u8]) -> (Vec<Message>, Result<(), WireError>) {
    let mut codec = MessageCodec::new(G);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(m)) => out.push(m),
            Ok(None) => return (out, Ok(())),
            Err(e) => return (out, Err(e)),
        }
    }
}

#[test]
fn a_frame_over_the_limit_is_refused_from_its_prefix_alone() {
    // An extended message (its two id bytes and body) is the largest frame
    // for a torrent of few pieces; a block is a little smaller.
    assert_eq!(G.max_frame_len(), 2 + MAX_EXTENDED_LEN);
    assert!(G.max_frame_len() > 9 + MAX_BLOCK_LEN as usize);
    let (messages, end) = decode_all(&[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 7]);
    assert_eq!(messages, [Message::KeepAlive]);
    assert!(matches!(end, Err(WireError::FrameTooLong(0x7fff_ffff))));

    let mut one_over = BytesMut::new();
    one_over.put_u32(G.max_frame_len() as u32 + 1);
    assert!(matches!(
        decode_all(&one_over).1,
        Err(WireError::FrameTooLong(len)) if len == G.max_frame_len() + 1
    ));
    // The largest frame is waited for.
    let mut largest = BytesMut::new();
    largest.put_u32(G.max_frame_len() as u32);
    largest.put_u8(20);
    assert!(matches!(decode_all(&largest), (m, Ok(())) if m.is_empty()));
}

#[test]
fn a_block_running_past_the_last_piece_is_refused() {
    let mut frame = BytesMut::new();
    frame.put_u32(9 + 1001);
    frame.put_u8(7);
    frame.put_u32(9);
    frame.put_u32(0);
    frame.put_slice(&[0; 1001]);
    assert!(matches!(
        decode_all(&frame).1,
        Err(WireError::BadBlock(b)) if b.index == 9 && b.length == 1001
    ));
}

#[test]
fn an_encrypted_handshake_is_refused_and_a_plain_one_round_trips() {
    let mut bytes = [0u8; 68];
    bytes[0] = 19;
    bytes[1..20].copy_from_slice(b"BitTorrent protocol");
    bytes[25] = 0x10; // the extension protocol bit (BEP 10)
    let handshake = Handshake::decode(&bytes).unwrap();
    assert_eq!(handshake.encode(), bytes);
    bytes[0] = 0xc3;
    assert!(matches!(
        Handshake::decode(&bytes),
        Err(WireError::NotBitTorrent)
    ));
    assert!(Handshake::check_prefix(&[]).is_ok(), "nothing read yet");
}

#[test]
fn an_overlong_query_and_a_scrape_of_too_many_hashes_are_refused() {
    let long = format!("port=1&pad={}", "x".repeat(MAX_QUERY_BYTES));
    assert_eq!(AnnounceRequest::parse(&long), Err(QueryError::TooLong));
    assert_eq!(parse_scrape(&long), Err(QueryError::TooLong));

    let scrape =
        |hash: &[u8; 20], n: usize| vec![format!("info_hash={}", escape(hash)); n].join("&");
    // Hashes of unreserved bytes (3 bytes of query per 1 of hash fewer):
    // the hash count is the limit that bites.
    let plain = b"abcdefghijklmnopqrst";
    assert_eq!(
        parse_scrape(&scrape(plain, MAX_SCRAPE_HASHES))
            .unwrap()
            .len(),
        MAX_SCRAPE_HASHES
    );
    assert!(scrape(plain, MAX_SCRAPE_HASHES + 1).len() <= MAX_QUERY_BYTES);
    assert_eq!(
        parse_scrape(&scrape(plain, MAX_SCRAPE_HASHES + 1)),
        Err(QueryError::TooManyHashes)
    );
    // Hashes escaped byte for byte take 71 bytes each and still fit: the
    // hash count is the limit for them too.
    let escaped = &[0xab; 20];
    assert!(scrape(escaped, MAX_SCRAPE_HASHES + 1).len() <= MAX_QUERY_BYTES);
    assert_eq!(
        parse_scrape(&scrape(escaped, MAX_SCRAPE_HASHES))
            .unwrap()
            .len(),
        MAX_SCRAPE_HASHES
    );
    assert_eq!(
        parse_scrape(&scrape(escaped, MAX_SCRAPE_HASHES + 1)),
        Err(QueryError::TooManyHashes)
    );
}
