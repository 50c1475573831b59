//! Helpers for tests that run our `peer` as seeders and leechers: a seeded
//! torrent behind our tracker, processes whose JSON lines are read with a
//! deadline, a graceful stop by PID, and counting the verified pieces of a
//! file on disk.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use sha1::{Digest, Sha1};

use crate::{make_seed, net::Tracker, peer_info, run_ok, workspace_bin, KillOnDrop};

/// A torrent of a deterministic payload, announced to our own tracker.
pub struct Fixture {
    pub tracker: Tracker,
    pub dir: tempfile::TempDir,
    pub torrent: PathBuf,
    /// Folder holding the payload (what `peer seed --data` takes).
    pub data: PathBuf,
    pub payload: PathBuf,
    pub info_hash: String,
    pub piece_length: u64,
}

impl Fixture {
    /// `size` as make-seed.sh takes it, `piece_length` in bytes.
    pub fn new(size: &str, piece_length: u64, tracker_args: &[&str]) -> Fixture {
        Fixture::announcing(size, piece_length, tracker_args, Tracker::announce_url)
    }

    /// [`Fixture::new`] with a torrent whose only tracker is our tracker's
    /// `udp://` URL (BEP 15).
    pub fn with_udp_tracker(size: &str, piece_length: u64, tracker_args: &[&str]) -> Fixture {
        Fixture::announcing(size, piece_length, tracker_args, Tracker::udp_announce_url)
    }

    /// [`Fixture::new`] with the tracker listening on `listen` (`[::1]:0`:
    /// an IPv6 tracker), announced by `url` (its HTTP or its `udp://` URL).
    pub fn with_tracker_at(
        listen: &str,
        size: &str,
        piece_length: u64,
        url: fn(&Tracker) -> String,
    ) -> Fixture {
        let tracker = Tracker::start_at(listen, &[]);
        Fixture::with_tracker(tracker, size, piece_length, url)
    }

    fn announcing(
        size: &str,
        piece_length: u64,
        tracker_args: &[&str],
        url: fn(&Tracker) -> String,
    ) -> Fixture {
        Fixture::with_tracker(Tracker::start(tracker_args), size, piece_length, url)
    }

    fn with_tracker(
        tracker: Tracker,
        size: &str,
        piece_length: u64,
        url: fn(&Tracker) -> String,
    ) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("seed");
        std::fs::create_dir_all(&data).unwrap();
        let payload = data.join("payload.bin");
        make_seed(size, &payload);
        let torrent = dir.path().join("payload.torrent");
        run_ok(
            Command::new(workspace_bin("peer"))
                .args([
                    "create",
                    "-l",
                    &piece_length.to_string(),
                    "-a",
                    &url(&tracker),
                    "-o",
                ])
                .arg(&torrent)
                .arg(&payload),
        );
        let info_hash = peer_info(&torrent)["info_hash"]
            .as_str()
            .unwrap()
            .to_owned();
        Fixture {
            tracker,
            dir,
            torrent,
            data,
            payload,
            info_hash,
            piece_length,
        }
    }

    /// A fresh output folder inside the fixture's temp dir.
    pub fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn seed(&self, extra: &[&str]) -> PeerProcess {
        PeerProcess::start(&mut self.seed_command(extra))
    }

    /// Like [`Fixture::seed`], logging at `filter` (for tests that read the log).
    pub fn seed_logging(&self, extra: &[&str], filter: &str) -> PeerProcess {
        PeerProcess::start_logging(&mut self.seed_command(extra), filter)
    }

    fn seed_command(&self, extra: &[&str]) -> Command {
        let mut command = Command::new(workspace_bin("peer"));
        command
            .arg("seed")
            .arg(&self.torrent)
            .arg("--data")
            .arg(&self.data)
            .args(["--port", "0"])
            .args(extra);
        command
    }

    pub fn download(&self, out: &Path, extra: &[&str]) -> PeerProcess {
        download(&self.torrent, out, extra)
    }

    /// Pieces of `file` that match the payload, piece by piece.
    pub fn pieces_present(&self, file: &Path) -> Vec<bool> {
        let expected = std::fs::read(&self.payload).expect("payload");
        let actual = std::fs::read(file).unwrap_or_default();
        expected
            .chunks(self.piece_length as usize)
            .enumerate()
            .map(|(i, want)| {
                let start = i * self.piece_length as usize;
                actual
                    .get(start..start + want.len())
                    .is_some_and(|got| Sha1::digest(got) == Sha1::digest(want))
            })
            .collect()
    }
}

/// `peer download SOURCE --output OUT --port 0 EXTRA...`, where SOURCE is a
/// `.torrent` file or a magnet link.
pub fn download(source: impl AsRef<std::ffi::OsStr>, out: &Path, extra: &[&str]) -> PeerProcess {
    PeerProcess::start(
        Command::new(workspace_bin("peer"))
            .arg("download")
            .arg(source)
            .arg("--output")
            .arg(out)
            .args(["--port", "0"])
            .args(extra),
    )
}

/// A running `peer` whose stdout lines (JSON) arrive on a channel and whose
/// stderr (logs) is kept for assertions.
pub struct PeerProcess {
    pub process: KillOnDrop,
    lines: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl PeerProcess {
    pub fn start(command: &mut Command) -> PeerProcess {
        // PEER_TEST_LOG=peer=trace shows the protocol when a test fails.
        // `common` logs what every server shares (the accept back-off).
        let filter =
            std::env::var("PEER_TEST_LOG").unwrap_or_else(|_| "peer=info,common=info".into());
        PeerProcess::start_logging(command, &filter)
    }

    /// Like [`PeerProcess::start`], with the log filter a test reads from.
    pub fn start_logging(command: &mut Command, filter: &str) -> PeerProcess {
        let mut child = command
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("peer starts");
        let stdout = child.stdout.take().expect("piped");
        let mut stderr_pipe = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        PeerProcess {
            process: KillOnDrop(child),
            lines,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// The next stdout line, parsed as JSON, within `timeout`.
    pub fn json_line(&mut self, timeout: Duration) -> serde_json::Value {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
            }
            Err(_) => {
                let status = self.process.0.try_wait().ok().flatten();
                panic!(
                    "no JSON line from peer {} within {timeout:?} (exit: {status:?}); log:\n{}",
                    self.pid(),
                    self.log()
                )
            }
        }
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGTERM, then wait (at most `timeout`) for it to exit.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        crate::net::wait_for("the peer to exit after SIGTERM", timeout, || {
            self.process.0.try_wait().unwrap()
        })
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
    }
}

/// `peer dht --listen 127.0.0.1:0`, its JSON lines on a channel and its
/// stdin open for commands (`table`, `get_peers HASH`, ...).
pub struct DhtNode {
    _process: KillOnDrop,
    stdin: std::process::ChildStdin,
    lines: mpsc::Receiver<serde_json::Value>,
    pub addr: SocketAddr,
}

impl DhtNode {
    pub fn start() -> DhtNode {
        let mut child = Command::new(workspace_bin("peer"))
            .args(["dht", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("peer dht starts");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&line).expect("JSON lines"));
            }
        });
        let mut node = DhtNode {
            _process: KillOnDrop(child),
            stdin,
            lines,
            addr: "127.0.0.1:1".parse().unwrap(),
        };
        let listening = node.event("listening");
        node.addr = listening["addr"].as_str().unwrap().parse().unwrap();
        node
    }

    /// The next line whose `event` is `event` (within 10 s).
    pub fn event(&mut self, event: &str) -> serde_json::Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no {event} line"));
            if line["event"] == event {
                return line;
            }
        }
    }

    /// The node as `table` prints it (`nodes`, `counters`, ...).
    pub fn snapshot(&mut self) -> serde_json::Value {
        writeln!(self.stdin, "table").unwrap();
        self.event("snapshot")["node"].clone()
    }

    /// The node's counters, from a `table` command.
    pub fn counters(&mut self) -> serde_json::Value {
        self.snapshot()["counters"].clone()
    }
}
