//! Our peer with the real clients from Debian's packages, through our tracker
//! on loopback, every file SHA-1 checked: Transmission and aria2c each seed to
//! our peer and download from it, and a multi-file torrent made by
//! transmission-create is downloaded from Transmission.

use std::{path::Path, process::Command, time::Duration};

use common::wire::{Geometry, Message};
use integration::{
    clients::{aria2, transmission},
    make_seed,
    net::{wait_for, Tracker},
    peer_info,
    peers::{Fixture, PeerProcess},
    raw::{metainfo, seeder_addr, RawPeer, Received},
    require_tool, run_ok, sha1_file, workspace_bin,
};

/// The tracker interval is short so that our seeder, which must dial
/// Transmission (Transmission ignores loopback peers from a tracker), learns
/// of it within seconds.
const TRACKER: &[&str] = &["--interval", "5"];

fn wait_until_identical(what: &str, got: &Path, expected: &Path) {
    let want = sha1_file(expected);
    wait_for(what, Duration::from_secs(120), || {
        (got.is_file() && sha1_file(got) == want).then_some(())
    });
}

/// Once a third-party seeder has announced, our peer downloads the payload;
/// the copy must be SHA-1 identical. Returns our JSON summary.
fn download_from_the_seeder(fixture: &Fixture) -> serde_json::Value {
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 1, Duration::from_secs(60));
    let out = fixture.out("ours");
    let summary = fixture
        .download(&out, &[])
        .json_line(Duration::from_secs(120));
    assert_eq!(summary["hash_failures"], 0);
    assert_eq!(
        sha1_file(&out.join("payload.bin")),
        sha1_file(&fixture.payload)
    );
    summary
}

#[test]
fn our_peer_downloads_from_transmission() {
    let fixture = Fixture::new("6M", 256 * 1024, TRACKER);
    let _transmission = transmission(
        &fixture.out("transmission"),
        &fixture.data,
        &fixture.torrent,
    );
    let summary = download_from_the_seeder(&fixture);
    assert_eq!(summary["peers"], 1);
}

#[test]
fn transmission_downloads_from_our_peer() {
    transmission_downloads_from_our_seeder(&[]);
}

/// A super-seeder shows its pieces a few at a time, with `have`s instead of a
/// bitfield: a standard client must still get the whole file from it alone.
#[test]
fn transmission_downloads_from_our_super_seeder() {
    transmission_downloads_from_our_seeder(&["--super-seed"]);
}

fn transmission_downloads_from_our_seeder(seeder_args: &[&str]) {
    let fixture = Fixture::new("6M", 256 * 1024, TRACKER);
    let mut seeder = fixture.seed(seeder_args);
    check_what_the_seeder_shows(&fixture, seeder_args.contains(&"--super-seed"));
    let out = fixture.out("transmission-data");
    let _transmission = transmission(&fixture.out("transmission"), &out, &fixture.torrent);
    wait_until_identical(
        "Transmission's copy to be complete",
        &out.join("payload.bin"),
        &fixture.payload,
    );
    stop_after_sending_the_file(&mut seeder);
}

#[test]
fn our_peer_downloads_from_aria2() {
    let fixture = Fixture::new("6M", 256 * 1024, TRACKER);
    let _aria = aria2(&fixture.data, &fixture.torrent, "10");
    download_from_the_seeder(&fixture);
}

/// aria2c at its default encryption settings (`--bt-require-crypto=false`,
/// `--bt-min-crypto-level=plain`, none given here) opens the connections it
/// dials with an MSE key exchange and falls back to a plaintext handshake
/// when refused. Our seeder announced before aria2c, and the tracker's
/// interval is long, so only aria2c dials: our log (at debug level) shows
/// the encrypted attempt refused, then aria2c's plaintext handshake on a
/// connection it opened.
#[test]
fn aria2_downloads_from_our_peer() {
    let fixture = Fixture::new("6M", 256 * 1024, &["--interval", "60"]);
    let mut seeder = fixture.seed_logging(&[], "peer=debug");
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 1, Duration::from_secs(20));
    let out = fixture.out("aria2");
    let mut aria = aria2(&out, &fixture.torrent, "0");
    let status = wait_for("aria2c to finish", Duration::from_secs(120), || {
        aria.0.try_wait().unwrap()
    });
    assert!(status.success(), "aria2c: {status}");
    assert_eq!(
        sha1_file(&out.join("payload.bin")),
        sha1_file(&fixture.payload)
    );
    let log = seeder.log();
    let refused_mse = log.find("not a BitTorrent handshake");
    let plaintext = log
        .lines()
        .filter(|line| line.contains("handshake complete") && line.contains("PeerId(A2-"))
        .map(|line| (log.find(line), line.contains("dialed=false")))
        .next();
    assert!(
        matches!((refused_mse, plaintext), (Some(mse), Some((Some(plain), true))) if mse < plain),
        "aria2c dialled with an encrypted handshake, then a plaintext one; our log:\n{log}"
    );
    stop_after_sending_the_file(&mut seeder);
}

#[test]
fn our_peer_downloads_a_transmission_create_multi_file_torrent_from_transmission() {
    require_tool("transmission-create");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tree = data.join("album");
    std::fs::create_dir_all(tree.join("disc 2")).unwrap();
    make_seed("1000001", &tree.join("one.bin"));
    make_seed("300000", &tree.join("disc 2/two.bin"));
    std::fs::write(
        tree.join("notes.txt"),
        b"multi-file torrent from transmission-create\n",
    )
    .unwrap();
    let tracker = Tracker::start(TRACKER);
    let torrent = dir.path().join("album.torrent");
    run_ok(
        Command::new("transmission-create")
            .args(["-s", "64", "-t", &tracker.announce_url(), "-o"])
            .arg(&torrent)
            .arg(&tree),
    );
    let hash = peer_info(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();

    let _transmission = transmission(&dir.path().join("transmission"), &data, &torrent);
    tracker.wait_for_seeders(&hash, 1, Duration::from_secs(60));
    let out = dir.path().join("ours");
    let mut ours = PeerProcess::start(
        Command::new(workspace_bin("peer"))
            .arg("download")
            .arg(&torrent)
            .arg("--output")
            .arg(&out)
            .args(["--port", "0"]),
    );
    let summary = ours.json_line(Duration::from_secs(120));
    assert_eq!(summary["size"], 1000001 + 300000 + 44);
    for file in ["one.bin", "disc 2/two.bin", "notes.txt"] {
        assert_eq!(
            sha1_file(&out.join("album").join(file)),
            sha1_file(&tree.join(file)),
            "{file}"
        );
    }
}

/// What a newly connected peer is shown, before Transmission comes: a
/// plain seeder sends its full bitfield; a super-seeder sends no bitfield
/// and offers a choked peer one piece with a `have` (`peer/src/bt/superseed.rs`),
/// so `--super-seed` is known to be in force in the run that follows.
fn check_what_the_seeder_shows(fixture: &Fixture, super_seed: bool) {
    let meta = metainfo(fixture);
    let geometry = Geometry::of(&meta.info);
    let mut probe =
        RawPeer::connect(seeder_addr(fixture), meta.info_hash, 7).with_geometry(geometry);
    let mut shown = Vec::new();
    while let Received::Message(message) = probe.receive_within(Duration::from_secs(1)) {
        shown.push(message);
    }
    if super_seed {
        assert!(
            matches!(&shown[..], [Message::Have(_)]),
            "a super-seeder shows a choked peer one piece, with a `have`: {shown:?}"
        );
    } else {
        assert!(
            matches!(&shown[..], [Message::Bitfield(f)] if f.is_complete()),
            "a plain seeder shows its full bitfield: {shown:?}"
        );
    }
}

/// Stops our seeder of a 6 MiB fixture, checking it exits cleanly and says it
/// uploaded at least the whole file.
fn stop_after_sending_the_file(seeder: &mut PeerProcess) {
    let status = seeder.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "seeder exit: {status}; log:\n{}",
        seeder.log()
    );
    let stopped = seeder.json_line(Duration::from_secs(5));
    assert!(
        stopped["uploaded"].as_u64().unwrap() >= 6 << 20,
        "our seeder sent the file: {stopped}"
    );
}
