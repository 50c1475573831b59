//! Two network namespaces joined by a veth pair, created by a test and
//! removed when it ends, for the cases loopback cannot show: Transmission
//! ignores loopback peers learned from a tracker, so to make it dial our peer
//! the two must sit at ordinary addresses on a link of their own.
//!
//! Needs root (`ip netns`); a test that needs it fails with a message saying
//! so, never skips. Processes started in a namespace through [`NetnsPair::command`]
//! are the program itself (`ip netns exec` execs it), so a `KillOnDrop` or
//! `PeerProcess` stops them by PID; declare the pair before them, so that
//! they are stopped before the namespaces go.

use std::{
    net::Ipv4Addr,
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

use crate::{require_tool, run_ok};

/// Namespaces `a` (at [`NetnsPair::ADDR_A`]) and `b` (at [`NetnsPair::ADDR_B`]),
/// each with its loopback up, joined by a veth pair.
pub struct NetnsPair {
    pub a: String,
    pub b: String,
}

impl NetnsPair {
    pub const ADDR_A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    pub const ADDR_B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

    pub fn create() -> NetnsPair {
        require_tool("ip");
        let uid = run_ok(Command::new("id").arg("-u"));
        assert_eq!(
            uid.trim(),
            "0",
            "this test creates network namespaces: run it as root"
        );
        // Unique per process and per pair: tests run in parallel.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let pair = NetnsPair {
            a: format!("it{tag}a"),
            b: format!("it{tag}b"),
        };
        // Interface names have at most 15 characters; these are moved into
        // the namespaces at once, so they cannot clash with the host's.
        let (veth_a, veth_b) = (format!("v{tag}a"), format!("v{tag}b"));
        let ip = |args: &[&str]| {
            run_ok(Command::new("ip").args(args));
        };
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        ip(&[
            "link", "add", &veth_a, "type", "veth", "peer", "name", &veth_b,
        ]);
        ip(&["link", "set", &veth_a, "netns", &pair.a]);
        ip(&["link", "set", &veth_b, "netns", &pair.b]);
        for (ns, veth, addr) in [
            (&pair.a, &veth_a, Self::ADDR_A),
            (&pair.b, &veth_b, Self::ADDR_B),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", veth]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", veth, "up"]);
        }
        pair
    }

    /// `program` to be run inside namespace `ns`.
    pub fn command(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(program);
        command
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // The veth pair goes with its namespaces.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// How [`SeederBeyondLoopback::start`] sets up.
pub struct SeederSetup<'a> {
    /// The payload's size (`make_seed`), e.g. `"6M"`.
    pub size: &'a str,
    /// `peer create -l`.
    pub piece_length: &'a str,
    /// Extra arguments for our tracker.
    pub tracker_args: &'a [&'a str],
    /// The torrent names the tracker's `udp://` URL instead of its `http://` one.
    pub udp: bool,
    /// The seeder's `RUST_LOG`.
    pub log: &'a str,
}

/// Our tracker and our seeder in namespace `a` of a new pair, the seeder
/// counted by the tracker, for a client in namespace `b` to reach at an
/// ordinary address: the set-up every Transmission test shares. Fields drop
/// in order: the processes before the namespaces.
pub struct SeederBeyondLoopback {
    pub seeder: crate::peers::PeerProcess,
    pub tracker: crate::net::Tracker,
    pub torrent: std::path::PathBuf,
    pub payload: std::path::PathBuf,
    pub info_hash: String,
    pub dir: tempfile::TempDir,
    pub pair: NetnsPair,
}

impl SeederBeyondLoopback {
    pub fn start(setup: SeederSetup) -> SeederBeyondLoopback {
        use crate::{make_seed, net::Tracker, peer_info, peers::PeerProcess, workspace_bin};
        let pair = NetnsPair::create();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("seed");
        std::fs::create_dir_all(&data).unwrap();
        let payload = data.join("payload.bin");
        make_seed(setup.size, &payload);
        let tracker = Tracker::start_command(
            NetnsPair::command(&pair.a, workspace_bin("tracker"))
                .args(["--listen", &format!("{}:0", NetnsPair::ADDR_A)])
                .args(setup.tracker_args),
        );
        let announce = if setup.udp {
            tracker.udp_announce_url()
        } else {
            tracker.announce_url()
        };
        let torrent = dir.path().join("payload.torrent");
        run_ok(
            Command::new(workspace_bin("peer"))
                .args(["create", "-l", setup.piece_length, "-a", &announce, "-o"])
                .arg(&torrent)
                .arg(&payload),
        );
        let info_hash = peer_info(&torrent)["info_hash"]
            .as_str()
            .unwrap()
            .to_owned();
        let seeder = PeerProcess::start_logging(
            NetnsPair::command(&pair.a, workspace_bin("peer"))
                .arg("seed")
                .arg(&torrent)
                .arg("--data")
                .arg(&data)
                .args(["--port", "0"]),
            setup.log,
        );
        let swarm = SeederBeyondLoopback {
            seeder,
            tracker,
            torrent,
            payload,
            info_hash,
            dir,
            pair,
        };
        crate::net::wait_for(
            "our seeder to announce",
            std::time::Duration::from_secs(20),
            || (swarm.seeders() == Some(1)).then_some(()),
        );
        swarm
    }

    /// The tracker's `/stats`, fetched from inside namespace `a` (`Null`
    /// when it does not answer).
    pub fn stats(&self) -> serde_json::Value {
        let output = crate::run(
            NetnsPair::command(&self.pair.a, "curl")
                .args(["-s", "--max-time", "5"])
                .arg(format!("http://{}/stats", self.tracker.addr)),
        );
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// The seeders the tracker counts in our swarm.
    pub fn seeders(&self) -> Option<u64> {
        self.stats()["swarms"]
            .as_array()?
            .iter()
            .find(|s| s["info_hash"] == self.info_hash.as_str())?["seeders"]
            .as_u64()
    }
}
