//! Transmission dials our peer: the accept path meets Transmission's default
//! handshake. At its default setting (`encryption` 1, prefer encrypted)
//! Transmission opens with an MSE key exchange; our peer speaks no MSE and
//! closes, and Transmission must fall back to a plaintext handshake. It
//! ignores loopback peers learned from a tracker, so the test builds two
//! network namespaces joined by a veth pair (root needed): our tracker and
//! seeder in one, Transmission in the other.
//!
//! What the test changes from the defaults, and why: DHT, LPD, PEX, uTP and
//! port mapping off (peers meet only through our tracker, over TCP); the
//! tracker's interval is 60 s, so that our seeder, which announced first,
//! learns of Transmission too late to dial it: every connection is
//! Transmission's. Encryption is left at Transmission's default.

use std::time::Duration;

use integration::{
    clients::transmission_in,
    net::wait_for,
    netns::{NetnsPair, SeederBeyondLoopback, SeederSetup},
    peers::PeerProcess,
    sha1_file,
};

/// Log lines of our peer about connections with `ip`.
fn lines_about<'a>(log: &'a str, ip: &str) -> Vec<&'a str> {
    let needle = format!("addr={ip}:");
    log.lines().filter(|line| line.contains(&needle)).collect()
}

#[test]
fn transmission_at_its_default_encryption_dials_our_seeder_and_falls_back_to_plaintext() {
    // Debug logs name every connection's address, how it ended, and each
    // completed handshake with its direction and the peer's id.
    let mut swarm = SeederBeyondLoopback::start(SeederSetup {
        size: "6M",
        piece_length: "262144",
        tracker_args: &["--interval", "60"],
        udp: false,
        log: "peer=debug",
    });

    let out = swarm.dir.path().join("transmission-data");
    let _transmission = transmission_in(
        Some(&swarm.pair.b),
        &swarm.dir.path().join("transmission"),
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

    let log = swarm.seeder.log();
    let transmission = lines_about(&log, &NetnsPair::ADDR_B.to_string());
    let refused_mse = transmission
        .iter()
        .position(|line| line.contains("not a BitTorrent handshake"));
    let plaintext = transmission.iter().position(|line| {
        line.contains("handshake complete")
            && line.contains("dialed=false")
            && line.contains("PeerId(-TR")
    });
    assert!(
        matches!((refused_mse, plaintext), (Some(mse), Some(plain)) if mse < plain),
        "Transmission first tried an encrypted handshake, then a plaintext one; our log of it:\n{}\nwhole log:\n{log}",
        transmission.join("\n")
    );
    assert!(
        !log.contains("dialed=true"),
        "our seeder never dialled Transmission: the connection was Transmission's\n{log}"
    );
    stop(&mut swarm.seeder);
}

/// Stops our seeder, checking it exits cleanly and sent the whole file.
fn stop(seeder: &mut PeerProcess) {
    let status = seeder.terminate(Duration::from_secs(15));
    assert!(status.success(), "seeder exit: {status}");
    let stopped = seeder.json_line(Duration::from_secs(5));
    assert!(
        stopped["uploaded"].as_u64().unwrap() >= 6 << 20,
        "our seeder sent the file: {stopped}"
    );
}
