//! Hostile peers against our peer, on loopback: every malformed-message class
//! closes only the offending connection (while the valid form of the same
//! message, sent first on that connection, does not) and a well-behaved
//! connection goes on; an encrypted handshake is closed at once; a peer that
//! lies about its data is banned, never dialled again, and the download
//! completes from honest peers.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::{BufMut, BytesMut};
use common::{
    bitfield::Bitfield,
    wire::{BlockRef, Geometry, Handshake, Message, MessageCodec},
    InfoHash, Metainfo, PeerId,
};
use integration::{
    net::http_get,
    peers::Fixture,
    raw::{frame, metainfo, seeder_addr, words, RawPeer},
    sha1_file,
};
use tokio_util::codec::{Decoder, Encoder};

/// One malformed message, with the valid message of the same kind (if any)
/// that must not close the connection.
struct Case {
    what: &'static str,
    valid: Option<Vec<u8>>,
    bad: Vec<u8>,
}

#[test]
fn each_malformed_message_closes_only_its_own_connection() {
    let fixture = Fixture::new("1M", 64 * 1024, &[]);
    let mut seeder = fixture.seed(&[]);
    let addr = seeder_addr(&fixture);
    let meta = metainfo(&fixture);
    let geometry = Geometry::of(&meta.info);
    let payload = std::fs::read(&fixture.payload).unwrap();
    let probe = BlockRef {
        index: 3,
        begin: 16384,
        length: 16384,
    };

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
    let empty_bitfield = frame(5, &vec![0u8; geometry.bitfield_len()]);
    // The last block of the last piece: the valid edge of every range check.
    let last_block = frame(6, &words(&[15, 65536 - 16384, 16384]));
    let case = |what, valid: Option<Vec<u8>>, bad| Case { what, valid, bad };
    let cases = vec![
        // Every valid frame below is the counterpart of this one.
        case("oversized length prefix", None, oversized),
        case(
            "bitfield one byte short",
            Some(empty_bitfield.clone()),
            frame(5, &[0xff]),
        ),
        case(
            "bitfield one byte long",
            Some(empty_bitfield),
            frame(5, &spare_bits),
        ),
        case(
            "have with an index out of range",
            Some(frame(4, &words(&[15]))),
            frame(4, &words(&[16])),
        ),
        case(
            "request over 16 KiB",
            Some(frame(6, &words(&[0, 0, 16384]))),
            frame(6, &words(&[0, 0, 16385])),
        ),
        case(
            "request past the end of its piece",
            Some(last_block.clone()),
            frame(6, &words(&[15, 65536 - 100, 16384])),
        ),
        case(
            "request for a piece that does not exist",
            Some(last_block),
            frame(6, &words(&[16, 0, 16384])),
        ),
        case("choke with a payload", Some(frame(0, b"")), frame(0, b"x")),
        case(
            "piece outside its piece",
            Some(frame(
                7,
                &[words(&[0, 65536 - 16384]), vec![0; 16384]].concat(),
            )),
            frame(7, &[words(&[0, 65536]), vec![0; 10]].concat()),
        ),
        case(
            "cancel of a zero-length block",
            Some(frame(8, &words(&[0, 0, 16384]))),
            frame(8, &words(&[0, 0, 0])),
        ),
    ];
    for (index, case) in cases.into_iter().enumerate() {
        let mut bad =
            RawPeer::connect(addr, meta.info_hash, index as u8 + 1).with_geometry(geometry);
        bad.expect("the seeder's bitfield", |m| {
            matches!(m, Message::Bitfield(_))
        });
        bad.send(Message::Interested);
        bad.expect("an unchoke", |m| *m == Message::Unchoke);
        if let Some(valid) = &case.valid {
            bad.send_raw(valid);
            // Still served after the valid form: the connection is alive.
            let what = format!("a request after the valid form of \"{}\"", case.what);
            bad.fetch_block(&what, probe, geometry.piece_length, &payload);
        }
        bad.send_raw(&case.bad);
        bad.expect_closed(case.what);
    }

    // An encrypted (MSE) handshake starts with random bytes: closed at once,
    // not left to a timeout.
    let mut encrypted = TcpStream::connect(addr).unwrap();
    encrypted
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    encrypted.write_all(&[0x8f; 96]).unwrap();
    let mut sink = Vec::new();
    match encrypted.read_to_end(&mut sink) {
        // A reset is a close too: the peer closed with our bytes unread.
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("an encrypted handshake was not closed within 3 s: {e}"),
    }
    // We answer only a plaintext handshake: an MSE client must see the close
    // before any byte of ours, or it takes ours as a plaintext reply and never
    // retries (Transmission; see `peer_interop_dialled.rs`).
    assert!(
        sink.is_empty(),
        "nothing of ours before the close, got {} bytes",
        sink.len()
    );

    // The good peer is still served: ask for a block and check it.
    good.send(Message::Interested);
    assert_eq!(good.receive(), Some(Message::Unchoke));
    good.fetch_block(
        "the well-behaved peer's block",
        probe,
        geometry.piece_length,
        &payload,
    );
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
    /// When the first connection came.
    first: Arc<Mutex<Option<Instant>>>,
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
        let first = Arc::new(Mutex::new(None));
        let (count, stopping, first_at) = (connections.clone(), stop.clone(), first.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !stopping.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        first_at.lock().unwrap().get_or_insert_with(Instant::now);
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
            first,
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

/// How long our peer waits before dialling an address again
/// (`peer/src/bt/torrent.rs`: `REDIAL_AFTER`, 10 s, checked on a 2 s tick),
/// plus a margin: a window this long after the first dial would see a redial.
const REDIAL_WINDOW: Duration = Duration::from_secs(15);

#[test]
fn a_lying_peer_is_banned_never_redialled_and_the_download_completes_from_honest_peers() {
    let fixture = Fixture::new("4M", 64 * 1024, &[]);
    let meta = metainfo(&fixture);
    let liar = Liar::start(&meta);
    // The honest seeder announces first: a seeder's first announce gets the
    // seeders already there (the tracker cannot tell it from a magnet
    // leecher), and it would dial the liar too, which would count here.
    let _honest = fixture.seed(&["--max-upload-rate", "2M"]);
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 1, Duration::from_secs(20));
    // Then the liar announces itself as a seeder.
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
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 2, Duration::from_secs(20));

    // The leecher goes on seeding after it completes, so it keeps dialling
    // the peers it knows: without the ban it would dial the liar again.
    let out = fixture.out("leecher");
    let mut leecher = fixture.download(&out, &["--seed"]);
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
    let first = liar
        .first
        .lock()
        .unwrap()
        .expect("the leecher dialled the liar");
    let watched_until = first + REDIAL_WINDOW;
    while Instant::now() < watched_until {
        assert_eq!(
            liar.connections.load(Ordering::Relaxed),
            1,
            "a banned peer is never dialled again ({:?} after the first dial)",
            first.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(liar.connections.load(Ordering::Relaxed), 1);
    assert!(
        leecher.process.0.try_wait().unwrap().is_none(),
        "the leecher was still running (and dialling) throughout the window"
    );
}
