//! Our tracker with real clients from Debian's packages, on loopback:
//! Transmission seeds and aria2c downloads, both announcing to our tracker.
//! The dashboard in headless Chromium is `tracker_dashboard.rs`; the
//! binary's flags and exit codes are `tracker_cli.rs`.

use std::{process::Command, time::Duration};

use integration::{
    make_seed,
    net::{wait_for, Tracker},
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
