//! Helpers for the end-to-end tests in `tests/`: finding the built binaries
//! and the repository's scripts, running commands with checked results,
//! hashing files, and killing by PID the processes a test started.
//!
//! The tests need the workspace binaries built in the same profile as the
//! tests (`./test.sh` runs `cargo build --release --bins` first) and the
//! third-party tools that `integration/install-deps.sh` installs. A missing
//! binary or tool fails the test with a message saying so: it is never a skip.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, Output},
};

use sha1::{Digest, Sha1};

pub mod clients;
pub mod net;
pub mod netns;
pub mod opentracker;
pub mod peers;
pub mod raw;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent")
        .to_owned()
}

/// A binary of this workspace, built in the same profile as the running test.
pub fn workspace_bin(name: &str) -> PathBuf {
    // A test runs as target/<profile>/deps/<test>-<hash>; binaries sit in target/<profile>/.
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join(name);
    assert!(
        bin.is_file(),
        "{} is not built: run `cargo build --release --bins` (./test.sh does) before the integration tests",
        bin.display()
    );
    bin
}

/// Fails the test, with the fix, when a third-party tool is missing.
pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is not installed: run integration/install-deps.sh (./test.sh does it)"
    );
}

/// Runs a command to completion, failing the test if it cannot start.
pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Runs a command that must succeed; returns its stdout as text.
pub fn run_ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// SHA-1 of a file's contents, as hex.
pub fn sha1_file(path: &Path) -> String {
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = Sha1::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).expect("readable file");
        if n == 0 {
            return hex::encode(hasher.finalize());
        }
        hasher.update(&buffer[..n]);
    }
}

/// Writes `size` bytes of the deterministic seed stream to `path`.
pub fn make_seed(size: &str, path: &Path) {
    run_ok(
        Command::new("bash")
            .arg(repo_root().join("torrents/make-seed.sh"))
            .arg(size)
            .arg(path),
    );
}

/// A child process that is killed (by its PID, through the handle) and
/// reaped when dropped, so a failing test leaves nothing running.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `peer info --json` of a torrent, parsed.
pub fn peer_info(torrent: &Path) -> serde_json::Value {
    let out = run_ok(
        Command::new(workspace_bin("peer"))
            .arg("info")
            .arg("--json")
            .arg(torrent),
    );
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("peer info --json printed no JSON ({e}): {out}"))
}
