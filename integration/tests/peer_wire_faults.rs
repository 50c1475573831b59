//! Hostile peers against our peer, on loopback: every malformed-message class
//! closes only the offending connection while a well-behaved one goes on,
//! and a peer that lies about its data is banned while the download completes
//! from honest peers.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::{BufMut, BytesMut};
use common::{
    bitfield::Bitfield,
    wire::{BlockRef, Geometry, Handshake, Message, MessageCodec},
    InfoHash, Metainfo, PeerId,
};
use integration::{
    net::{http_get, wait_for},
    peers::Fixture,
    sha1_file,
};
use tokio_util::codec::{Decoder, Encoder};

fn metainfo(fixture: &Fixture) -> Metainfo {
    Metainfo::from_bytes(&std::fs::read(&fixture.torrent).unwrap()).unwrap()
}

/// The seeder's listening address, from the tracker's view of the swarm.
fn seeder_addr(fixture: &Fixture) -> SocketAddr {
    wait_for("the seeder to announce", Duration::from_secs(20), || {
        let swarm = fixture.tracker.swarm(&fixture.info_hash)?;
        swarm["peers"].as_array()?.first()?["address"]
            .as_str()?
            .parse()
            .ok()
    })
}

/// A blocking wire-protocol client for tests.
struct RawPeer {
    stream: TcpStream,
    codec: MessageCodec,
    buffer: BytesMut,
}

impl RawPeer {
    fn connect(addr: SocketAddr, info_hash: InfoHash, id: u8) -> RawPeer {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(&Handshake::new(info_hash, PeerId([id; 20])).encode())
            .unwrap();
        let mut theirs = [0u8; 68];
        stream.read_exact(&mut theirs).unwrap();
        assert_eq!(Handshake::decode(&theirs).unwrap().info_hash, info_hash);
        RawPeer {
            stream,
            codec: MessageCodec::new(Geometry {
                piece_length: 0,
                total_length: 0,
                piece_count: 0,
            }),
            buffer: BytesMut::new(),
        }
    }

    fn with_geometry(mut self, geometry: Geometry) -> Self {
        self.codec = MessageCodec::new(geometry);
        self
    }

    fn send(&mut self, message: Message) {
        let mut out = BytesMut::new();
        self.codec.encode(message, &mut out).unwrap();
        self.stream.write_all(&out).unwrap();
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next message, or `None` once the other side has closed.
    fn receive(&mut self) -> Option<Message> {
        loop {
            if let Some(message) = self
                .codec
                .decode(&mut self.buffer)
                .expect("our peer sends valid messages")
            {
                return Some(message);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read failed (the peer neither answered nor closed): {e}"),
            }
        }
    }

    /// Reads until the other side closes; fails the test if it does not.
    fn expect_closed(&mut self, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if self.receive().is_none() {
                return;
            }
        }
        panic!("{what}: the connection stayed open");
    }
}

fn frame(id: u8, body: &[u8]) -> Vec<u8> {
    let mut out = ((1 + body.len()) as u32).to_be_bytes().to_vec();
    out.push(id);
    out.extend_from_slice(body);
    out
}

fn words(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

#[test]
fn each_malformed_message_closes_only_its_own_connection() {
    let fixture = Fixture::new("1M", 64 * 1024, &[]);
    let mut seeder = fixture.seed(&[]);
    let addr = seeder_addr(&fixture);
    let meta = metainfo(&fixture);
    let geometry = Geometry::of(&meta.info);

    // A well-behaved peer that stays connected throughout.
    let mut good = RawPeer::connect(addr, meta.info_hash, 200).with_geometry(geometry);
    assert!(matches!(good.receive(), Some(Message::Bitfield(f)) if f.is_complete()));

    let oversized = {
        let mut b = (1u32 << 24).to_be_bytes().to_vec();
        b.push(7);
        b
    };
    let mut spare_bits = vec![0xffu8; geometry.bitfield_len()];
    spare_bits.push(0);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("oversized length prefix", oversized),
        ("bitfield one byte short", frame(5, &[0xff])),
        ("bitfield one byte long", frame(5, &spare_bits)),
        ("have with an index out of range", frame(4, &words(&[16]))),
        ("request over 16 KiB", frame(6, &words(&[0, 0, 16385]))),
        (
            "request past the end of its piece",
            frame(6, &words(&[15, 65536 - 100, 16384])),
        ),
        (
            "request for a piece that does not exist",
            frame(6, &words(&[16, 0, 16384])),
        ),
        ("choke with a payload", frame(0, b"x")),
        (
            "piece outside its piece",
            frame(7, &[words(&[0, 65536]), vec![0; 10]].concat()),
        ),
        (
            "cancel of a zero-length block",
            frame(8, &words(&[0, 0, 0])),
        ),
    ];
    for (index, (what, bytes)) in cases.into_iter().enumerate() {
        let mut bad =
            RawPeer::connect(addr, meta.info_hash, index as u8 + 1).with_geometry(geometry);
        bad.send_raw(&bytes);
        bad.expect_closed(what);
    }

    // An encrypted (MSE) handshake starts with random bytes: closed cleanly.
    let mut encrypted = TcpStream::connect(addr).unwrap();
    encrypted
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    encrypted.write_all(&[0x8f; 96]).unwrap();
    let mut sink = Vec::new();
    let _ = encrypted.read_to_end(&mut sink);
    assert!(
        sink.len() <= 68,
        "only our handshake, at most, before closing"
    );

    // The good peer is still served: ask for a block and check it.
    good.send(Message::Interested);
    assert_eq!(good.receive(), Some(Message::Unchoke));
    good.send(Message::Request(BlockRef {
        index: 3,
        begin: 16384,
        length: 16384,
    }));
    match good.receive() {
        Some(Message::Piece {
            index: 3,
            begin: 16384,
            data,
        }) => {
            let payload = std::fs::read(&fixture.payload).unwrap();
            let start = 3 * 65536 + 16384;
            assert_eq!(&data[..], &payload[start..start + 16384]);
        }
        other => panic!("expected the block, got {other:?}"),
    }
    let status = seeder.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "the seeder survived every bad peer: {status}"
    );
}

/// A seeder that claims every piece and answers every request with garbage.
struct Liar {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Liar {
    fn start(meta: &Metainfo) -> Liar {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (connections, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let geometry = Geometry::of(&meta.info);
        let info_hash = meta.info_hash;
        let (count, stopping) = (connections.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while !stopping.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        std::thread::spawn(move || lie(stream, info_hash, geometry));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Liar {
            addr,
            connections,
            stop,
        }
    }
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn lie(mut stream: TcpStream, info_hash: InfoHash, geometry: Geometry) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut theirs = [0u8; 68];
    if stream.read_exact(&mut theirs).is_err() {
        return;
    }
    let _ = stream.write_all(&Handshake::new(info_hash, PeerId(*b"-LI0001-liarliarliar")).encode());
    let mut codec = MessageCodec::new(geometry);
    let mut out = BytesMut::new();
    codec
        .encode(
            Message::Bitfield(Bitfield::full(geometry.piece_count as usize)),
            &mut out,
        )
        .unwrap();
    let mut buffer = BytesMut::new();
    loop {
        if !out.is_empty() {
            if stream.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        let message = loop {
            match codec.decode(&mut buffer) {
                Ok(Some(m)) => break m,
                Ok(None) => {}
                Err(_) => return,
            }
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        match message {
            Message::Interested => codec.encode(Message::Unchoke, &mut out).unwrap(),
            Message::Request(b) => {
                let garbage = vec![0x5a; b.length as usize];
                out.put_slice(&frame(7, &[words(&[b.index, b.begin]), garbage].concat()));
            }
            _ => {}
        }
    }
}

#[test]
fn a_lying_peer_is_banned_and_the_download_completes_from_honest_peers() {
    let fixture = Fixture::new("4M", 64 * 1024, &[]);
    let meta = metainfo(&fixture);
    let liar = Liar::start(&meta);
    // The liar announces itself as a seeder, before the honest one.
    let escaped: String = meta
        .info_hash
        .0
        .iter()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let query = format!(
        "/announce?info_hash={escaped}&peer_id=-LI0001-liarliarliar&port={}&uploaded=0&downloaded=0&left=0&event=started",
        liar.addr.port()
    );
    assert_eq!(http_get(fixture.tracker.addr, &query).unwrap().0, 200);
    let _honest = fixture.seed(&["--max-upload-rate", "2M"]);
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 2, Duration::from_secs(20));

    let out = fixture.out("leecher");
    let mut leecher = fixture.download(&out, &[]);
    let summary = leecher.json_line(Duration::from_secs(60));
    assert_eq!(
        sha1_file(&out.join("payload.bin")),
        sha1_file(&fixture.payload),
        "the output is not corrupted"
    );
    assert!(
        summary["hash_failures"].as_u64().unwrap() >= 2,
        "the liar's pieces failed: {summary}"
    );
    let log = leecher.log();
    assert!(
        log.contains("banning peer") && log.contains(&liar.addr.to_string()),
        "liar not banned; log:\n{log}"
    );
    assert_eq!(
        liar.connections.load(Ordering::Relaxed),
        1,
        "a banned peer is never dialled again"
    );
}
