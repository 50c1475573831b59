//! Network helpers for end-to-end tests, loopback only: a free port that
//! nothing else is handed, a
//! minimal HTTP GET, waiting for a condition with a deadline, and starting our
//! tracker binary on an OS-chosen port.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{workspace_bin, KillOnDrop};

/// A TCP port, free on every address right now, for third-party tools that
/// must be told a port and cannot report the one they bound.
///
/// It is taken below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`), so no `bind` to port 0 and no
/// outgoing connection, in this test or any other process, can take it
/// before the tool binds it: a port handed out by the kernel, as a plain
/// "bind port 0 and close" would pick, is raced by exactly those. Only
/// another explicit choice of the same port could collide; the start point
/// is random and each call in a process takes a different port.
pub fn free_port() -> u16 {
    use std::{
        hash::{BuildHasher, RandomState},
        sync::{
            atomic::{AtomicU32, Ordering},
            OnceLock,
        },
    };
    static START: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = below_ephemeral_range();
    let span = u32::from(high - low);
    let start = *START
        .get_or_init(|| (RandomState::new().hash_one(std::process::id()) % u64::from(span)) as u32);
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = low + offset as u16;
        if TcpListener::bind(("0.0.0.0", port)).is_ok()
            && std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port in {low}..{high}");
}

/// Ports `low..high` under the ephemeral range, that nothing assigns by itself.
pub fn below_ephemeral_range() -> (u16, u16) {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // Well away from the well-known and registered ports tests might meet.
    let low = 20000.min(first_ephemeral / 2);
    (low, first_ephemeral)
}

/// `GET path` over HTTP/1.0; returns the status and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut reply = Vec::new();
    stream.take(64 << 20).read_to_end(&mut reply)?;
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let status = std::str::from_utf8(&reply[..split])
        .ok()
        .and_then(|head| head.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    Ok((status, reply[split + 4..].to_vec()))
}

/// Polls `check` every 100 ms until it returns `Some`, failing the test with
/// `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Our tracker, started on 127.0.0.1 with an OS-chosen port.
pub struct Tracker {
    pub process: KillOnDrop,
    pub addr: SocketAddr,
    /// Where it answers UDP announces (BEP 15), unless started `--no-udp`.
    pub udp: Option<SocketAddr>,
}

impl Tracker {
    pub fn start(extra_args: &[&str]) -> Tracker {
        Tracker::start_at("127.0.0.1:0", extra_args)
    }

    /// Our tracker listening on `listen` (`[::1]:0` for IPv6), HTTP and UDP.
    pub fn start_at(listen: &str, extra_args: &[&str]) -> Tracker {
        let mut command = Command::new(workspace_bin("tracker"));
        command.args(["--listen", listen]).args(extra_args);
        Tracker::start_command(&mut command)
    }

    /// Our tracker started by `command` (its arguments given, for example
    /// inside a network namespace); the address is the one it reports.
    pub fn start_command(command: &mut Command) -> Tracker {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tracker starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let process = KillOnDrop(child);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("tracker prints its address");
        let json: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let addr = json["listening"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("a listening address");
        let udp = json["udp"].as_str().and_then(|a| a.parse().ok());
        Tracker { process, addr, udp }
    }

    pub fn announce_url(&self) -> String {
        format!("http://{}/announce", self.addr)
    }

    /// The `udp://` announce URL.
    pub fn udp_announce_url(&self) -> String {
        format!(
            "udp://{}/announce",
            self.udp.expect("the tracker serves UDP")
        )
    }

    /// `/stats`, parsed.
    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = http_get(self.addr, "/stats").expect("tracker answers /stats");
        assert_eq!(status, 200);
        serde_json::from_slice(&body).expect("/stats is JSON")
    }

    /// Waits until the swarm `info_hash` counts `count` seeders: a seeder
    /// announces only after checking its data, so this is "ready to serve".
    pub fn wait_for_seeders(&self, info_hash: &str, count: u64, timeout: Duration) {
        wait_for(
            &format!("{count} seeder(s) in swarm {info_hash}"),
            timeout,
            || {
                self.swarm(info_hash)
                    .filter(|s| s["seeders"] == count)
                    .map(|_| ())
            },
        );
    }

    /// The `/stats` entry of one swarm, if it exists.
    pub fn swarm(&self, info_hash: &str) -> Option<serde_json::Value> {
        self.stats()["swarms"]
            .as_array()?
            .iter()
            .find(|s| s["info_hash"] == info_hash)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_never_one_the_kernel_hands_out() {
        let (low, high) = below_ephemeral_range();
        assert!(low < high);
        // Ports the kernel picks, held while free_port runs beside them.
        let taken: Vec<TcpListener> = (0..50)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let port = free_port();
            assert!((low..high).contains(&port), "{port} not in {low}..{high}");
            assert!(seen.insert(port), "{port} handed out twice");
            TcpListener::bind(("0.0.0.0", port)).expect("the port is free");
        }
        for listener in taken {
            assert!(listener.local_addr().unwrap().port() >= high);
        }
    }
}
