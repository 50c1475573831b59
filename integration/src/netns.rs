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
