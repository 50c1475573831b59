//! UDP trackers (BEP 15) with real clients from Debian's packages, every copy
//! SHA-1 checked. Each torrent or magnet link names one tracker only, a
//! `udp://` URL, so nothing can be learned over HTTP:
//! - aria2c, python3-libtorrent and Transmission each announce to our
//!   tracker over UDP and download from our seeder, which announced there
//!   too; the tracker's `/stats` counts UDP announces, no HTTP announce, and
//!   the client's completed download. Transmission ignores loopback peers
//!   learned from a tracker, so it runs in a network namespace of its own
//!   and our tracker and seeder in another (root needed).
//! - Our peer announces to Debian's opentracker over UDP, as does our
//!   seeder, and completes; opentracker's stats count UDP announces only.
//! - Our peer given a magnet link whose only tracker is our `udp://` URL.
//!
//! Client settings changed from their defaults, and why:
//! - aria2c (`clients::aria2_udp`): its UDP tracker client rides on its DHT
//!   socket, and with `--enable-dht=false` (what our other tests use) it
//!   refuses a `udp://` tracker ("udp is not supported yet"). So the IPv4
//!   DHT stays on, its default, but on a port of its own, with a fresh
//!   routing table file and no entry point: an empty table sends nothing.
//!   LPD and PEX off, so the tracker is the only way to meet a peer; a 3 s
//!   seed time, so it announces `completed` before `stopped`; no ratio
//!   limit; info-level log to a file, read for its `UDPT` lines.
//! - python3-libtorrent (`integration/lt_peer.py`): listening on loopback;
//!   DHT, LSD, UPnP, NAT-PMP and uTP off; several connections per IP.
//!   Nothing about trackers: it speaks UDP to them at its defaults.
//! - Transmission (`clients::transmission_in`): DHT, LPD, PEX, uTP and port
//!   mapping off. Its UDP socket (on the peer port) is opened whatever
//!   those say, and its UDP tracker client uses it.
//! - opentracker (`integration::opentracker`): bound to 127.0.0.1, HTTP and
//!   UDP on one port; `-A 127.0.0.1` so the test may read its `/stats`; a
//!   chroot directory of the test's, holding the whitelist (`-w`) with the
//!   test's info-hash (Debian builds it whitelist-only).
//! - Our tracker runs at its defaults: UDP on the HTTP port's number.

use std::{process::Command, time::Duration};

use integration::{
    clients::{aria2_udp, libtorrent, transmission_in},
    make_seed,
    net::{free_port, wait_for},
    netns::{NetnsPair, SeederBeyondLoopback, SeederSetup},
    opentracker::OpenTracker,
    peer_info,
    peers::{download, Fixture, PeerProcess},
    run_ok, sha1_file, workspace_bin,
};

const PAYLOAD: &str = "4M";
const PIECE_LENGTH: u64 = 256 * 1024;

/// The tracker's totals say it served UDP announces and no HTTP one.
fn assert_udp_only(stats: &serde_json::Value) {
    let totals = &stats["totals"];
    assert!(
        totals["announces_udp"].as_u64().unwrap() > 0 && totals["announces_http"] == 0,
        "every announce came over UDP: {totals}"
    );
}

/// Waits until the swarm counts `completed` downloads, and returns it.
fn wait_for_completed(
    stats: impl Fn() -> serde_json::Value,
    info_hash: &str,
    completed: u64,
) -> serde_json::Value {
    wait_for(
        &format!("the tracker to count {completed} completed download(s)"),
        Duration::from_secs(15),
        || {
            stats()["swarms"]
                .as_array()?
                .iter()
                .find(|s| s["info_hash"] == info_hash && s["completed"] == completed)
                .cloned()
        },
    )
}

/// Whether the swarm lists a peer at `address`.
fn lists(swarm: &serde_json::Value, address: &str) -> bool {
    swarm["peers"]
        .as_array()
        .is_some_and(|peers| peers.iter().any(|p| p["address"] == address))
}

#[test]
fn aria2c_announces_over_udp_to_our_tracker_and_downloads_from_our_seeder() {
    let fixture = Fixture::with_udp_tracker(PAYLOAD, PIECE_LENGTH, &[]);
    let _seeder = fixture.seed(&[]);
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 1, Duration::from_secs(20));

    let out = fixture.out("aria2");
    let log = fixture.out("aria2.log");
    let mut aria = aria2_udp(&out, &fixture.torrent, "0.05", &log);
    let status = wait_for("aria2c to finish", Duration::from_secs(90), || {
        aria.0.try_wait().unwrap()
    });
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "aria2c exit: {status}; its log:\n{log}");
    assert_eq!(
        sha1_file(&out.join("payload.bin")),
        sha1_file(&fixture.payload)
    );

    // Its own account: a connect, then the announces, all answered.
    let udp_lines: Vec<&str> = log.lines().filter(|l| l.contains("UDPT")).collect();
    assert!(
        udp_lines
            .iter()
            .any(|l| l.contains("UDPT received CONNECT reply")),
        "aria2c's UDP connect was answered; its UDPT lines:\n{}",
        udp_lines.join("\n")
    );
    for event in ["STARTED", "COMPLETED", "STOPPED"] {
        assert!(
            udp_lines
                .iter()
                .any(|l| l.contains("UDPT received ANNOUNCE reply")
                    && l.contains(&format!("event={event}"))),
            "aria2c's UDP announce `{event}` was answered; its UDPT lines:\n{}",
            udp_lines.join("\n")
        );
    }
    wait_for_completed(|| fixture.tracker.stats(), &fixture.info_hash, 1);
    assert_udp_only(&fixture.tracker.stats());
}

#[test]
fn libtorrent_announces_over_udp_to_our_tracker_and_downloads_from_our_seeder() {
    let fixture = Fixture::with_udp_tracker(PAYLOAD, PIECE_LENGTH, &[]);
    let _seeder = fixture.seed(&[]);
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 1, Duration::from_secs(20));

    let dir = fixture.out("libtorrent");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut leecher, port) = libtorrent(
        &[
            "download".as_ref(),
            fixture.torrent.as_os_str(),
            dir.as_os_str(),
        ],
        &[],
    );
    let complete = leecher.json_line(Duration::from_secs(60));
    assert_eq!(complete["event"], "complete", "{complete}");
    assert_eq!(
        sha1_file(&dir.join("payload.bin")),
        sha1_file(&fixture.payload)
    );

    // libtorrent announced itself (at its listening port) and its completion.
    let swarm = wait_for_completed(|| fixture.tracker.stats(), &fixture.info_hash, 1);
    assert!(
        lists(&swarm, &format!("127.0.0.1:{port}")),
        "libtorrent is in the swarm: {swarm}"
    );
    // No `stopped` check: libtorrent 2.0.8 sends none to a UDP tracker when
    // its session closes (it queues the announce, then closes the UDP
    // socket that would carry it); over HTTP it does.
    assert_udp_only(&fixture.tracker.stats());
}

#[test]
fn transmission_announces_over_udp_to_our_tracker_and_downloads_from_our_seeder() {
    let swarm = SeederBeyondLoopback::start(SeederSetup {
        size: PAYLOAD,
        piece_length: &PIECE_LENGTH.to_string(),
        tracker_args: &[],
        udp: true,
        log: "peer=info",
    });
    let (dir, pair, info_hash) = (&swarm.dir, &swarm.pair, &swarm.info_hash);
    let stats = || swarm.stats();

    let out = dir.path().join("transmission-data");
    let _transmission = transmission_in(
        Some(&pair.b),
        &dir.path().join("transmission"),
        &out,
        &swarm.torrent,
    );
    let copy = out.join("payload.bin");
    let want = sha1_file(&swarm.payload);
    wait_for(
        "Transmission's copy to be complete",
        Duration::from_secs(120),
        || (copy.is_file() && sha1_file(&copy) == want).then_some(()),
    );

    // Transmission, at its address in namespace b and its peer port, said
    // `completed` and stays as a seeder.
    let listed = wait_for_completed(stats, info_hash, 1);
    assert!(
        lists(&listed, &format!("{}:51413", NetnsPair::ADDR_B)),
        "Transmission is in the swarm: {listed}"
    );
    assert_eq!(listed["seeders"], 2, "{listed}");
    assert_udp_only(&stats());
}

#[test]
fn our_peer_announces_over_udp_to_opentracker_and_downloads_from_our_seeder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("seed");
    std::fs::create_dir_all(&data).unwrap();
    let payload = data.join("payload.bin");
    make_seed(PAYLOAD, &payload);
    let port = free_port();
    let torrent = dir.path().join("payload.torrent");
    run_ok(
        Command::new(workspace_bin("peer"))
            .args(["create", "-l", &PIECE_LENGTH.to_string(), "-a"])
            .arg(OpenTracker::udp_announce_url(port))
            .arg("-o")
            .arg(&torrent)
            .arg(&payload),
    );
    let info_hash = peer_info(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let opentracker = OpenTracker::start(port, &[&info_hash]);

    let _seeder = PeerProcess::start(
        Command::new(workspace_bin("peer"))
            .arg("seed")
            .arg(&torrent)
            .arg("--data")
            .arg(&data)
            .args(["--port", "0"]),
    );
    wait_for(
        "our seeder to announce to opentracker",
        Duration::from_secs(20),
        || (opentracker.stats().seeders == 1).then_some(()),
    );

    let out = dir.path().join("ours");
    let mut ours = download(&torrent, &out, &[]);
    let summary = ours.json_line(Duration::from_secs(60));
    assert_eq!(summary["event"], "complete", "{summary}");
    assert_eq!(summary["hash_failures"], 0);
    assert_eq!(sha1_file(&out.join("payload.bin")), sha1_file(&payload));
    let status = ours.process.0.wait().unwrap();
    assert!(status.success(), "exit {status}; log:\n{}", ours.log());

    // Seeder `started`, leecher `started` and `completed` at least, each
    // after a connect; nothing over HTTP.
    let stats = wait_for(
        "opentracker to count the completed download",
        Duration::from_secs(10),
        || Some(opentracker.stats()).filter(|s| s.completed == 1),
    );
    assert!(
        stats.udp_connects >= 2 && stats.udp_announces >= 3 && stats.http_announces == 0,
        "every announce came over UDP: {stats:?}"
    );
}

#[test]
fn our_peer_fetches_a_magnet_whose_only_tracker_is_udp() {
    let fixture = Fixture::with_udp_tracker(PAYLOAD, PIECE_LENGTH, &[]);
    let _seeder = fixture.seed(&[]);
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 1, Duration::from_secs(20));

    // The hash and the tracker, percent-encoded: no name, no size, no peer.
    let tracker = fixture
        .tracker
        .udp_announce_url()
        .replace(':', "%3A")
        .replace('/', "%2F");
    let link = format!("magnet:?xt=urn:btih:{}&tr={tracker}", fixture.info_hash);
    let out = fixture.out("ours");
    let mut ours = download(&link, &out, &[]);
    let summary = ours.json_line(Duration::from_secs(60));
    assert_eq!(summary["event"], "complete", "{summary}");
    assert_eq!(summary["info_hash"], fixture.info_hash.as_str());
    assert_eq!(summary["hash_failures"], 0);
    assert_eq!(
        sha1_file(&out.join("payload.bin")),
        sha1_file(&fixture.payload)
    );
    assert_eq!(
        peer_info(&out.join("payload.bin.torrent"))["info_hash"],
        fixture.info_hash.as_str()
    );
    let status = ours.process.0.wait().unwrap();
    assert!(status.success(), "exit {status}; log:\n{}", ours.log());

    wait_for_completed(|| fixture.tracker.stats(), &fixture.info_hash, 1);
    assert_udp_only(&fixture.tracker.stats());
}
