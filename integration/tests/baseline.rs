//! The client-server baseline end to end: `peer serve` started on a loopback
//! port the system chooses, `peer fetch` and curl as its clients.

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use integration::{
    make_seed,
    net::{free_port, http_get, wait_for},
    require_tool, run, run_ok, sha1_file, workspace_bin, KillOnDrop,
};
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// `peer serve` on 127.0.0.1 with an OS-chosen port, and its stdout lines.
struct Server {
    process: KillOnDrop,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(workspace_bin("peer"))
            .arg("serve")
            .arg(dir)
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("peer serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let process = KillOnDrop(child);
        let first = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("peer serve prints where it listens");
        let json: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first:?}"));
        let addr = json["listening"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("an address");
        Server {
            process,
            addr,
            lines,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// SIGTERM, then the summary line it prints on the way out.
    fn stop(mut self) -> Value {
        let pid = self.process.0.id().to_string();
        run_ok(Command::new("kill").args(["-TERM", &pid]));
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(15))
            .expect("peer serve prints a summary when stopped");
        let status = wait_for("peer serve to exit", Duration::from_secs(10), || {
            self.process.0.try_wait().expect("waitable")
        });
        assert!(status.success(), "peer serve exited with {status}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }
}

fn fetch(url: &str, output: &Path, extra: &[&str]) -> KillOnDrop {
    let child = Command::new(workspace_bin("peer"))
        .args(["fetch", url, "--output"])
        .arg(output)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("peer fetch starts");
    KillOnDrop(child)
}

/// `count` fetches of `seed.bin` started together, client `i` writing into `out/i`.
fn fetch_at_once(server: &Server, out: &Path, count: usize) -> Vec<KillOnDrop> {
    (0..count)
        .map(|i| fetch(&server.url("seed.bin"), &out.join(i.to_string()), &[]))
        .collect()
}

/// Waits (bounded) for a child that writes little, and collects what it wrote.
fn finish(mut process: KillOnDrop, timeout: Duration) -> Output {
    let child: &mut Child = &mut process.0;
    let status = wait_for("peer fetch to finish", timeout, || {
        child.try_wait().expect("waitable")
    });
    let mut output = Output {
        status,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut output.stdout).expect("stdout");
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_end(&mut output.stderr).expect("stderr");
    }
    output
}

/// The one JSON line of a successful fetch.
fn report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "peer fetch failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout:?}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout:?}"))
}

fn seeded(size: &str) -> (tempfile::TempDir, String) {
    let root = tempfile::tempdir().unwrap();
    make_seed(size, &root.path().join("seed.bin"));
    let sha = sha1_file(&root.path().join("seed.bin"));
    (root, sha)
}

#[test]
fn six_clients_at_once_get_identical_copies_and_the_server_counts_the_bytes() {
    let (root, sha) = seeded("16M");
    let server = Server::start(root.path(), &[]);
    let out = tempfile::tempdir().unwrap();
    let clients = fetch_at_once(&server, out.path(), 6);
    for (i, client) in clients.into_iter().enumerate() {
        let json = report(&finish(client, Duration::from_secs(30)));
        let file = out.path().join(i.to_string()).join("seed.bin");
        assert_eq!(json["file"], file.to_str().unwrap());
        assert_eq!(json["bytes"], 16 * MIB);
        assert!(json["seconds"].as_f64().unwrap() > 0.0 && json["rate"].as_f64().unwrap() > 0.0);
        assert_eq!(sha1_file(&file), sha, "copy {i}");
        assert!(!out
            .path()
            .join(i.to_string())
            .join(".seed.bin.part")
            .exists());
    }
    let summary = server.stop();
    assert_eq!(summary["bytes_sent"], 6 * 16 * MIB, "{summary}");
    assert_eq!(summary["transfers"], 6, "{summary}");
}

#[test]
fn curl_gets_whole_files_ranges_heads_and_resumes() {
    require_tool("curl");
    let (root, sha) = seeded("3M");
    let server = Server::start(root.path(), &[]);
    let url = server.url("seed.bin");
    let out = tempfile::tempdir().unwrap();
    let copy = out.path().join("copy.bin");
    run_ok(
        Command::new("curl")
            .args(["-sf", "-o"])
            .arg(&copy)
            .arg(&url),
    );
    assert_eq!(sha1_file(&copy), sha);

    let data = std::fs::read(root.path().join("seed.bin")).unwrap();
    let range = |spec: &str| {
        let output = run(Command::new("curl").args(["-sf", "-r", spec, &url]));
        assert!(output.status.success(), "curl -r {spec}: {}", output.status);
        output.stdout
    };
    assert_eq!(range("100-199"), &data[100..200]);
    assert_eq!(range("-100"), &data[data.len() - 100..]);
    let status = run_ok(Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-r",
        "99999999-",
        &url,
    ]));
    assert_eq!(status, "416");

    let head = run_ok(Command::new("curl").args(["-sfI", &url])).to_lowercase();
    assert!(
        head.contains(&format!("content-length: {}", 3 * MIB)),
        "{head}"
    );
    assert!(
        head.contains("accept-ranges: bytes") && head.contains("etag: \""),
        "{head}"
    );

    // curl -C - continues a partial file with a range request.
    std::fs::write(&copy, &data[..1_000_000]).unwrap();
    run_ok(
        Command::new("curl")
            .args(["-sf", "-C", "-", "-o"])
            .arg(&copy)
            .arg(&url),
    );
    assert_eq!(sha1_file(&copy), sha);
}

#[test]
fn every_traversal_form_is_refused() {
    require_tool("curl");
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    let outside = top.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "TOPSECRET").unwrap();
    std::fs::write(root.join("inside.txt"), "inside").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("link")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("linkdir")).unwrap();
    let server = Server::start(&root, &[]);

    // The server works, so the refusals below are its own.
    assert_eq!(
        http_get(server.addr, "/inside.txt").unwrap(),
        (200, b"inside".to_vec())
    );
    let paths = [
        "/../outside/secret.txt",
        "/inside.txt/../../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/%2E%2E/outside/secret.txt",
        "/..%2foutside%2fsecret.txt",
        "/..%2Foutside%2Fsecret.txt",
        "/%2e%2e%2foutside%2fsecret.txt",
        "/%252e%252e%252foutside%252fsecret.txt",
        "/%252e%252e/outside/secret.txt",
        "/..\\outside\\secret.txt",
        "/..%5coutside%5csecret.txt",
        "/inside.txt%00",
        "/%00",
        &format!("/{}", outside.join("secret.txt").display()),
        &format!(
            "/{}",
            outside
                .join("secret.txt")
                .display()
                .to_string()
                .replace('/', "%2f")
        ),
        "//etc/passwd",
        "/link",
        "/linkdir/secret.txt",
        "/",
        "http://127.0.0.1/../outside/secret.txt",
    ];
    for path in paths {
        let (status, body) = http_get(server.addr, path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!([400, 403, 404].contains(&status), "{path}: {status}");
        assert!(
            !String::from_utf8_lossy(&body).contains("TOPSECRET"),
            "{path} leaked the secret"
        );
    }
    // The same through curl, which must be told not to normalise the path.
    for path in ["../outside/secret.txt", "%2e%2e/outside/secret.txt", "link"] {
        let output = run(Command::new("curl").args([
            "-s",
            "--path-as-is",
            "-w",
            "\n%{http_code}",
            &server.url(path),
        ]));
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            text.ends_with("\n403") || text.ends_with("\n404"),
            "{path}: {text}"
        );
        assert!(!text.contains("TOPSECRET"), "{path}: {text}");
    }
}

#[test]
fn listing_only_with_list_and_names_escaped() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("<script>&.bin"), "x").unwrap();
    let server = Server::start(root.path(), &["--list"]);
    let (status, body) = http_get(server.addr, "/").unwrap();
    let page = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("href=\"/%3Cscript%3E%26.bin\">&lt;script&gt;&amp;.bin</a>"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "{page}");
}

#[test]
fn a_killed_fetch_resumes_and_transfers_only_the_rest() {
    let (root, sha) = seeded("8M");
    let server = Server::start(root.path(), &[]);
    let out = tempfile::tempdir().unwrap();
    let part = out.path().join(".seed.bin.part");
    let mut slow = fetch(
        &server.url("seed.bin"),
        out.path(),
        &["--max-download-rate", "2M"],
    );
    wait_for("2 MiB in the .part file", Duration::from_secs(20), || {
        (std::fs::metadata(&part).map_or(0, |m| m.len()) >= 2 * MIB).then_some(())
    });
    slow.0.kill().expect("kill by PID");
    slow.0.wait().expect("reaped");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept < 8 * MIB && !out.path().join("seed.bin").exists());

    let json = report(&finish(
        fetch(&server.url("seed.bin"), out.path(), &["--resume"]),
        Duration::from_secs(30),
    ));
    assert_eq!(json["resumed_from"], kept);
    assert_eq!(json["bytes"], 8 * MIB - kept);
    assert!(json["bytes"].as_u64().unwrap() < 8 * MIB);
    assert_eq!(sha1_file(&out.path().join("seed.bin")), sha);
    assert!(!part.exists());
}

#[test]
fn the_upload_limit_holds_for_the_whole_server() {
    // Two clients of 2 MiB each through one 1 MiB/s server. The token bucket
    // lets through at most its burst (a tenth of a second) plus the rate times
    // the time, so 4 MiB cannot be done in less than 3.9 s, however idle the
    // machine: that is a hard lower bound. The upper bound is loose, as other
    // tests share the cores.
    let (root, sha) = seeded("2M");
    let server = Server::start(root.path(), &["--max-upload-rate", "1M"]);
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let clients = fetch_at_once(&server, out.path(), 2);
    for (i, client) in clients.into_iter().enumerate() {
        report(&finish(client, Duration::from_secs(30)));
        assert_eq!(
            sha1_file(&out.path().join(i.to_string()).join("seed.bin")),
            sha
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let floor = (4 * MIB - MIB / 10) as f64 / MIB as f64;
    // The timer may wake a millisecond early per sleep; allow 10 ms in all.
    assert!(
        elapsed >= floor - 0.01,
        "4 MiB at 1 MiB/s took {elapsed:.2} s: faster than the bucket allows ({floor:.2} s)"
    );
    assert!(
        elapsed <= 1.5 * floor + 1.0,
        "4 MiB at 1 MiB/s took {elapsed:.2} s, expected about {floor:.2} s"
    );
    let summary = server.stop();
    assert_eq!(summary["bytes_sent"], 4 * MIB, "{summary}");
}

#[test]
fn failures_are_one_line_with_an_exit_code() {
    let (root, _) = seeded("1M");
    let server = Server::start(root.path(), &[]);
    let out = tempfile::tempdir().unwrap();
    let one_line_error = |output: &Output, code: i32, needle: &str| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
        assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
        assert!(output.stdout.is_empty());
    };
    let missing = finish(
        fetch(&server.url("missing.bin"), out.path(), &[]),
        Duration::from_secs(10),
    );
    one_line_error(&missing, 5, "404");

    // Nothing listens there, and the kernel hands that port to no one.
    let closed = format!("127.0.0.1:{}", free_port());
    let refused = finish(
        fetch(&format!("http://{closed}/seed.bin"), out.path(), &[]),
        Duration::from_secs(10),
    );
    one_line_error(&refused, 5, "refused");

    let no_name = finish(
        fetch(&server.url("a%2f..%2fb"), out.path(), &[]),
        Duration::from_secs(10),
    );
    one_line_error(&no_name, 3, "plain file");
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing was written"
    );
}
