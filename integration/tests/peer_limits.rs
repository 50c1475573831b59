//! The limits a user sets on our peer, each checked from outside, on
//! loopback: `--max-peers` (a peer over the limit is refused until one
//! leaves), `--unchoke-slots` (no more peers unchoked than slots), and the
//! accuracy of `--max-upload-rate` and `--max-download-rate`, which the
//! study's local mode relies on to shape its links.

use std::time::{Duration, Instant};

use common::wire::{Geometry, Message};
use integration::{
    net::wait_for,
    peers::Fixture,
    raw::{metainfo, seeder_addr, RawPeer, Received},
    sha1_file,
};

const MIB: u64 = 1 << 20;

#[test]
fn a_seeder_with_max_peers_2_refuses_a_third_peer_until_one_leaves() {
    let fixture = Fixture::new("1M", 64 * 1024, &[]);
    let _seeder = fixture.seed(&["--max-peers", "2"]);
    let addr = seeder_addr(&fixture);
    let meta = metainfo(&fixture);
    let geometry = Geometry::of(&meta.info);
    let taken = |id: u8| {
        let mut peer = RawPeer::connect(addr, meta.info_hash, id).with_geometry(geometry);
        // The bitfield comes only once the seeder has taken the peer.
        peer.expect("the seeder's bitfield", |m| {
            matches!(m, Message::Bitfield(_))
        });
        peer
    };
    let first = taken(1);
    let _second = taken(2);
    // The third is closed: before the handshake (the accept loop is full) or
    // right after it, without a bitfield.
    if let Ok(third) = RawPeer::try_connect(addr, meta.info_hash, 3) {
        let mut third = third.with_geometry(geometry);
        match third.receive_within(Duration::from_secs(5)) {
            Received::Closed => {}
            other => panic!("a third peer with --max-peers 2 got {other:?}, not a close"),
        }
    }
    // A limit, not a dead listener: once a peer leaves, a new one is taken.
    drop(first);
    wait_for(
        "a new peer to be taken after one left",
        Duration::from_secs(10),
        || {
            let peer = RawPeer::try_connect(addr, meta.info_hash, 4).ok()?;
            let mut peer = peer.with_geometry(geometry);
            matches!(
                peer.receive_within(Duration::from_secs(1)),
                Received::Message(Message::Bitfield(_))
            )
            .then_some(())
        },
    );
}

/// The same option on `download`: with two seeders, each upload-limited so
/// that a leecher free to use both would, `--max-peers 1` gets the file from one.
#[test]
fn a_leecher_with_max_peers_1_downloads_from_one_of_two_seeders() {
    let fixture = Fixture::new("4M", 256 * 1024, &[]);
    let _seeders = [
        fixture.seed(&["--max-upload-rate", "2M"]),
        fixture.seed(&["--max-upload-rate", "2M"]),
    ];
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 2, Duration::from_secs(20));
    let out = fixture.out("leecher");
    let summary = fixture
        .download(&out, &["--max-peers", "1"])
        .json_line(Duration::from_secs(60));
    assert_eq!(
        sha1_file(&out.join("payload.bin")),
        sha1_file(&fixture.payload)
    );
    assert_eq!(
        summary["peers"], 1,
        "peers that sent data with --max-peers 1: {summary}"
    );
}

#[test]
fn a_seeder_with_one_unchoke_slot_unchokes_one_of_three_interested_peers() {
    let fixture = Fixture::new("1M", 64 * 1024, &[]);
    let _seeder = fixture.seed(&["--unchoke-slots", "1"]);
    let addr = seeder_addr(&fixture);
    let meta = metainfo(&fixture);
    let geometry = Geometry::of(&meta.info);
    let mut peers: Vec<RawPeer> = (1..=3)
        .map(|id| {
            let mut peer = RawPeer::connect(addr, meta.info_hash, id).with_geometry(geometry);
            peer.expect("the seeder's bitfield", |m| {
                matches!(m, Message::Bitfield(_))
            });
            peer
        })
        .collect();
    for peer in &mut peers {
        peer.send(Message::Interested);
    }
    // Every peer starts choked; follow each one's choke state for a few
    // seconds (a choking round may move the slot: the last word counts).
    let mut unchoked = [false; 3];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        for (peer, state) in peers.iter_mut().zip(&mut unchoked) {
            match peer.receive_within(Duration::from_millis(50)) {
                Received::Message(Message::Unchoke) => *state = true,
                Received::Message(Message::Choke) => *state = false,
                Received::Message(_) | Received::Silent => {}
                Received::Closed => panic!("the seeder closed an interested peer"),
            }
        }
    }
    assert_eq!(
        unchoked.iter().filter(|&&u| u).count(),
        1,
        "peers unchoked with --unchoke-slots 1: {unchoked:?}"
    );
}

/// Our leecher's time for `size` bytes through one limited side: the token
/// bucket lets at most `burst + rate × t` bytes through in `t` seconds (its
/// burst is a tenth of a second of the rate, at least 64 KiB: `peer/src/rate.rs`),
/// so the download cannot take less than `(size - burst) / rate`, whatever
/// the load; it may take longer on busy cores, so the upper bound is loose.
fn assert_rate_limited(seconds: f64, size: u64, rate: u64) {
    let burst = (rate / 10).max(64 * 1024);
    let floor = (size - burst) as f64 / rate as f64;
    let ceiling = 1.5 * size as f64 / rate as f64 + 3.0;
    println!(
        "{size} bytes at a limit of {rate} B/s took {seconds:.2} s ({:.0} B/s); bounds {floor:.2}..{ceiling:.2} s",
        size as f64 / seconds
    );
    assert!(
        seconds >= floor,
        "{seconds:.2} s: faster than the limit allows ({floor:.2} s at least)"
    );
    assert!(
        seconds <= ceiling,
        "{seconds:.2} s: far slower than the limit ({ceiling:.2} s at most)"
    );
}

/// One limited transfer of 6 MiB at 2 MiB/s: the seeder gets `seeder_args`,
/// the leecher `leecher_args`. Returns the leecher's own download time.
fn limited_transfer(seeder_args: &[&str], leecher_args: &[&str]) -> f64 {
    let fixture = Fixture::new("6M", 256 * 1024, &[]);
    let _seeder = fixture.seed(seeder_args);
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 1, Duration::from_secs(20));
    let out = fixture.out("leecher");
    let summary = fixture
        .download(&out, leecher_args)
        .json_line(Duration::from_secs(60));
    assert_eq!(summary["bytes"], 6 * MIB);
    assert_eq!(
        sha1_file(&out.join("payload.bin")),
        sha1_file(&fixture.payload)
    );
    summary["seconds"].as_f64().unwrap()
}

#[test]
fn the_upload_limit_holds_the_seeder_to_its_rate() {
    let seconds = limited_transfer(&["--max-upload-rate", "2M"], &[]);
    assert_rate_limited(seconds, 6 * MIB, 2 * MIB);
}

#[test]
fn the_download_limit_holds_the_leecher_to_its_rate() {
    let seconds = limited_transfer(&[], &["--max-download-rate", "2M"]);
    assert_rate_limited(seconds, 6 * MIB, 2 * MIB);
}
