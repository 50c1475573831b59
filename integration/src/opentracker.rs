//! Debian's opentracker, started by a test on loopback and stopped (by PID)
//! when dropped: another implementation of BEP 15 for our peer to announce to.
//!
//! Debian builds it whitelist-only: an announce for a hash not listed gets an
//! 8-byte reply with no peers, so [`OpenTracker::start`] is given the test's
//! info-hashes. It chroots (when root) to a directory of its own, where its
//! whitelist is read; one port number serves HTTP (`-p`) and UDP (`-P`);
//! `-A 127.0.0.1` lets the test read `/stats`, which it refuses to anyone
//! else, to count the UDP and HTTP announces it served.

use std::{
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    process::{Command, Stdio},
    time::Duration,
};

use crate::{
    net::{http_get, wait_for},
    require_tool, KillOnDrop,
};

pub struct OpenTracker {
    /// Declared first: stopped before its directory goes.
    pub process: KillOnDrop,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// What opentracker's `/stats?mode=everything` says, the parts tests read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenTrackerStats {
    pub seeders: u64,
    pub peers: u64,
    pub completed: u64,
    pub udp_connects: u64,
    pub udp_announces: u64,
    pub http_announces: u64,
}

impl OpenTracker {
    /// opentracker on 127.0.0.1 at `port` (HTTP and UDP; from
    /// [`crate::net::free_port`], chosen before the torrent that names it), serving the
    /// swarms of `info_hashes` (hex) only.
    pub fn start(port: u16, info_hashes: &[&str]) -> OpenTracker {
        require_tool("opentracker");
        let dir = tempfile::tempdir().expect("temp dir");
        // It drops root for "nobody" after chrooting here: let it in.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            dir.path().join("whitelist.txt"),
            info_hashes.join("\n") + "\n",
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("opentracker.log")).unwrap();
        let child = Command::new("opentracker")
            .current_dir(dir.path())
            .args(["-i", "127.0.0.1", "-A", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-P", &port.to_string()])
            .arg("-d")
            .arg(dir.path())
            // Relative to the chroot directory.
            .args(["-w", "whitelist.txt"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("opentracker starts");
        let tracker = OpenTracker {
            process: KillOnDrop(child),
            port,
            dir,
        };
        wait_for(
            "opentracker to answer /stats",
            Duration::from_secs(10),
            || tracker.try_stats(),
        );
        tracker
    }

    /// The `udp://` announce URL of an opentracker started at `port`.
    pub fn udp_announce_url(port: u16) -> String {
        format!("udp://127.0.0.1:{port}/announce")
    }

    /// What it wrote on stderr, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("opentracker.log")).unwrap_or_default()
    }

    pub fn stats(&self) -> OpenTrackerStats {
        self.try_stats().unwrap_or_else(|| {
            panic!(
                "opentracker's /stats did not answer as expected; its log:\n{}",
                self.log()
            )
        })
    }

    fn try_stats(&self) -> Option<OpenTrackerStats> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let (status, body) = http_get(addr, "/stats?mode=everything").ok()?;
        if status != 200 {
            return None;
        }
        let xml = String::from_utf8_lossy(&body);
        Some(OpenTrackerStats {
            seeders: count_at(&xml, &["<seeds>", "<count>"])?,
            peers: count_at(&xml, &["<peers>", "<count>"])?,
            completed: count_at(&xml, &["<completed>", "<count>"])?,
            udp_connects: count_at(&xml, &["<connections>", "<udp>", "<connect>"])?,
            udp_announces: count_at(&xml, &["<connections>", "<udp>", "<announce>"])?,
            http_announces: count_at(&xml, &["<connections>", "<tcp>", "<announce>"])?,
        })
    }
}

/// The number after the first `tags[0]`, then the first `tags[1]` after it,
/// and so on: enough of an XML reader for opentracker's flat stats.
fn count_at(xml: &str, tags: &[&str]) -> Option<u64> {
    let mut at = 0;
    for tag in tags {
        at += xml[at..].find(tag)? + tag.len();
    }
    let rest = &xml[at..];
    rest[..rest.find('<')?].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::count_at;

    #[test]
    fn counts_are_read_under_their_parents() {
        let xml = "<peers>\n<count>3</count></peers><seeds><count>1</count></seeds>\
                   <connections><tcp><accept>9</accept><announce>0</announce></tcp>\
                   <udp><overall>6</overall><connect>2</connect><announce>4</announce></udp>";
        assert_eq!(count_at(xml, &["<peers>", "<count>"]), Some(3));
        assert_eq!(count_at(xml, &["<seeds>", "<count>"]), Some(1));
        assert_eq!(count_at(xml, &["<tcp>", "<announce>"]), Some(0));
        assert_eq!(count_at(xml, &["<udp>", "<announce>"]), Some(4));
        assert_eq!(count_at(xml, &["<livesync>", "<count>"]), None);
    }
}
