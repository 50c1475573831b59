//! Hostile peers against `peer download MAGNET`, on loopback: a stated
//! metadata size of 1 GiB, extended messages with broken bencode, metadata
//! pieces of the wrong size, and metadata that fails the info-hash. Each
//! loses its own connection; beside an honest seeder the download
//! completes, and with only liars it fails with a clear error.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::{
    extension::{
        handshake::{ExtHandshake, UT_METADATA},
        metadata::{MetadataMessage, PIECE_LEN},
    },
    wire::{Handshake, HANDSHAKE_LEN},
    InfoHash, Metainfo, PeerId,
};
use integration::{
    net::wait_for,
    peer_info,
    peers::{download, Fixture},
    raw::metainfo,
    sha1_file,
};

#[derive(Clone, Copy, Debug)]
enum Lie {
    /// States a metadata size of 1 GiB.
    HugeSize,
    /// Its extension handshake is not bencode.
    BrokenBencode,
    /// Answers each request with a piece 100 bytes too short.
    WrongLength,
    /// Answers each request with garbage of the right length.
    WrongBytes,
}

/// A peer that speaks the extension protocol and lies as told. It counts
/// the metadata requests it gets and notes when our peer closed on it.
struct Liar {
    addr: SocketAddr,
    asked: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Liar {
    fn start(lie: Lie, info_hash: InfoHash, metadata_size: usize) -> Liar {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let asked = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, c, s) = (asked.clone(), closed.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            // Only the first connection (the metadata fetch) is watched.
            let mut first = true;
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (a, c) = (a.clone(), c.clone());
                        let watched = std::mem::take(&mut first);
                        std::thread::spawn(move || {
                            let closed_by_peer = lie_on(stream, lie, info_hash, metadata_size, &a);
                            if watched && closed_by_peer {
                                c.store(true, Ordering::Relaxed);
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Liar {
            addr,
            asked,
            closed,
            stop,
        }
    }
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn extended(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = ((2 + payload.len()) as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&[20, id]);
    frame.extend_from_slice(payload);
    frame
}

/// Plays `lie` on one connection; true when our peer closed it.
fn lie_on(
    mut stream: TcpStream,
    lie: Lie,
    info_hash: InfoHash,
    size: usize,
    asked: &AtomicUsize,
) -> bool {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut theirs = [0u8; HANDSHAKE_LEN];
    if stream.read_exact(&mut theirs).is_err() {
        return true;
    }
    let ours = Handshake::new(info_hash, PeerId(*b"-LI0001-metadataliar")).with_extensions(true);
    let handshake = match lie {
        Lie::BrokenBencode => b"d1:md11:ut_metadatai3e".to_vec(),
        _ => ExtHandshake {
            extensions: vec![(UT_METADATA.to_owned(), 3)],
            metadata_size: Some(match lie {
                Lie::HugeSize => 1 << 30,
                _ => size as u64,
            }),
            ..ExtHandshake::default()
        }
        .encode(),
    };
    let _ = stream.write_all(&ours.encode());
    let _ = stream.write_all(&extended(0, &handshake));
    // Read frames; answer ut_metadata requests (sent to our id 3) with lies.
    let mut buffer = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
        while buffer.len() >= 4 {
            let len = u32::from_be_bytes(buffer[..4].try_into().unwrap()) as usize;
            if buffer.len() < 4 + len {
                break;
            }
            let frame: Vec<u8> = buffer.drain(..4 + len).skip(4).collect();
            if frame.len() < 2 || frame[0] != 20 || frame[1] != 3 {
                continue;
            }
            let Ok(MetadataMessage::Request { piece }) = MetadataMessage::decode(&frame[2..])
            else {
                continue;
            };
            asked.fetch_add(1, Ordering::Relaxed);
            let start = piece as usize * PIECE_LEN;
            let len = (size - start).min(PIECE_LEN);
            let data = match lie {
                Lie::WrongLength => vec![0x5a; len - 100],
                _ => vec![0x5a; len],
            };
            let reply = MetadataMessage::Data {
                piece,
                total_size: size as u64,
                data: data.into(),
            };
            // Our peer numbered its ut_metadata 1 (its handshake's `m`).
            if stream.write_all(&extended(1, &reply.encode())).is_err() {
                return true;
            }
        }
    }
}

/// A TCP relay to `upstream` that holds each connection `delay` before
/// relaying it, so the liars are surely heard before the honest peer. It
/// relays at most 16 connections, and none after two minutes.
fn delayed_relay(upstream: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut count = 0;
        while count < 16 && Instant::now() < deadline {
            let Ok((client, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            count += 1;
            std::thread::spawn(move || {
                client.set_nonblocking(false).unwrap();
                std::thread::sleep(delay);
                let Ok(server) = TcpStream::connect(upstream) else {
                    return;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                    let _ = s2.shutdown(std::net::Shutdown::Write);
                });
                let (mut c, mut s) = (client, server);
                let _ = std::io::copy(&mut s, &mut c);
                let _ = c.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

/// 1,024 pieces of 16 KiB: a 20 KiB info dictionary, two metadata pieces.
fn fixture() -> (Fixture, Metainfo) {
    let fixture = Fixture::new("16M", 16 * 1024, &[]);
    let meta = metainfo(&fixture);
    assert!(
        meta.raw_info().len() > PIECE_LEN,
        "two metadata pieces at least"
    );
    (fixture, meta)
}

#[test]
fn liars_lose_their_connections_and_the_download_completes_from_the_honest_seeder() {
    let (fixture, meta) = fixture();
    let size = meta.raw_info().len();
    let liars: Vec<(Lie, Liar)> = [
        Lie::HugeSize,
        Lie::BrokenBencode,
        Lie::WrongLength,
        Lie::WrongBytes,
    ]
    .into_iter()
    .map(|lie| (lie, Liar::start(lie, meta.info_hash, size)))
    .collect();
    let _seeder = fixture.seed(&[]);
    let honest = wait_for("the seeder to announce", Duration::from_secs(20), || {
        let swarm = fixture.tracker.swarm(&fixture.info_hash)?;
        swarm["peers"].as_array()?.first()?["address"]
            .as_str()
            .map(str::to_owned)
    });
    // The liars answer at once; the honest seeder only after 1.5 s.
    let honest = delayed_relay(honest.parse().unwrap(), Duration::from_millis(1500));
    let mut link = format!("magnet:?xt=urn:btih:{}", fixture.info_hash);
    for (_, liar) in &liars {
        link.push_str(&format!("&x.pe={}", liar.addr));
    }
    link.push_str(&format!("&x.pe={honest}"));
    let out = fixture.out("ours");
    let mut ours = download(&link, &out, &[]);
    let summary = ours.json_line(Duration::from_secs(60));
    assert_eq!(summary["hash_failures"], 0);
    assert_eq!(
        sha1_file(&out.join("payload.bin")),
        sha1_file(&fixture.payload)
    );
    assert_eq!(
        peer_info(&out.join("payload.bin.torrent"))["info_hash"],
        fixture.info_hash.as_str()
    );
    // Each liar was dropped for its own lie, before the honest seeder was
    // heard: those lying in their handshake unasked, the others once asked.
    let log = ours.log();
    let reasons = [
        "over the limit",
        "extended message",
        "bytes, expected",
        "fails the info-hash",
    ];
    for ((lie, liar), why) in liars.iter().zip(reasons) {
        assert!(
            liar.closed.load(Ordering::Relaxed),
            "{lie:?}: the connection stayed open"
        );
        let asked = liar.asked.load(Ordering::Relaxed);
        match lie {
            Lie::HugeSize | Lie::BrokenBencode => assert_eq!(asked, 0, "{lie:?} was asked"),
            Lie::WrongLength | Lie::WrongBytes => assert!(asked > 0, "{lie:?} was not asked"),
        }
        assert!(
            log.lines()
                .any(|l| l.contains(&format!("addr={}", liar.addr)) && l.contains(why)),
            "{lie:?} ({}) not dropped for `{why}`; log:\n{log}",
            liar.addr
        );
    }
}

#[test]
fn with_only_liars_the_download_fails_clearly_after_asking_each() {
    let (fixture, meta) = fixture();
    let size = meta.raw_info().len();
    let liars: Vec<Liar> = [Lie::WrongLength, Lie::WrongBytes]
        .into_iter()
        .map(|lie| Liar::start(lie, meta.info_hash, size))
        .collect();
    let link = format!(
        "magnet:?xt=urn:btih:{}&x.pe={}&x.pe={}",
        fixture.info_hash, liars[0].addr, liars[1].addr
    );
    let out = fixture.out("ours");
    let mut ours = download(&link, &out, &[]);
    let status = wait_for("the download to give up", Duration::from_secs(60), || {
        ours.process.0.try_wait().unwrap()
    });
    let log = ours.log();
    assert_eq!(status.code(), Some(5), "a network failure; log:\n{log}");
    assert!(
        log.contains("none of the 2 peers tried could send the metadata"),
        "{log}"
    );
    for liar in &liars {
        assert!(
            liar.asked.load(Ordering::Relaxed) > 0,
            "each liar was asked"
        );
        assert!(liar.closed.load(Ordering::Relaxed), "and closed on");
    }
    // Each was dropped for its own lie.
    for (liar, why) in liars.iter().zip(["bytes, expected", "fails the info-hash"]) {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("addr={}", liar.addr)) && l.contains("dropped"));
        assert!(
            line.is_some_and(|l| l.contains(why)),
            "{} not dropped for `{why}`; log:\n{log}",
            liar.addr
        );
    }
    assert!(
        !out.join("payload.bin.torrent").exists(),
        "no torrent is saved from metadata that failed"
    );
}
