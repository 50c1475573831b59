//! Transmission, given only a magnet link, fetches the info dictionary from
//! our seeder (`ut_metadata`, BEP 9) and then the data. Transmission 3.00
//! reads `xt`, `dn`, `tr` and `ws` from a magnet link but not `x.pe`, so the
//! link names our tracker; and it ignores loopback peers learned from a
//! tracker, so, as in `peer_interop_dialled.rs`, our tracker and seeder run
//! in one network namespace and Transmission in another (root needed).
//!
//! What the test changes from the defaults, and why: in Transmission, DHT,
//! LPD, PEX, uTP and port mapping off (`clients::transmission_in`): the
//! tracker is the only way to find a peer, so the metadata can come from
//! nobody but our seeder. Our tracker's interval is 60 s, so our seeder,
//! which announced first, never hears of Transmission: every connection is
//! Transmission's. Encryption is left at Transmission's default (it tries
//! MSE first, then falls back to plaintext). The torrent has 16 KiB pieces,
//! so its info dictionary (20.5 KiB) takes two metadata pieces, the second
//! a short one.
//!
//! Where the ~24 s go (seen here): Transmission dials about 3 s after it
//! starts and has the metadata 2 to 3 s later; then it closes the
//! connection, dials again (MSE first once more), now saying
//! `metadata_size`, and sends `interested` only at its next 10 s round; the
//! 16 MiB take about 5 s.
//!
//! Our peer logs no line of its own when it serves a metadata piece; the
//! test reads Transmission's requests from the session's `received` trace
//! and takes the torrent Transmission saves as proof of the answers.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::extension::handshake::ExtensionIds;
use integration::{
    clients::transmission_in,
    netns::{NetnsPair, SeederBeyondLoopback, SeederSetup},
    run, sha1_file, workspace_bin,
};

const PAYLOAD: &str = "16M";
const PAYLOAD_BYTES: u64 = 16 << 20;
const PIECE_LENGTH: &str = "16384";

/// `check` until it gives a value or `timeout` passes.
fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The info hash of the torrent Transmission saved, once that holds an info
/// dictionary. From the start it keeps a `.torrent` of the magnet link, with
/// no `info`; it rewrites that file when the metadata is complete.
fn saved_info_hash(config_dir: &Path) -> Option<String> {
    std::fs::read_dir(config_dir.join("torrents"))
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "torrent"))
        .find_map(|path| {
            let output = run(Command::new(workspace_bin("peer"))
                .args(["info", "--json"])
                .arg(&path));
            let info: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
            info["info_hash"].as_str().map(str::to_owned)
        })
}

/// Our seeder's trace of the `ut_metadata` requests Transmission sent it,
/// e.g. `received Extended { id: 1, payload: b"d8:msg_typei0e5:piecei0ee" }`.
fn metadata_requests(log: &str, piece: u32) -> usize {
    let from = format!("addr={}:", NetnsPair::ADDR_B);
    let request = format!(
        "received Extended {{ id: {}, payload: b\"d8:msg_typei0e5:piecei{piece}ee\" }}",
        ExtensionIds::OUR_METADATA
    );
    log.lines()
        .filter(|line| line.contains(&from) && line.contains(&request))
        .count()
}

#[test]
fn transmission_given_only_a_magnet_link_fetches_the_metadata_and_the_data_from_our_seeder() {
    // Debug logs name every connection's address; the session's trace shows
    // each message received, the metadata requests among them.
    let mut swarm = SeederBeyondLoopback::start(SeederSetup {
        size: PAYLOAD,
        piece_length: PIECE_LENGTH,
        tracker_args: &["--interval", "60"],
        udp: false,
        log: "peer=debug,peer::bt::session=trace",
    });
    let (info_hash, announce) = (swarm.info_hash.clone(), swarm.tracker.announce_url());

    // The hash and our tracker: no name, no size, no peer.
    let link = format!(
        "magnet:?xt=urn:btih:{info_hash}&tr={}",
        announce.replace(':', "%3A").replace('/', "%2F")
    );
    let config = swarm.dir.path().join("transmission");
    let out = swarm.dir.path().join("transmission-data");
    let _transmission = transmission_in(Some(&swarm.pair.b), &config, &out, &link);

    let started = Instant::now();
    let saved = poll(Duration::from_secs(60), || saved_info_hash(&config));
    let requests = [0, 1].map(|piece| metadata_requests(&swarm.seeder.log(), piece));
    let Some(saved) = saved else {
        panic!(
            "Transmission saved no torrent with an info dictionary within 60 s: it never got \
             the metadata (its ut_metadata requests of pieces 0 and 1 in our log: {requests:?}); \
             our log:\n{}",
            swarm.seeder.log()
        );
    };
    eprintln!("metadata after {:?}", started.elapsed());
    assert_eq!(
        saved, info_hash,
        "Transmission's torrent holds our info dictionary"
    );
    assert!(
        requests.iter().all(|&n| n >= 1),
        "Transmission asked our seeder for both metadata pieces: {requests:?}; our log:\n{}",
        swarm.seeder.log()
    );

    let copy = out.join("payload.bin");
    let want = sha1_file(&swarm.payload);
    let complete = poll(Duration::from_secs(120), || {
        (copy.is_file() && sha1_file(&copy) == want).then_some(())
    });
    assert!(
        complete.is_some(),
        "Transmission's copy is complete within 120 s; our log:\n{}",
        swarm.seeder.log()
    );
    eprintln!("data after {:?}", started.elapsed());

    let log = swarm.seeder.log();
    assert!(
        !log.contains("dialed=true"),
        "our seeder never dialled Transmission: the connections were Transmission's\n{log}"
    );
    let status = swarm.seeder.terminate(Duration::from_secs(15));
    assert!(status.success(), "seeder exit: {status}");
    let stopped = swarm.seeder.json_line(Duration::from_secs(5));
    assert!(
        stopped["uploaded"].as_u64().unwrap() >= PAYLOAD_BYTES,
        "our seeder sent the file: {stopped}"
    );
}
