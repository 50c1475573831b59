//! What must not reach the DHT: a private torrent (BEP 27) and a peer run
//! with `--no-dht` never send a datagram to the DHT node they were given,
//! while a public seeder given the same node joins it (the control, which
//! shows the test can see a peer arrive).

use std::{path::Path, process::Command, time::Duration};

use integration::{
    make_seed,
    net::{wait_for, Tracker},
    peers::{DhtNode, PeerProcess},
    run_ok, workspace_bin,
};

fn create(payload: &Path, torrent: &Path, extra: &[&str]) {
    run_ok(
        Command::new(workspace_bin("peer"))
            .args(["create", "-l", "262144", "-o"])
            .arg(torrent)
            .args(extra)
            .arg(payload),
    );
}

fn seed(torrent: &Path, data: &Path, extra: &[&str]) -> PeerProcess {
    PeerProcess::start(
        Command::new(workspace_bin("peer"))
            .arg("seed")
            .arg(torrent)
            .arg("--data")
            .arg(data)
            .args(["--port", "0"])
            .args(extra),
    )
}

#[test]
fn private_torrents_and_no_dht_stay_off_the_dht_while_a_public_seeder_joins() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let payload = data.join("payload.bin");
    make_seed("1M", &payload);
    let tracker = Tracker::start(&[]);
    let private = dir.path().join("private.torrent");
    create(
        &payload,
        &private,
        &["--private", "-a", &tracker.announce_url()],
    );
    let public = dir.path().join("public.torrent");
    create(&payload, &public, &["-a", &tracker.announce_url()]);

    let mut node = DhtNode::start();
    let bootstrap = node.addr.to_string();
    let _private = seed(&private, &data, &["--dht-bootstrap", &bootstrap]);
    let _off = seed(&public, &data, &["--dht-bootstrap", &bootstrap, "--no-dht"]);
    tracker.wait_for_seeders(&peer_info_hash(&private), 1, Duration::from_secs(20));
    tracker.wait_for_seeders(&peer_info_hash(&public), 1, Duration::from_secs(20));
    // Both have started and announced to the tracker; give a DHT node in
    // them time to bootstrap (it would ask at once).
    std::thread::sleep(Duration::from_secs(2));
    let quiet = node.counters();
    assert_eq!(quiet["received"], 0, "nothing reached the DHT: {quiet}");

    // The control: a public seeder with the DHT on is heard at once.
    let _public = seed(&public, &data, &["--dht-bootstrap", &bootstrap]);
    wait_for(
        "the public seeder in the node's table",
        Duration::from_secs(20),
        || {
            let snapshot = node.snapshot();
            (snapshot["nodes"].as_array()?.len() == 1).then_some(())
        },
    );
}

fn peer_info_hash(torrent: &Path) -> String {
    integration::peer_info(torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned()
}
