//! Our peer's listener when the process runs out of file descriptors: the
//! accept loop backs off instead of spinning, says so once in the log, and
//! accepts again once descriptors are free.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::Command,
    time::{Duration, Instant},
};

use common::{
    wire::{Handshake, HANDSHAKE_LEN},
    InfoHash, PeerId,
};
use integration::{
    net::wait_for,
    peers::{Fixture, PeerProcess},
    workspace_bin,
};

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0 // USER_HZ is 100 on Linux
}

fn handshake_answered(addr: SocketAddr, info_hash: InfoHash) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let _ = stream.write_all(&Handshake::new(info_hash, PeerId([9; 20])).encode());
    let mut theirs = [0u8; HANDSHAKE_LEN];
    stream.read_exact(&mut theirs).is_ok()
}

#[test]
fn out_of_descriptors_the_listener_backs_off_and_recovers() {
    let fixture = Fixture::new("1M", 64 * 1024, &[]);
    // A seeder allowed 64 descriptors: the flood below exhausts them. Its
    // --max-peers and --max-per-ip are above the flood (which comes from
    // 127.0.0.1 alone), so it keeps the connections it accepts: 64 in their
    // handshake (the cap, after which each new one replaces the oldest)
    // plus the descriptors the process holds anyway.
    let mut seeder = PeerProcess::start(
        Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n 64 && exec "$0" "$@""#)
            .arg(workspace_bin("peer"))
            .arg("seed")
            .arg(&fixture.torrent)
            .arg("--data")
            .arg(&fixture.data)
            .args(["--port", "0", "--max-peers", "500", "--max-per-ip", "500"]),
    );
    let addr: SocketAddr = wait_for("the seeder to announce", Duration::from_secs(20), || {
        let swarm = fixture.tracker.swarm(&fixture.info_hash)?;
        swarm["peers"].as_array()?.first()?["address"]
            .as_str()?
            .parse()
            .ok()
    });
    let info_hash = InfoHash::from_hex(&fixture.info_hash).unwrap();
    assert!(
        handshake_answered(addr, info_hash),
        "the seeder serves at first"
    );

    // Connections that never send a handshake, more than the seeder has
    // descriptors for: the kernel completes them, the seeder cannot accept.
    let flood: Vec<TcpStream> = (0..150)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect();
    assert!(flood.len() > 64, "only {} connections opened", flood.len());
    wait_for("accept to fail", Duration::from_secs(10), || {
        seeder.log().contains("accept failed").then_some(())
    });

    // While accept keeps failing, the seeder must sleep, not spin.
    let (cpu_before, started) = (cpu_seconds(seeder.pid()), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let cpu = cpu_seconds(seeder.pid()) - cpu_before;
    let window = started.elapsed().as_secs_f64();
    assert!(
        cpu < 0.25 * window,
        "the seeder used {cpu:.2} s of CPU in {window:.2} s while out of descriptors: it spins"
    );
    let log = seeder.log();
    assert_eq!(
        log.matches("accept failed").count(),
        1,
        "said once, not once per try; log:\n{log}"
    );

    drop(flood);
    wait_for(
        "the seeder to accept again",
        Duration::from_secs(20),
        || handshake_answered(addr, info_hash).then_some(()),
    );
    wait_for("the recovery to be logged", Duration::from_secs(5), || {
        seeder
            .log()
            .contains("accepting connections again")
            .then_some(())
    });
    let status = seeder.terminate(Duration::from_secs(15));
    assert!(status.success(), "seeder exit: {status}");
}
