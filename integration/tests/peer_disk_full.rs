//! Downloading into a full disk: the error is clear, the exit code 1, and
//! the honest peer that sent the piece is not blamed (a piece that could not
//! be written is not a piece that failed its hash). The disk is a 2 MiB
//! tmpfs the test mounts in its own temporary directory (needs root, as the
//! Mininet CI does) and unmounts by path.

use std::{path::PathBuf, process::Command, time::Duration};

use integration::{net::wait_for, peers::Fixture, run};

/// A tmpfs of `size` mounted at `path`, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let out = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path));
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (this test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_download_with_exit_1_and_blames_no_peer() {
    let fixture = Fixture::new("8M", 256 * 1024, &[]);
    let _seeder = fixture.seed(&[]);
    fixture
        .tracker
        .wait_for_seeders(&fixture.info_hash, 1, Duration::from_secs(20));
    let disk = SmallDisk::mount(fixture.out("small"), "2M");
    let mut leecher = fixture.download(&disk.0, &[]);
    let status = wait_for("the download to stop", Duration::from_secs(60), || {
        leecher.process.0.try_wait().unwrap()
    });
    let log = leecher.log();
    assert_eq!(status.code(), Some(1), "exit 1 (I/O); log:\n{log}");
    assert!(
        log.contains("No space left on device"),
        "the error says why; log:\n{log}"
    );
    assert!(
        !log.contains("failed its hash check"),
        "a piece that could not be written is not a hash failure; log:\n{log}"
    );
}
