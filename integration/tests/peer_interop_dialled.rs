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

use std::{net::SocketAddr, process::Command, time::Duration};

use integration::{
    clients::transmission_in,
    make_seed,
    net::{wait_for, Tracker},
    netns::NetnsPair,
    peer_info,
    peers::PeerProcess,
    run, run_ok, sha1_file, workspace_bin,
};

/// The tracker's `/stats` for one swarm, fetched from inside namespace `ns`.
fn seeders_in(ns: &str, tracker: SocketAddr, info_hash: &str) -> Option<u64> {
    let output = run(NetnsPair::command(ns, "curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://{tracker}/stats")));
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    stats["swarms"]
        .as_array()?
        .iter()
        .find(|s| s["info_hash"] == info_hash)?["seeders"]
        .as_u64()
}

/// Log lines of our peer about connections with `ip`.
fn lines_about<'a>(log: &'a str, ip: &str) -> Vec<&'a str> {
    let needle = format!("addr={ip}:");
    log.lines().filter(|line| line.contains(&needle)).collect()
}

#[test]
fn transmission_at_its_default_encryption_dials_our_seeder_and_falls_back_to_plaintext() {
    let pair = NetnsPair::create();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("seed");
    std::fs::create_dir_all(&data).unwrap();
    let payload = data.join("payload.bin");
    make_seed("6M", &payload);
    let tracker = Tracker::start_command(
        NetnsPair::command(&pair.a, workspace_bin("tracker"))
            .args(["--listen", &format!("{}:0", NetnsPair::ADDR_A)])
            .args(["--interval", "60"]),
    );
    let torrent = dir.path().join("payload.torrent");
    run_ok(
        Command::new(workspace_bin("peer"))
            .args(["create", "-l", "262144", "-a"])
            .arg(format!("http://{}/announce", tracker.addr))
            .arg("-o")
            .arg(&torrent)
            .arg(&payload),
    );
    let info_hash = peer_info(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    // Debug logs name every connection's address, how it ended, and each
    // completed handshake with its direction and the peer's id.
    let mut seeder = PeerProcess::start_logging(
        NetnsPair::command(&pair.a, workspace_bin("peer"))
            .arg("seed")
            .arg(&torrent)
            .arg("--data")
            .arg(&data)
            .args(["--port", "0"]),
        "peer=debug",
    );
    wait_for("our seeder to announce", Duration::from_secs(20), || {
        (seeders_in(&pair.a, tracker.addr, &info_hash) == Some(1)).then_some(())
    });

    let out = dir.path().join("transmission-data");
    let _transmission = transmission_in(
        Some(&pair.b),
        &dir.path().join("transmission"),
        &out,
        &torrent,
    );
    let copy = out.join("payload.bin");
    let want = sha1_file(&payload);
    wait_for(
        "Transmission's copy to be complete",
        Duration::from_secs(120),
        || (copy.is_file() && sha1_file(&copy) == want).then_some(()),
    );

    let log = seeder.log();
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
    stop(&mut seeder);
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
