//! The codec's tests: every message round-trips, each malformed class is
//! its error, a stream split anywhere decodes the same, and properties.

use super::*;
use proptest::prelude::*;

/// 10 pieces of 32 KiB, the last one 1000 bytes.
const G: Geometry = Geometry {
    piece_length: 32768,
    total_length: 9 * 32768 + 1000,
    piece_count: 10,
};

fn all_messages() -> Vec<Message> {
    let mut field = Bitfield::new(10);
    field.set(3);
    vec![
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have(9),
        Message::Bitfield(field),
        Message::Request(BlockRef {
            index: 1,
            begin: 16384,
            length: 16384,
        }),
        Message::Piece {
            index: 9,
            begin: 0,
            data: Bytes::from(vec![7u8; 1000]),
        },
        Message::Cancel(BlockRef {
            index: 0,
            begin: 0,
            length: 100,
        }),
        Message::Port(6881),
        Message::Extended {
            id: 0,
            payload: Bytes::from_static(b"d1:md6:ut_pexi2eee"),
        },
        Message::Suggest(9),
        Message::HaveAll,
        Message::HaveNone,
        Message::Reject(BlockRef {
            index: 9,
            begin: 0,
            length: 1000,
        }),
        Message::AllowedFast(0),
    ]
}

fn encode_all(messages: &[Message]) -> BytesMut {
    let mut codec = MessageCodec::new(G);
    let mut buf = BytesMut::new();
    for m in messages {
        codec.encode(m.clone(), &mut buf).unwrap();
    }
    buf
}

fn decode_all(mut buf: BytesMut) -> Result<Vec<Message>, WireError> {
    let mut codec = MessageCodec::new(G);
    let mut out = Vec::new();
    while let Some(m) = codec.decode(&mut buf)? {
        out.push(m);
    }
    Ok(out)
}

#[test]
fn every_message_round_trips() {
    let messages = all_messages();
    assert_eq!(decode_all(encode_all(&messages)).unwrap(), messages);
}

#[test]
fn handshake_round_trips_and_refuses_foreign_bytes() {
    let h = Handshake::new(InfoHash([1; 20]), PeerId(*b"-PR0100-abcdefghijkl"));
    assert_eq!(Handshake::decode(&h.encode()).unwrap(), h);
    let mut encrypted = h.encode();
    encrypted[0] = 0xc3; // MSE starts with a random Diffie-Hellman key
    assert!(matches!(
        Handshake::decode(&encrypted),
        Err(WireError::NotBitTorrent)
    ));
    assert!(Handshake::check_prefix(&[19, b'B', b'i']).is_ok());
    assert!(Handshake::check_prefix(&[19, b'X']).is_err());
}

fn frame(id: u8, body: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_u32(1 + body.len() as u32);
    buf.put_u8(id);
    buf.put_slice(body);
    buf
}

fn words(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

#[test]
fn each_malformed_class_is_its_error() {
    let mut huge = BytesMut::new();
    huge.put_u32(1 << 30);
    assert!(matches!(decode_all(huge), Err(WireError::FrameTooLong(_))));
    assert!(matches!(
        decode_all(frame(0, b"x")),
        Err(WireError::BadLength {
            id: 0,
            len: 2,
            expected: 1
        })
    ));
    assert!(matches!(
        decode_all(frame(4, &words(&[10]))),
        Err(WireError::BadIndex(10))
    ));
    assert!(matches!(
        decode_all(frame(4, &[0, 0])),
        Err(WireError::BadLength { id: 4, .. })
    ));
    assert!(
        matches!(
            decode_all(frame(5, &[0xff, 0xff])),
            Err(WireError::BadBitfield)
        ),
        "spare bits set"
    );
    assert!(
        matches!(decode_all(frame(5, &[0xff])), Err(WireError::BadBitfield)),
        "too short"
    );
    for bad in [
        [0, 0, 16385],
        [9, 0, 1001],
        [9, 1000, 1],
        [10, 0, 1],
        [0, 0, 0],
        [0, u32::MAX, 16384],
    ] {
        assert!(
            matches!(
                decode_all(frame(6, &words(&bad))),
                Err(WireError::BadBlock(_))
            ),
            "request {bad:?}"
        );
        assert!(
            matches!(
                decode_all(frame(8, &words(&bad))),
                Err(WireError::BadBlock(_))
            ),
            "cancel {bad:?}"
        );
    }
    let mut big_block = words(&[0, 0]);
    big_block.extend(vec![0u8; 16385]);
    assert!(
        matches!(
            decode_all(frame(7, &big_block)),
            Err(WireError::BadBlock(_))
        ),
        "block over 16 KiB"
    );
    let mut past_the_end = words(&[9, 0]);
    past_the_end.extend(vec![0u8; 1001]);
    assert!(
        matches!(
            decode_all(frame(7, &past_the_end)),
            Err(WireError::BadBlock(_))
        ),
        "past the last piece"
    );
    assert!(matches!(
        decode_all(frame(7, &[0, 0])),
        Err(WireError::BadLength { id: 7, .. })
    ));
    assert!(matches!(
        decode_all(frame(9, &[1])),
        Err(WireError::BadLength { id: 9, .. })
    ));
    assert_eq!(
        decode_all(frame(20, b"\x03extension")).unwrap(),
        vec![Message::Extended {
            id: 3,
            payload: Bytes::from_static(b"extension")
        }]
    );
    assert!(
        matches!(
            decode_all(frame(20, &[])),
            Err(WireError::BadLength { id: 20, .. })
        ),
        "an extended message without its id"
    );
    let long = vec![0u8; 2 + MAX_EXTENDED_LEN];
    assert!(matches!(
        decode_all(frame(20, &long)),
        Err(WireError::FrameTooLong(_))
    ));
    let longest = vec![0u8; 1 + MAX_EXTENDED_LEN];
    assert!(decode_all(frame(20, &longest)).is_ok());
    assert_eq!(
        decode_all(frame(21, b"")).unwrap(),
        vec![Message::Unknown(21)]
    );
    // The fast extension's messages (BEP 6).
    assert!(matches!(
        decode_all(frame(HAVE_ALL, b"x")),
        Err(WireError::BadLength { id: HAVE_ALL, .. })
    ));
    assert!(matches!(
        decode_all(frame(SUGGEST, &words(&[10]))),
        Err(WireError::BadIndex(10))
    ));
    assert!(matches!(
        decode_all(frame(ALLOWED_FAST, &words(&[10]))),
        Err(WireError::BadIndex(10))
    ));
    assert!(matches!(
        decode_all(frame(REJECT, &words(&[9, 0, 1001]))),
        Err(WireError::BadBlock(_))
    ));
}

#[test]
fn before_the_metadata_only_the_geometry_free_checks_apply() {
    let mut codec = MessageCodec::before_metadata();
    let mut buf = BytesMut::new();
    for f in [
        frame(5, &[0xff, 0xff, 0x01]),
        frame(4, &words(&[1_000_000])),
        frame(6, &words(&[99, 0, 16384])),
        frame(20, b"\x00de"),
    ] {
        buf.extend_from_slice(&f);
    }
    let mut out = Vec::new();
    while let Some(m) = codec.decode(&mut buf).unwrap() {
        out.push(m);
    }
    assert!(matches!(&out[0], Message::Bitfield(b) if b.len() == 24 && b.count() == 17));
    assert_eq!(out[1], Message::Have(1_000_000));
    assert!(matches!(
        out[2],
        Message::Request(BlockRef { index: 99, .. })
    ));
    assert!(matches!(out[3], Message::Extended { id: 0, .. }));
    for bad in [
        frame(6, &words(&[0, 0, 16385])),
        frame(7, &[words(&[0, 0]), vec![0; 16385]].concat()),
        frame(0, b"x"),
    ] {
        let mut codec = MessageCodec::before_metadata();
        assert!(codec.decode(&mut BytesMut::from(&bad[..])).is_err());
    }
    let mut too_long = BytesMut::new();
    too_long.put_u32(2 + MAX_BITFIELD_BEFORE_METADATA as u32);
    assert!(matches!(
        MessageCodec::before_metadata().decode(&mut too_long),
        Err(WireError::FrameTooLong(_))
    ));
    // Once the geometry is known, every check is on.
    codec.set_geometry(G);
    for bad in [frame(4, &words(&[10])), frame(5, &[0xff, 0xff, 0x01])] {
        let mut c = codec.clone();
        assert!(c.decode(&mut BytesMut::from(&bad[..])).is_err());
    }
}

#[test]
fn the_reserved_bits_of_bep_10_bep_6_and_bep_5() {
    let plain = Handshake::new(InfoHash([1; 20]), PeerId([2; 20]));
    assert!(!plain.supports_extensions() && !plain.supports_fast());
    let both = plain.with_extensions(true).with_fast(true);
    assert_eq!(both.reserved, [0, 0, 0, 0, 0, 0x10, 0, 0x04]);
    let decoded = Handshake::decode(&both.encode()).unwrap();
    assert!(decoded.supports_extensions() && decoded.supports_fast());
    assert_eq!(both.with_fast(false).reserved, [0, 0, 0, 0, 0, 0x10, 0, 0]);
    // libtorrent sets the DHT bit (0x01) too.
    let mut theirs = plain;
    theirs.reserved = [0, 0, 0, 0, 0, 0x10, 0, 0x05];
    assert!(theirs.supports_extensions() && theirs.supports_fast() && theirs.supports_dht());
    assert!(!both.supports_dht());
    assert_eq!(both.with_dht(true).reserved, theirs.reserved);
}

#[test]
fn an_oversized_prefix_is_refused_before_its_body_arrives() {
    let mut codec = MessageCodec::new(G);
    let mut buf = BytesMut::new();
    buf.put_u32(G.max_frame_len() as u32 + 1);
    assert!(codec.decode(&mut buf).is_err());
    let mut ok = BytesMut::new();
    ok.put_u32(G.max_frame_len() as u32);
    assert!(codec.decode(&mut ok).unwrap().is_none());
    assert!(
        ok.capacity() <= 4 + G.max_frame_len() + 64,
        "reserves at most one frame"
    );
}

proptest! {
    #[test]
    fn a_stream_split_anywhere_decodes_the_same(cuts in proptest::collection::vec(0usize..2000, 0..12)) {
        let messages = all_messages();
        let bytes = encode_all(&messages).freeze();
        let mut cuts = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect::<Vec<_>>();
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let mut codec = MessageCodec::new(G);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut start = 0;
        for cut in cuts {
            buf.extend_from_slice(&bytes[start..cut]);
            start = cut;
            while let Some(m) = codec.decode(&mut buf).unwrap() {
                out.push(m);
            }
        }
        prop_assert_eq!(out, messages);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_yield_oversized_messages(
        valid in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        frames in proptest::collection::vec((0u8..12, proptest::collection::vec(any::<u8>(), 0..24)), 0..6),
        raw in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        // Valid messages, well-framed messages of any id and body, then
        // arbitrary bytes.
        let messages = all_messages();
        let mut bytes = Vec::new();
        for pick in &valid {
            let mut one = BytesMut::new();
            MessageCodec::new(G).encode(messages[pick.index(messages.len())].clone(), &mut one).unwrap();
            bytes.extend_from_slice(&one);
        }
        for (id, body) in &frames {
            bytes.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
            bytes.push(*id);
            bytes.extend_from_slice(body);
        }
        bytes.extend_from_slice(&raw);
        let mut codec = MessageCodec::new(G);
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            let before = buf.clone();
            let declared = (before.len() >= 4)
                .then(|| u32::from_be_bytes([before[0], before[1], before[2], before[3]]) as usize);
            match codec.decode(&mut buf) {
                Ok(Some(message)) => {
                    let len = declared.unwrap();
                    // Exactly one frame was taken, and it re-encodes to itself.
                    prop_assert_eq!(before.len() - buf.len(), 4 + len);
                    if let Message::Piece { data, .. } = &message {
                        prop_assert!(data.len() <= MAX_BLOCK_LEN as usize);
                    }
                    if !matches!(message, Message::Unknown(_)) {
                        let mut again = BytesMut::new();
                        codec.encode(message, &mut again).unwrap();
                        prop_assert_eq!(&again[..], &before[..4 + len]);
                    }
                }
                Ok(None) => {
                    // Only an incomplete frame waits, and nothing is consumed.
                    if let Some(len) = declared {
                        prop_assert!(before.len() < 4 + len && len <= G.max_frame_len());
                    }
                    prop_assert_eq!(&buf[..], &before[..]);
                    break;
                }
                Err(e) => {
                    let len = declared.unwrap();
                    if len > G.max_frame_len() {
                        prop_assert!(matches!(e, WireError::FrameTooLong(l) if l == len), "{e}");
                    }
                    break;
                }
            }
        }
    }
}

#[test]
fn framed_pieces_are_the_bytes_of_encoded_piece_messages() {
    let blocks = [
        G.block(0, 0).unwrap(),
        G.block(0, 1).unwrap(),
        G.block(9, 0).unwrap(),
    ];
    let mut framed = BytesMut::from(&b"before"[..]);
    for (n, slice) in frame_pieces(&mut framed, &blocks).into_iter().enumerate() {
        slice.fill(n as u8 + 1);
    }
    let mut encoded = BytesMut::from(&b"before"[..]);
    for (n, block) in blocks.iter().enumerate() {
        let data = Bytes::from(vec![n as u8 + 1; block.length as usize]);
        MessageCodec::new(G)
            .encode(
                Message::Piece {
                    index: block.index,
                    begin: block.begin,
                    data,
                },
                &mut encoded,
            )
            .unwrap();
    }
    assert_eq!(framed, encoded);
}
