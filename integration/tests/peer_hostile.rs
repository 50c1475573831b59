//! Our seeder's listener under well-formed but hostile load (issue 16): 500
//! connections that send the first 4 bytes of a handshake and stop, held
//! open while an honest leecher downloads 8 MiB. The leecher must finish
//! within twice its time without the flood, measured first in the same
//! test, plus 1 s; the flood's connections are closed by the handshake
//! deadline; and the seeder says once that its limits bite.
//!
//! The flood comes from many loopback addresses (127.0.1.1 to 127.0.1.225,
//! two each), so the per-address limit alone cannot shed it and the cap on
//! handshakes in progress is what is tested, and 50 connections more from
//! one address (127.0.0.2) show the per-address limit. The leecher dials
//! from 127.0.0.1.

use std::{
    io::{ErrorKind, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use integration::{net::wait_for, peers::Fixture, raw::seeder_addr, sha1_file};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const MIB: u64 = 1 << 20;
/// Flood connections spread over many addresses, two from each.
const SPREAD: usize = 450;
/// Flood connections from one address.
const ONE_ADDRESS: usize = 50;
const ONE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The seeder's defaults (DESIGN.md, "Accepting peers"): handshakes in
/// progress at once, connections per address, the handshake deadline.
const MAX_HANDSHAKES: usize = 64;
const MAX_PER_IP: usize = 3;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to `to` from the loopback address `source`.
fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SockAddr::from(SocketAddr::from((source, 0))))?;
    socket.connect_timeout(&SockAddr::from(to), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// Whether the other side has not closed `stream` (nothing to read yet).
fn is_open(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::WouldBlock => true,
        Err(_) => false, // reset
    }
}

fn open_count(flood: &[TcpStream]) -> usize {
    flood.iter().filter(|s| is_open(s)).count()
}

/// A fresh `peer download` of the fixture; its wall time, checked by SHA-1.
fn timed_download(fixture: &Fixture, name: &str) -> f64 {
    let out = fixture.out(name);
    let started = Instant::now();
    let summary = fixture
        .download(&out, &[])
        .json_line(Duration::from_secs(60));
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(summary["bytes"], 8 * MIB, "{name}: {summary}");
    assert_eq!(
        sha1_file(&out.join("payload.bin")),
        sha1_file(&fixture.payload),
        "{name}: the download differs from the payload"
    );
    seconds
}

#[test]
fn half_open_handshakes_neither_hold_up_an_honest_leecher_nor_stay() {
    let fixture = Fixture::new("8M", 256 * 1024, &[]);
    let mut seeder = fixture.seed_logging(&[], "peer=info");
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 1, Duration::from_secs(20));
    let addr = seeder_addr(&fixture);

    let unloaded = timed_download(&fixture, "unloaded");

    // The flood, one address last, so none of its connections is among
    // those the spread ones push out.
    let flood_started = Instant::now();
    let sources = (0..SPREAD)
        .map(|i| Ipv4Addr::new(127, 0, 1, 1 + (i / 2) as u8))
        .chain(std::iter::repeat_n(ONE, ONE_ADDRESS));
    let flood: Vec<TcpStream> = sources
        .map(|source| {
            let mut stream = connect_from(source, addr)
                .unwrap_or_else(|e| panic!("connect from {source} to {addr}: {e}"));
            stream.write_all(b"\x13Bit").unwrap(); // 4 of a handshake's 68 bytes
            stream
        })
        .collect();
    // Once the seeder has taken them all in, it holds at most one flood
    // connection per handshake slot, and at most --max-per-ip of those from
    // 127.0.0.2; a listener that held every one would fail here.
    let (held, held_from_one) = wait_for(
        &format!(
            "the seeder to hold at most {MAX_HANDSHAKES} flood connections, \
             at most {MAX_PER_IP} from {ONE}"
        ),
        Duration::from_secs(10),
        || {
            let held = (open_count(&flood), open_count(&flood[SPREAD..]));
            (held.0 <= MAX_HANDSHAKES && held.1 <= MAX_PER_IP).then_some(held)
        },
    );

    let loaded = timed_download(&fixture, "loaded");
    println!(
        "8 MiB: {unloaded:.2} s alone, {loaded:.2} s under {} half-open handshakes \
         ({held} held open by the seeder, {held_from_one} of them from {ONE})",
        SPREAD + ONE_ADDRESS
    );
    assert!(
        loaded <= 2.0 * unloaded + 1.0,
        "the download took {loaded:.2} s under the flood, {unloaded:.2} s without"
    );

    // The deadline counts from accept: the flood is all closed soon after it.
    let deadline = flood_started + HANDSHAKE_TIMEOUT + Duration::from_secs(3);
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    let left = open_count(&flood);
    assert_eq!(
        left,
        0,
        "{left} flood connections still open {:.1} s after the flood began",
        flood_started.elapsed().as_secs_f64()
    );

    let log = seeder.log();
    for (says, what) in [
        ("handshake slots are full", "the cap on handshakes"),
        ("over --max-per-ip", "the per-address limit"),
    ] {
        assert_eq!(
            log.matches(says).count(),
            1,
            "{what} biting is said once; log:\n{log}"
        );
    }
    let status = seeder.terminate(Duration::from_secs(15));
    assert!(status.success(), "seeder exit: {status}");
}
