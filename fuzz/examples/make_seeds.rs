//! Writes the generated seed inputs of the fuzz targets into `fuzz/seeds/`:
//! real torrents (the fixtures and the 1 GiB seed's torrent), and handshakes,
//! message streams, announce queries and tracker replies made by the codecs
//! themselves. The announce queries real clients send are captured separately
//! by `fuzz/capture_announces.py`.
//!
//! Run from the repository root: `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`.

use std::{fs, net::SocketAddr, path::Path};

use bytes::{Bytes, BytesMut};
use common::{
    bitfield::Bitfield,
    extension::{handshake::ExtHandshake, metadata::MetadataMessage, pex::PexMessage},
    tracker_proto::{
        encode_failure, response::encode_scrape, udp, AnnounceEvent, AnnounceRequest, AnnounceResponse,
        PeerEntry, ScrapeStats,
    },
    wire::{BlockRef, Geometry, Handshake, Message, MessageCodec},
    InfoHash, Metainfo, PeerId,
};
use tokio_util::codec::Encoder;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let seeds = root.join("fuzz/seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = seeds.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(name), bytes)
    };

    // Torrents: every fixture, the 1 GiB seed's torrent, and the same files
    // rewritten by `to_bytes` (keys sorted, unknown keys kept).
    let mut torrents = vec![(
        "seed-1g.torrent".to_owned(),
        root.join("torrents/seed-1g.torrent"),
    )];
    for entry in fs::read_dir(root.join("torrents/fixtures"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "torrent") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            torrents.push((name, path));
        }
    }
    for (name, path) in torrents {
        let bytes = fs::read(&path)?;
        write("metainfo", &name, &bytes)?;
        write("bencode", &name, &bytes)?;
        let torrent = Metainfo::from_bytes(&bytes).expect("the committed torrents are valid");
        write(
            "metainfo",
            &format!("rewritten-{name}"),
            &torrent.to_bytes(),
        )?;
    }
    // Bencode at the edges of the check: deepest legal nesting, one level
    // more, unsorted keys, the extreme integers, a huge length prefix.
    let deepest = [
        vec![b'l'; common::bencode::MAX_DEPTH],
        vec![b'e'; common::bencode::MAX_DEPTH],
    ]
    .concat();
    write("bencode", "deepest-list", &deepest)?;
    write(
        "bencode",
        "too-deep",
        &[b"l".as_slice(), &deepest, b"e"].concat(),
    )?;
    write(
        "bencode",
        "unsorted-dict",
        b"d1:b0:1:ad1:xli-9223372036854775808ei9223372036854775807eeee",
    )?;
    write("bencode", "huge-length-prefix", b"d4:info99999999999:xe")?;

    // Handshakes: Transmission's, aria2's and ours, with extension bits.
    let hash = InfoHash::from_hex("036aefd5903ba713f41d367b33b7fe9c60dc626d").unwrap();
    for (name, id, reserved) in [
        (
            "transmission",
            b"-TR3000-0123456789ab",
            [0, 0, 0, 0, 0, 0x10, 0, 0x05],
        ),
        (
            "aria2",
            b"A2-1-37-0-0123456789",
            [0, 0, 0, 0, 0, 0x10, 0, 0x04],
        ),
        ("ours", b"-PR0100-abcdefghijkl", [0; 8]),
    ] {
        let mut handshake = Handshake::new(hash, PeerId(*id));
        handshake.reserved = reserved;
        write("handshake", name, &handshake.encode())?;
    }

    // Message streams: a 7-byte header (geometry, number of cuts) and the
    // stream, as the wire_codec target reads them.
    let geometry = Geometry {
        piece_length: 32768,
        total_length: 9 * 32768 + 1000,
        piece_count: 10,
    };
    let header = |cuts: &[u16]| {
        let mut h = Vec::new();
        h.extend_from_slice(&((geometry.piece_length - 1) as u16).to_be_bytes());
        h.extend_from_slice(&((geometry.piece_count - 1) as u16).to_be_bytes());
        h.extend_from_slice(&999u16.to_be_bytes());
        h.push(cuts.len() as u8);
        for cut in cuts {
            h.extend_from_slice(&cut.to_be_bytes());
        }
        h
    };
    let mut codec = MessageCodec::new(geometry);
    let stream = |messages: Vec<Message>, codec: &mut MessageCodec| {
        let mut buf = BytesMut::new();
        for m in messages {
            codec.encode(m, &mut buf).unwrap();
        }
        buf.to_vec()
    };
    let mut field = Bitfield::new(10);
    field.set(0);
    field.set(9);
    let block = BlockRef {
        index: 1,
        begin: 16384,
        length: 16384,
    };
    let every = vec![
        Message::KeepAlive,
        Message::Bitfield(field),
        Message::Interested,
        Message::Unchoke,
        Message::Request(block),
        Message::Cancel(block),
        Message::Have(9),
        Message::Piece {
            index: 9,
            begin: 0,
            data: Bytes::from(vec![0xa5; 1000]),
        },
        Message::Port(6881),
        Message::Choke,
        Message::NotInterested,
    ];
    let every = stream(every, &mut codec);
    write(
        "wire_codec",
        "every-message",
        &[header(&[]), every.clone()].concat(),
    )?;
    write(
        "wire_codec",
        "every-message-cut",
        &[header(&[3, 5, 17, 40]), every].concat(),
    )?;
    let full_block = stream(
        vec![Message::Piece {
            index: 1,
            begin: 16384,
            data: Bytes::from(vec![1; 16384]),
        }],
        &mut codec,
    );
    write(
        "wire_codec",
        "full-block",
        &[header(&[2, 9, 8000]), full_block].concat(),
    )?;
    // An extension message (BEP 10 id 20) is skipped as Unknown.
    let extended = [&[0, 0, 0, 6, 20, 0][..], b"d1:ee"].concat();
    write(
        "wire_codec",
        "extension-message",
        &[header(&[]), extended].concat(),
    )?;
    write(
        "wire_codec",
        "huge-prefix",
        &[header(&[1]), vec![0x7f, 0xff, 0xff, 0xff, 7]].concat(),
    )?;

    // Announce queries as our client writes them; real clients' queries come
    // from capture_announces.py.
    let request = AnnounceRequest {
        info_hash: hash,
        peer_id: PeerId(*b"-PR0100-abcdefghijkl"),
        port: 6881,
        uploaded: 0,
        downloaded: 16384,
        left: 1 << 30,
        event: AnnounceEvent::Started,
        compact: true,
        no_peer_id: false,
        numwant: Some(50),
        key: Some("a1b2c3".into()),
        ip: Some("::ffff:10.0.0.1".parse().unwrap()),
    };
    write(
        "tracker_query",
        "ours-started",
        request.to_query().as_bytes(),
    )?;
    let stopped = AnnounceRequest {
        event: AnnounceEvent::Stopped,
        compact: false,
        no_peer_id: true,
        numwant: None,
        key: None,
        ip: None,
        ..request
    };
    write(
        "tracker_query",
        "ours-stopped",
        stopped.to_query().as_bytes(),
    )?;
    let scrape = format!(
        "info_hash={}&info_hash={}",
        common::tracker_proto::escape(&hash.0),
        common::tracker_proto::escape(&[0xff; 20])
    );
    write("tracker_query", "scrape-two", scrape.as_bytes())?;

    // Tracker replies: compact with IPv4 and IPv6 peers, dictionaries with
    // ids, a failure, a scrape.
    let peer = |addr: &str, id: u8| PeerEntry {
        addr: addr.parse::<SocketAddr>().unwrap(),
        peer_id: Some(PeerId([id; 20])),
    };
    let response = AnnounceResponse {
        interval: 120,
        min_interval: Some(60),
        complete: 1,
        incomplete: 2,
        peers: vec![
            peer("10.0.0.1:6881", b'a'),
            peer("[2001:db8::1]:51413", b'b'),
        ],
        warning: Some("slow down".into()),
    };
    write("tracker_response", "compact", &response.encode(true, false))?;
    write(
        "tracker_response",
        "dictionaries",
        &response.encode(false, false),
    )?;
    write(
        "tracker_response",
        "failure",
        &encode_failure("unregistered torrent"),
    )?;
    let mut files = vec![(
        hash,
        ScrapeStats {
            complete: 1,
            downloaded: 5,
            incomplete: 2,
        },
    )];
    write("tracker_response", "scrape", &encode_scrape(&mut files))?;

    // Extension messages (BEP 10, 9, 11): ours, and libtorrent's handshake
    // as it is on the wire.
    let ours = ExtHandshake {
        extensions: vec![("ut_metadata".into(), 1), ("ut_pex".into(), 2)],
        client: Some("peer 0.1.0".into()),
        listen_port: Some(6881),
        reqq: Some(1024),
        metadata_size: Some(31_235),
        your_ip: Some("127.0.0.1".parse().unwrap()),
    };
    write("ext_handshake", "ours", &ours.encode())?;
    write(
        "ext_handshake",
        "libtorrent",
        b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei1234e1:pi6881e4:reqqi500e11:upload_onlyi0e1:v18:libtorrent/2.0.8.06:yourip4:\x7f\x00\x00\x01e",
    )?;
    write("ut_metadata", "request", &MetadataMessage::Request { piece: 1 }.encode())?;
    write("ut_metadata", "reject", &MetadataMessage::Reject { piece: 0 }.encode())?;
    let piece = MetadataMessage::Data {
        piece: 1,
        total_size: 20_000,
        data: Bytes::from(vec![b'x'; 20_000 - 16_384]),
    };
    write("ut_metadata", "data", &piece.encode())?;
    let pex = PexMessage {
        added: vec![
            ("127.0.0.2:6881".parse().unwrap(), 0x12),
            ("[::1]:51413".parse().unwrap(), 0x01),
        ],
        dropped: vec!["127.0.0.3:6881".parse().unwrap()],
    };
    write("ut_pex", "both-families", &pex.encode())?;

    // UDP tracker packets (BEP 15): each request, one with BEP 41 URL data,
    // and each reply; a reply seed's first byte says the family (1: IPv6).
    let announce = udp::Announce {
        connection_id: 0x1234,
        transaction_id: 7,
        info_hash: InfoHash([0xab; 20]),
        peer_id: PeerId(*b"-PE0001-abcdefghijkl"),
        downloaded: 1,
        left: 2,
        uploaded: 3,
        event: AnnounceEvent::Started,
        ip: None,
        key: 9,
        num_want: Some(50),
        port: 6881,
        url_data: b"/announce?passkey=1".to_vec(),
    };
    let requests = [
        ("connect", udp::Request::Connect { transaction_id: 1 }),
        ("announce", udp::Request::Announce(announce)),
        (
            "scrape",
            udp::Request::Scrape {
                connection_id: 0x1234,
                transaction_id: 2,
                info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
            },
        ),
    ];
    for (name, request) in requests {
        let mut bytes = Vec::new();
        request.encode(&mut bytes);
        write("udp_request", name, &bytes)?;
    }
    let v4: SocketAddr = "127.0.0.2:6881".parse().unwrap();
    let v6: SocketAddr = "[::1]:6881".parse().unwrap();
    let announce_reply = |peers| udp::Response::Announce {
        transaction_id: 3,
        interval: 120,
        leechers: 1,
        seeders: 2,
        peers,
    };
    let replies = [
        ("connect", 0u8, udp::Response::Connect { transaction_id: 1, connection_id: 5 }),
        ("announce-v4", 0, announce_reply(vec![v4, v4])),
        ("announce-v6", 1, announce_reply(vec![v6])),
        (
            "scrape",
            0,
            udp::Response::Scrape {
                transaction_id: 4,
                stats: vec![ScrapeStats { complete: 1, downloaded: 2, incomplete: 3 }],
            },
        ),
        ("error", 0, udp::Response::Error { transaction_id: 5, message: "unregistered torrent".into() }),
    ];
    for (name, family, reply) in replies {
        let mut bytes = vec![family];
        reply.encode(&mut bytes);
        write("udp_response", name, &bytes)?;
    }

    // KRPC (BEP 5): the BEP's own examples of each query and reply, and an error.
    let krpc: [(&str, &[u8]); 6] = [
        ("ping", b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"),
        ("find-node", b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe"),
        ("announce", b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe"),
        ("values", b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re"),
        ("nodes", b"d1:rd2:id20:0123456789abcdefghij5:nodes26:mnopqrstuvwxyz123456\x7f\0\0\x01\x1a\xe1e1:t2:aa1:y1:re"),
        ("error", b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee"),
    ];
    for (name, bytes) in krpc {
        write("krpc", name, bytes)?;
    }
    // The DHT node's state file: an IPv4 and an IPv6 node.
    let state = common::krpc::state::State {
        id: common::krpc::NodeId([3; 20]),
        nodes: vec![
            common::krpc::NodeInfo {
                id: common::krpc::NodeId([4; 20]),
                addr: "127.0.0.2:6881".parse().unwrap(),
            },
            common::krpc::NodeInfo {
                id: common::krpc::NodeId([5; 20]),
                addr: "[::1]:6882".parse().unwrap(),
            },
        ],
    };
    write("dht_state", "two-nodes", &state.encode())?;
    Ok(())
}
