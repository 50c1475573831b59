//! Our peer over IPv6 on loopback (`::1`): trackers reached over IPv6, HTTP
//! (BEP 7: its IPv6 peers in `peers6`) and UDP (BEP 15: 18-byte entries),
//! and the peer's dual-stack listener taking the IPv6 connection. Every
//! peer here announces from `::1`, so the tracker stores and hands out only
//! IPv6 addresses: a download completes only if the leecher read them and
//! the seeder accepted over IPv6. Each copy is SHA-1 checked.

use std::time::Duration;

use integration::{net::Tracker, peers::Fixture, sha1_file};

fn seed_then_download(fixture: Fixture) {
    let mut seeder = fixture.seed(&[]);
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 1, Duration::from_secs(20));
    let swarm = fixture.tracker.swarm(&fixture.info_hash).unwrap();
    let seeder_addr = swarm["peers"][0]["address"].as_str().unwrap().to_owned();
    assert!(
        seeder_addr.starts_with("[::1]:"),
        "the seeder announced over IPv6: {seeder_addr}"
    );

    let out = fixture.out("leecher");
    let mut leecher = fixture.download(&out, &[]);
    let summary = leecher.json_line(Duration::from_secs(60));
    assert_eq!(summary["bytes"], 4 << 20, "{summary}");
    assert_eq!(
        sha1_file(&out.join("payload.bin")),
        sha1_file(&fixture.payload),
        "the copy is exact"
    );
    let status = seeder.terminate(Duration::from_secs(15));
    assert!(status.success(), "seeder exit: {status}");
}

#[test]
fn an_http_tracker_over_ipv6_hands_out_peers6_and_the_download_completes() {
    let fixture = Fixture::with_tracker_at("[::1]:0", "4M", 256 * 1024, Tracker::announce_url);
    assert!(fixture.tracker.addr.is_ipv6());
    seed_then_download(fixture);
}

#[test]
fn a_udp_tracker_over_ipv6_hands_out_ipv6_peers_and_the_download_completes() {
    let fixture = Fixture::with_tracker_at("[::1]:0", "4M", 256 * 1024, Tracker::udp_announce_url);
    assert!(fixture.tracker.udp.is_some_and(|udp| udp.is_ipv6()));
    seed_then_download(fixture);
}
