//! `peer serve` under load that is well-formed but hostile: connections that
//! send part of a request head and then nothing. An honest `peer fetch` must
//! still be served about as fast as on an idle server, and the server must
//! keep accepting afterwards (issue 16).

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use integration::{peers::PeerProcess, workspace_bin};

/// `peer serve`'s default `--max-connections`.
const SLOTS: usize = 256;
/// Idle connections the test holds open: more than the slots, so every slot
/// can be taken by them.
const IDLE: usize = 500;
/// The attack itself is bounded in time: connects that hang (the listen
/// backlog full) are given up on.
const ATTACK_BUDGET: Duration = Duration::from_secs(30);
/// A request head without the blank line that ends it.
const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n";

/// `peer serve DIR` with its default limits, on 127.0.0.1 and a port the
/// system chooses, and the address it listens on.
fn serve(dir: &Path) -> (PeerProcess, SocketAddr) {
    let mut server = PeerProcess::start_logging(
        Command::new(workspace_bin("peer"))
            .arg("serve")
            .arg(dir)
            .args(["--bind", "127.0.0.1", "--port", "0"]),
        "peer=info",
    );
    let line = server.json_line(Duration::from_secs(10));
    let addr = line["listening"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line}"));
    (server, addr)
}

/// Runs `peer fetch URL` into `out` and returns how long it took to succeed,
/// or why it did not within `limit` (the fetch is then killed).
fn timed_fetch(url: &str, out: &Path, limit: Duration) -> Result<Duration, String> {
    let _ = std::fs::remove_dir_all(out);
    let started = Instant::now();
    let mut fetch = PeerProcess::start(
        Command::new(workspace_bin("peer"))
            .args(["fetch", url, "--output"])
            .arg(out),
    );
    loop {
        if let Some(status) = fetch.process.0.try_wait().expect("waitable") {
            let took = started.elapsed();
            return if status.success() {
                Ok(took)
            } else {
                Err(format!(
                    "failed after {took:.2?} ({status}): {}",
                    fetch.log()
                ))
            };
        }
        if started.elapsed() > limit {
            fetch.kill();
            return Err(format!("no answer within {limit:.2?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Opens up to `count` connections to `addr`, each sending [`PARTIAL_HEAD`],
/// within [`ATTACK_BUDGET`]; returns those that connected, and how many did not.
fn idle_connections(addr: SocketAddr, count: usize) -> (Vec<TcpStream>, usize) {
    let started = Instant::now();
    let mut open = Vec::with_capacity(count);
    let mut failed = 0;
    for _ in 0..count {
        if started.elapsed() > ATTACK_BUDGET {
            failed += count - open.len() - failed;
            break;
        }
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(mut stream) => {
                // The server may already have closed an older one; a failed
                // write is the server's choice, not the test's.
                let _ = stream.write_all(PARTIAL_HEAD);
                open.push(stream);
            }
            Err(_) => failed += 1,
        }
    }
    (open, failed)
}

#[test]
fn an_honest_fetch_is_served_while_every_slot_is_held_by_partial_heads() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), "a small file\n".repeat(300)).unwrap();
    let (mut server, addr) = serve(root.path());
    let url = format!("http://{addr}/a.txt");
    let out = tempfile::tempdir().unwrap();
    let out = out.path().join("got");

    // Unloaded: the median of three fetches (the first also warms the page cache).
    let mut unloaded: Vec<Duration> = (0..3)
        .map(|_| timed_fetch(&url, &out, Duration::from_secs(10)).expect("an idle server serves"))
        .collect();
    unloaded.sort();
    let unloaded = unloaded[1];
    let bound = 2 * unloaded + Duration::from_secs(1);

    let (attack, failed) = idle_connections(addr, IDLE);
    let loaded = timed_fetch(&url, &out, bound);
    eprintln!(
        "unloaded {unloaded:.3?}, bound {bound:.3?}; {} of {IDLE} idle connections open \
         ({failed} failed to connect); loaded fetch: {loaded:.3?}",
        attack.len()
    );
    assert!(
        loaded.is_ok(),
        "with {} idle connections holding partial heads, an honest fetch {} \
         (unloaded it took {unloaded:.3?}, the bound is {bound:.3?})",
        attack.len(),
        loaded.unwrap_err()
    );
    assert_eq!(
        std::fs::read(out.join("a.txt")).unwrap(),
        std::fs::read(root.path().join("a.txt")).unwrap()
    );

    // Still accepting once the attackers leave.
    drop(attack);
    let after = timed_fetch(&url, &out, bound);
    assert!(after.is_ok(), "after the attack: {}", after.unwrap_err());
    let status = server.terminate(Duration::from_secs(15));
    assert!(status.success(), "peer serve exited with {status}");
    // The idle connections beyond the slots got in by evicting older ones
    // (or, on a machine slow enough, after older ones timed out), and the
    // log said so at most once.
    let summary = server.json_line(Duration::from_secs(5));
    eprintln!("{summary}");
    let count = |key: &str| {
        summary[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {summary}"))
    };
    let (evicted, timed_out) = (count("evicted"), count("head_timeouts"));
    assert!(evicted + timed_out >= (IDLE - SLOTS) as u64, "{summary}");
    let log = server.log();
    let warned = log.matches("every connection slot is taken").count();
    assert_eq!(warned, usize::from(evicted > 0), "{log}");
}
