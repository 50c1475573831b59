//! The DHT (BEP 5) with the real clients from Debian's packages, on
//! loopback, for trackerless magnet links (the hash and nothing else), every
//! copy SHA-1 checked: our peer finds a python3-libtorrent seeder through a
//! libtorrent DHT node, a libtorrent leecher finds our seeder the same way,
//! and aria2c finds our seeder through the DHT too.
//!
//! Settings changed from the other clients' defaults are those of
//! `integration/lt_dht.py` (explicit 127.0.0.1 port, `dht_restrict_*` off,
//! its per-IP DHT rate limit raised as every node here is 127.0.0.1) and, for
//! aria2c, `--dht-entry-point` and a fresh routing table file (see
//! `clients::aria2_dht`). Ours: `--dht-bootstrap`, nothing else.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use integration::{
    clients::{aria2_dht, libtorrent_dht},
    make_seed,
    net::wait_for,
    peer_info,
    peers::{download, PeerProcess},
    run_ok, sha1_file, workspace_bin,
};

/// A torrent with no tracker at all, and its payload.
struct Trackerless {
    dir: tempfile::TempDir,
    data: PathBuf,
    payload: PathBuf,
    torrent: PathBuf,
    info_hash: String,
}

impl Trackerless {
    fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("seed");
        std::fs::create_dir_all(&data).unwrap();
        let payload = data.join("payload.bin");
        make_seed(size, &payload);
        let torrent = dir.path().join("payload.torrent");
        run_ok(
            Command::new(workspace_bin("peer"))
                .args(["create", "-l", "262144", "-o"])
                .arg(&torrent)
                .arg(&payload),
        );
        let meta = peer_info(&torrent);
        assert_eq!(meta["trackers"], serde_json::json!([]), "{meta}");
        let info_hash = meta["info_hash"].as_str().unwrap().to_owned();
        Trackerless {
            dir,
            data,
            payload,
            torrent,
            info_hash,
        }
    }

    fn magnet(&self) -> String {
        format!("magnet:?xt=urn:btih:{}", self.info_hash)
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn check_copy(&self, dir: &Path) {
        assert_eq!(
            sha1_file(&dir.join("payload.bin")),
            sha1_file(&self.payload)
        );
    }
}

/// Waits for the JSON line whose `event` is `event` (and whose fields match
/// `also`), skipping others.
fn event(
    process: &mut PeerProcess,
    event: &str,
    also: &[(&str, &str)],
    timeout: Duration,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = process.json_line(left.max(Duration::from_millis(1)));
        if line["event"] == event && also.iter().all(|(k, v)| line[*k] == *v) {
            return line;
        }
    }
}

/// A libtorrent DHT node to bootstrap from, and its address.
fn libtorrent_node() -> (PeerProcess, String) {
    let (node, port) = libtorrent_dht(&["node".as_ref()]);
    (node, format!("127.0.0.1:{port}"))
}

/// `peer seed` of a trackerless torrent joining the DHT through `bootstrap`.
fn our_seeder(t: &Trackerless, bootstrap: &str) -> PeerProcess {
    PeerProcess::start(
        Command::new(workspace_bin("peer"))
            .arg("seed")
            .arg(&t.torrent)
            .arg("--data")
            .arg(&t.data)
            .args(["--port", "0", "--dht-bootstrap", bootstrap]),
    )
}

#[test]
fn our_peer_finds_a_libtorrent_seeder_through_the_dht_alone() {
    let t = Trackerless::new("8M");
    let (mut node, bootstrap) = libtorrent_node();
    let (mut seeder, _) = libtorrent_dht(&[
        "seed".as_ref(),
        t.torrent.as_os_str(),
        t.data.as_os_str(),
        "--bootstrap".as_ref(),
        bootstrap.as_ref(),
    ]);
    event(&mut seeder, "seeding", &[], Duration::from_secs(30));
    // The seeder is in the DHT once the node has its announce.
    event(
        &mut node,
        "dht_announce",
        &[("info_hash", &t.info_hash)],
        Duration::from_secs(30),
    );
    let out = t.out("ours");
    let mut ours = download(t.magnet(), &out, &["--dht-bootstrap", &bootstrap]);
    let summary = ours.json_line(Duration::from_secs(60));
    assert_eq!(summary["event"], "complete", "{summary}");
    assert_eq!(summary["hash_failures"], 0);
    t.check_copy(&out);
    assert!(ours.log().contains("DHT search done"), "{}", ours.log());
}

#[test]
fn a_libtorrent_leecher_finds_our_seeder_through_the_dht_alone() {
    let t = Trackerless::new("8M");
    let (mut node, bootstrap) = libtorrent_node();
    let mut ours = our_seeder(&t, &bootstrap);
    let announce = event(
        &mut node,
        "dht_announce",
        &[("info_hash", &t.info_hash)],
        Duration::from_secs(30),
    );
    let out = t.out("libtorrent");
    let (mut leecher, _) = libtorrent_dht(&[
        "magnet".as_ref(),
        t.magnet().as_ref(),
        out.as_os_str(),
        "--bootstrap".as_ref(),
        bootstrap.as_ref(),
    ]);
    event(&mut leecher, "first_peer", &[], Duration::from_secs(60));
    event(&mut leecher, "complete", &[], Duration::from_secs(60));
    t.check_copy(&out);
    // Our announce said our TCP port, which the leecher used.
    assert!(
        announce["port"].as_u64().is_some_and(|p| p > 0),
        "{announce}"
    );
    assert!(ours.terminate(Duration::from_secs(10)).success());
}

#[test]
fn aria2_finds_our_seeder_through_the_dht() {
    let t = Trackerless::new("4M");
    let (mut node, bootstrap) = libtorrent_node();
    let _ours = our_seeder(&t, &bootstrap);
    event(
        &mut node,
        "dht_announce",
        &[("info_hash", &t.info_hash)],
        Duration::from_secs(30),
    );
    let out = t.out("aria2");
    let mut aria2 = aria2_dht(&out, &t.magnet(), &bootstrap);
    let status = wait_for("aria2c to finish", Duration::from_secs(90), || {
        aria2.0.try_wait().unwrap()
    });
    assert!(status.success(), "aria2c: {status}");
    t.check_copy(&out);
}

#[test]
fn connected_peers_tell_each_other_their_dht_ports() {
    // No bootstrap node anywhere: the only way our DHT node and
    // libtorrent's meet is BEP 5's PORT message on their peer connection.
    let t = Trackerless::new("1M");
    let mut ours = PeerProcess::start(
        Command::new(workspace_bin("peer"))
            .arg("seed")
            .arg(&t.torrent)
            .arg("--data")
            .arg(&t.data)
            .args(["--port", "0"]),
    );
    let port = wait_for("our seeder to listen", Duration::from_secs(20), || {
        let log = ours.log();
        let line = log.lines().find(|l| l.contains("listening for peers"))?;
        line.split("port=")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse::<u16>()
            .ok()
    });
    let link = format!("{}&x.pe=127.0.0.1:{port}", t.magnet());
    let out = t.out("libtorrent");
    let (mut leecher, _) = libtorrent_dht(&["magnet".as_ref(), link.as_ref(), out.as_os_str()]);
    event(&mut leecher, "complete", &[], Duration::from_secs(60));
    t.check_copy(&out);
    // libtorrent pinged the port we said, and our node answered: it is in
    // libtorrent's table. Our node pinged libtorrent's in turn and, with a
    // node in its table, looks the torrent up there (our next search is at
    // most 10 s after the first, which found nobody).
    event(
        &mut leecher,
        "dht_get_peers",
        &[("info_hash", &t.info_hash)],
        Duration::from_secs(30),
    );
    assert!(ours.terminate(Duration::from_secs(10)).success());
}
