//! Our tracker with real clients from Debian's packages, on loopback:
//! Transmission seeds and aria2c downloads, both announcing to our tracker;
//! and the dashboard, loaded in headless Chromium while a swarm is running.

use std::{process::Command, time::Duration};

use integration::{
    make_seed,
    net::{http_get, wait_for, Tracker},
    peer_info, require_tool, run_ok, sha1_file, workspace_bin,
};

#[test]
fn aria2c_downloads_from_transmission_through_our_tracker() {
    require_tool("aria2c");
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, out_dir) = (dir.path().join("seed"), dir.path().join("out"));
    std::fs::create_dir_all(&seed_dir).unwrap();
    make_seed("3M", &seed_dir.join("payload.bin"));

    let tracker = Tracker::start(&["--interval", "5"]);
    let torrent = dir.path().join("payload.torrent");
    run_ok(
        Command::new(workspace_bin("peer"))
            .args(["create", "-l", "64K", "-a", &tracker.announce_url(), "-o"])
            .arg(&torrent)
            .arg(seed_dir.join("payload.bin")),
    );
    let hash = peer_info(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();

    let _seeder =
        integration::clients::transmission(&dir.path().join("transmission"), &seed_dir, &torrent);
    tracker.wait_for_seeders(&hash, 1, Duration::from_secs(60));

    // aria2c announces `completed` only when it seeds after finishing (with
    // --seed-time=0 it goes straight to `stopped`): seed for 3 seconds.
    let mut aria = integration::clients::aria2(&out_dir, &torrent, "0.05");
    let status = wait_for("aria2c to finish", Duration::from_secs(120), || {
        aria.0.try_wait().unwrap()
    });
    assert!(status.success(), "aria2c failed: {status}");
    assert_eq!(
        sha1_file(&out_dir.join("payload.bin")),
        sha1_file(&seed_dir.join("payload.bin"))
    );

    // aria2c said `completed` and then `stopped`; Transmission is still there.
    let swarm = wait_for(
        "the tracker to count the completed download",
        Duration::from_secs(10),
        || tracker.swarm(&hash).filter(|s| s["completed"] == 1),
    );
    assert_eq!(swarm["seeders"], 1);
    assert_eq!(swarm["leechers"], 0);
}

#[test]
fn the_dashboard_shows_a_running_swarm_in_a_real_browser() {
    require_tool("chromium");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start(&[]);
    let hash = [0x5a_u8; 20];
    let escaped: String = hash.iter().map(|b| format!("%{b:02X}")).collect();
    for (id, port, left) in [(b'a', 7001, 0), (b'b', 7002, 500), (b'c', 7003, 900)] {
        let peer_id = String::from_utf8(vec![id; 20]).unwrap();
        let query = format!("/announce?info_hash={escaped}&peer_id={peer_id}&port={port}&uploaded=0&downloaded=0&left={left}&event=started");
        let (status, _) = http_get(tracker.addr, &query).unwrap();
        assert_eq!(status, 200);
    }
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
        ])
        .args([
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("http://{}/", tracker.addr))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains(&format!("data-info-hash=\"{}\"", hex::encode(hash))),
        "swarm missing from the page:\n{dom}"
    );
    for port in [7001, 7002, 7003] {
        assert!(
            dom.contains(&format!("data-address=\"127.0.0.1:{port}\"")),
            "peer {port} missing from the page:\n{dom}"
        );
    }
    assert!(
        dom.contains("seeders: 1") && dom.contains("leechers: 2"),
        "counts missing:\n{dom}"
    );
}
