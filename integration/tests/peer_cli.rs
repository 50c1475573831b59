//! The `peer` command line end to end, where it fails or waits: every
//! documented exit code (`peer --help` lists them, `peer/src/exit.rs` owns
//! them), `fetch`'s stall timeout, and `serve --max-connections`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use integration::{
    make_seed,
    net::{wait_for, Tracker},
    peer_info, run, run_ok, workspace_bin, KillOnDrop,
};

fn peer() -> Command {
    Command::new(workspace_bin("peer"))
}

/// A failure as `exit.rs` promises it: the code, one line on stderr
/// (`peer: error: ...`) saying `needle`, nothing on stdout.
fn one_line_failure(output: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("peer: error: ") && stderr.contains(needle),
        "{stderr:?} lacks {needle:?}"
    );
    assert!(output.stdout.is_empty(), "{:?}", output.stdout);
}

/// Waits, bounded, for a child to exit; returns what it wrote and how long
/// the wait took.
fn finish(mut child: KillOnDrop, timeout: Duration) -> (Output, Duration) {
    let waited = Instant::now();
    let status = wait_for("peer to exit", timeout, || {
        child.0.try_wait().expect("waitable")
    });
    let took = waited.elapsed();
    let mut output = Output {
        status,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    if let Some(mut out) = child.0.stdout.take() {
        out.read_to_end(&mut output.stdout).unwrap();
    }
    if let Some(mut err) = child.0.stderr.take() {
        err.read_to_end(&mut output.stderr).unwrap();
    }
    (output, took)
}

fn spawn(command: &mut Command) -> KillOnDrop {
    KillOnDrop(
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("peer starts"),
    )
}

/// `data` (made of `size` seed bytes) and a torrent of it announcing to `announce`.
fn torrent_of(dir: &Path, name: &str, size: &str, announce: &str) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    make_seed(size, &data.join(name));
    let torrent = dir.join(format!("{name}.torrent"));
    run_ok(
        peer()
            .args(["create", "-l", "16K", "-a", announce, "-o"])
            .arg(&torrent)
            .arg(data.join(name)),
    );
    torrent
}

#[test]
fn exit_1_for_io_errors_and_2_for_wrong_usage() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.torrent");
    one_line_failure(&run(peer().arg("info").arg(&missing)), 1, "No such file");
    // The data is fine; the output cannot be written.
    let data = dir.path().join("f.bin");
    make_seed("20000", &data);
    let unwritable = dir.path().join("no/such/dir/f.torrent");
    one_line_failure(
        &run(peer()
            .args(["create", "-a", "http://127.0.0.1:1/announce", "-o"])
            .arg(&unwritable)
            .arg(&data)),
        1,
        "no/such/dir",
    );
    assert!(!unwritable.exists());

    // clap's usage errors: exit 2, what was wrong, and where to read more.
    let usage: [&[&str]; 4] = [
        &["create", "somewhere"], // no --announce
        &[
            "fetch",
            "http://127.0.0.1:1/f",
            "--max-download-rate",
            "fast",
        ],
        &["seed", "t.torrent"], // no --data
        &["no-such-command"],
    ];
    for args in usage {
        let output = run(peer().args(args));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains("try '--help'"),
            "{args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty());
    }
    let help = run_ok(peer().arg("--help"));
    for code in 0..=6 {
        assert!(help.contains(&format!("\n  {code}  ")), "{code}: {help}");
    }
}

#[test]
fn seed_exits_3_when_the_data_does_not_match_every_piece() {
    let dir = tempfile::tempdir().unwrap();
    // 100,000 bytes in 16 KiB pieces: 7 pieces.
    let torrent = torrent_of(dir.path(), "f.bin", "100000", "http://127.0.0.1:1/announce");
    let file = dir.path().join("data/f.bin");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[40_000] ^= 1; // in piece 2
    std::fs::write(&file, &bytes).unwrap();
    let seed = peer()
        .arg("seed")
        .arg(&torrent)
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--port", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    one_line_failure(&seed, 3, "only 6 of 7 pieces match the torrent");
    // A missing file is not bad data but an unreadable input: exit 1.
    std::fs::remove_file(&file).unwrap();
    let seed = run(peer()
        .arg("seed")
        .arg(&torrent)
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(["--port", "0"]));
    one_line_failure(&seed, 1, "f.bin: No such file");
}

/// A listener that takes connections and closes them at once, unanswered,
/// for `for_how_long`: a tracker that cannot be reached, on a port no other
/// process can take meanwhile.
fn closing_listener(for_how_long: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let deadline = Instant::now() + for_how_long;
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => drop(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    addr
}

#[test]
fn download_exits_5_when_no_tracker_answers() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = closing_listener(Duration::from_secs(60));
    let torrent = torrent_of(
        dir.path(),
        "f.bin",
        "50000",
        &format!("http://{tracker}/announce"),
    );
    let download = spawn(
        peer()
            .arg("download")
            .arg(&torrent)
            .arg("-o")
            .arg(dir.path().join("out"))
            .args(["--port", "0"]),
    );
    // Three tries, a second and then two apart.
    let (output, _) = finish(download, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("peer: error: tracker"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn sigint_or_sigterm_during_a_download_exits_6() {
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start(&[]);
    for signal in ["INT", "TERM"] {
        // A swarm of its own for each signal, with no seeder: the download waits.
        let torrent = torrent_of(
            &dir.path().join(signal),
            &format!("{signal}.bin"),
            "50000",
            &tracker.announce_url(),
        );
        let info_hash = peer_info(&torrent)["info_hash"]
            .as_str()
            .unwrap()
            .to_owned();
        let download = spawn(
            peer()
                .arg("download")
                .arg(&torrent)
                .arg("-o")
                .arg(dir.path().join(signal).join("out"))
                .args(["--port", "0"]),
        );
        // Running: it has checked its (empty) data and announced.
        wait_for(
            &format!("the download to announce to {info_hash}"),
            Duration::from_secs(20),
            || tracker.swarm(&info_hash).filter(|s| s["leechers"] == 1),
        );
        let pid = download.0.id().to_string();
        run_ok(Command::new("kill").args([&format!("-{signal}"), &pid]));
        let (output, took) = finish(download, Duration::from_secs(15));
        one_line_failure(&output, 6, "interrupted before the download completed");
        assert!(took < Duration::from_secs(10), "SIG{signal}: {took:?}");
        // It said goodbye to the tracker on the way out.
        let swarm = tracker.swarm(&info_hash);
        assert!(
            swarm.as_ref().is_none_or(|s| s["leechers"] == 0),
            "SIG{signal}: {swarm:?}"
        );
    }
}

/// A fake HTTP server for one request: it reads the request head, sends
/// `reply` (perhaps nothing, perhaps a head promising more than it sends),
/// then holds the connection open, silent, until the returned sender is
/// dropped or a minute passes.
fn stalling_server(reply: &'static [u8]) -> (SocketAddr, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (hold, release) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 2 {
            line.clear();
        }
        stream.write_all(reply).unwrap();
        let _ = release.recv_timeout(Duration::from_secs(60));
    });
    (addr, hold)
}

#[test]
fn fetch_gives_up_within_its_stall_timeout_with_exit_5() {
    let cases: [(&'static [u8], &str); 2] = [
        (b"", "f.bin"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nETag: \"x\"\r\n\r\n0123456789",
            "transfer interrupted after 10 bytes",
        ),
    ];
    for (reply, needle) in cases {
        let (addr, _hold) = stalling_server(reply);
        let out = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let fetch = spawn(
            peer()
                .args([
                    "fetch",
                    &format!("http://{addr}/f.bin"),
                    "--stall-timeout",
                    "2s",
                    "-o",
                ])
                .arg(out.path()),
        );
        let (output, _) = finish(fetch, Duration::from_secs(20));
        let took = started.elapsed();
        one_line_failure(&output, 5, needle);
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(10),
            "gave up after {took:?} with a 2 s stall timeout"
        );
        if !reply.is_empty() {
            // What arrived is kept for --resume.
            let part = std::fs::read(out.path().join(".f.bin.part")).unwrap();
            assert_eq!(part, b"0123456789");
        }
    }
}

/// `peer serve` on 127.0.0.1, port chosen by the system.
fn serve(dir: &Path, extra: &[&str]) -> (KillOnDrop, SocketAddr) {
    let mut child = peer()
        .arg("serve")
        .arg(dir)
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("peer serve starts");
    let stdout = child.stdout.take().unwrap();
    let server = KillOnDrop(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let addr = json["listening"].as_str().unwrap().parse().unwrap();
    (server, addr)
}

const REQUEST: &[u8] = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n";
const BODY: &[u8] = b"the body of x";

/// Reads one whole reply to [`REQUEST`] within `timeout`, or returns what
/// came before it ran out.
fn reply(stream: &mut TcpStream, timeout: Duration) -> Result<Vec<u8>, Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while !(got.ends_with(BODY) && got.windows(4).any(|w| w == b"\r\n\r\n")) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(got);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return Err(got),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    Ok(got)
}

#[test]
fn serve_max_connections_makes_the_next_client_wait_for_a_busy_slot() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), BODY).unwrap();
    // Far more than the socket buffers hold: a client that stops reading
    // keeps its connection busy sending.
    let big = std::fs::File::create(dir.path().join("big")).unwrap();
    big.set_len(256 << 20).unwrap();
    // With two slots, a second client is served while the first holds its
    // connection busy (the control); with one, it waits until the first
    // leaves: a connection sending a reply is never evicted.
    for slots in [2, 1] {
        let (_server, addr) = serve(dir.path(), &["--max-connections", &slots.to_string()]);
        let mut first = TcpStream::connect(addr).unwrap();
        first
            .write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 12];
        first.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "the first is being served");
        // It reads no more: the server's send blocks and the slot stays busy.
        let mut second = TcpStream::connect(addr).unwrap();
        second.write_all(REQUEST).unwrap();
        // The control may take its time; the refusal is watched for 1.5 s.
        let window = if slots == 2 { 10_000 } else { 1500 };
        let early = reply(&mut second, Duration::from_millis(window));
        if slots == 2 {
            assert!(early.is_ok(), "a free slot serves at once: {early:?}");
            continue;
        }
        assert_eq!(early, Err(Vec::new()), "served beyond --max-connections 1");
        drop(first);
        let late = reply(&mut second, Duration::from_secs(10));
        assert!(
            late.as_ref().is_ok_and(|r| r.starts_with(b"HTTP/1.1 200")),
            "the waiting client is served once the slot frees: {late:?}"
        );
    }
}

#[test]
fn serve_gives_an_idle_keep_alive_slot_to_a_new_client() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), BODY).unwrap();
    let (_server, addr) = serve(dir.path(), &["--max-connections", "1"]);
    let mut first = TcpStream::connect(addr).unwrap();
    first.write_all(REQUEST).unwrap();
    assert!(reply(&mut first, Duration::from_secs(10)).is_ok());
    // The first keeps its connection open but idle: with every slot taken,
    // the connection that has waited longest for a request head makes room.
    let mut second = TcpStream::connect(addr).unwrap();
    second.write_all(REQUEST).unwrap();
    let answer = reply(&mut second, Duration::from_secs(5));
    assert!(
        answer
            .as_ref()
            .is_ok_and(|r| r.starts_with(b"HTTP/1.1 200")),
        "the newcomer is served at once: {answer:?}"
    );
}
