//! Magnet links (BEP 9, BEP 10) with the real clients from Debian's packages
//! on loopback, every copy SHA-1 checked: our peer fetches a magnet from a
//! python3-libtorrent seeder knowing only its address (`x.pe`), and
//! libtorrent and aria2c fetch the metadata, then the data, from our seeder.

use std::{path::Path, time::Duration};

use integration::{
    clients::{aria2, libtorrent},
    net::wait_for,
    peer_info,
    peers::{download, Fixture, PeerProcess},
    sha1_file,
};

/// Our seeder's listening address, from the tracker's view of the swarm.
fn announced_addr(fixture: &Fixture) -> String {
    wait_for("the seeder to announce", Duration::from_secs(20), || {
        let swarm = fixture.tracker.swarm(&fixture.info_hash)?;
        swarm["peers"].as_array()?.first()?["address"]
            .as_str()
            .map(str::to_owned)
    })
}

/// Waits for the JSON line whose `event` is `event`, skipping others.
fn event(process: &mut PeerProcess, event: &str, timeout: Duration) -> serde_json::Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = process.json_line(left.max(Duration::from_millis(1)));
        if line["event"] == event {
            return line;
        }
    }
}

#[test]
fn our_peer_fetches_a_magnet_from_libtorrent_knowing_only_its_address() {
    let fixture = Fixture::new("8M", 256 * 1024, &[]);
    let (mut seeder, port) = libtorrent(
        &[
            "seed".as_ref(),
            fixture.torrent.as_os_str(),
            fixture.data.as_os_str(),
        ],
        &[],
    );
    event(&mut seeder, "seeding", Duration::from_secs(30));
    // No tracker, no .torrent: the hash and one peer address.
    let link = format!(
        "magnet:?xt=urn:btih:{}&x.pe=127.0.0.1:{port}",
        fixture.info_hash
    );
    let out = fixture.out("ours");
    let mut ours = download(&link, &out, &[]);
    let summary = ours.json_line(Duration::from_secs(60));
    assert_eq!(summary["info_hash"], fixture.info_hash.as_str());
    assert_eq!(summary["hash_failures"], 0);
    assert_eq!(
        sha1_file(&out.join("payload.bin")),
        sha1_file(&fixture.payload)
    );
    // The saved torrent names the same info dictionary, so the next run can
    // start without the swarm.
    let saved = out.join("payload.bin.torrent");
    assert_eq!(peer_info(&saved)["info_hash"], fixture.info_hash.as_str());
    let status = ours.process.0.wait().unwrap();
    assert!(status.success(), "exit {status}; log:\n{}", ours.log());
}

#[test]
fn libtorrent_fetches_the_metadata_and_the_data_from_our_seeder() {
    let fixture = Fixture::new("8M", 256 * 1024, &[]);
    let _seeder = fixture.seed(&[]);
    let addr = announced_addr(&fixture);
    let link = format!("magnet:?xt=urn:btih:{}&dn=payload.bin", fixture.info_hash);
    let dir = fixture.out("libtorrent");
    std::fs::create_dir_all(&dir).unwrap();
    // libtorrent knows only our address: the metadata can come from nobody else.
    let (mut leecher, _) = libtorrent(
        &[
            "magnet".as_ref(),
            link.as_ref(),
            dir.as_os_str(),
            addr.as_ref(),
        ],
        &[],
    );
    let metadata = event(&mut leecher, "metadata", Duration::from_secs(30));
    assert_eq!(metadata["info_hash"], fixture.info_hash.as_str());
    event(&mut leecher, "complete", Duration::from_secs(60));
    assert_eq!(
        sha1_file(&dir.join("payload.bin")),
        sha1_file(&fixture.payload)
    );
}

#[test]
fn aria2c_fetches_a_magnet_with_our_tracker_from_our_seeder() {
    let fixture = Fixture::new("8M", 256 * 1024, &[]);
    let _seeder = fixture.seed(&[]);
    announced_addr(&fixture);
    let link = format!(
        "magnet:?xt=urn:btih:{}&tr={}",
        fixture.info_hash,
        fixture.tracker.announce_url()
    );
    let dir = fixture.out("aria2");
    // aria2c as the tests set it up (DHT, LPD and PEX off: only the tracker).
    let mut aria = aria2(&dir, Path::new(&link), "0");
    let status = wait_for("aria2c to finish", Duration::from_secs(90), || {
        aria.0.try_wait().unwrap()
    });
    assert!(status.success(), "aria2c exit: {status}");
    assert_eq!(
        sha1_file(&dir.join("payload.bin")),
        sha1_file(&fixture.payload)
    );
}
