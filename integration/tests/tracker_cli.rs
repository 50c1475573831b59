//! The `tracker` binary's flags, exit codes and signals, each checked by
//! what a client sees: `--torrents DIR` (whitelist, names and sizes, exit 3
//! on a bad file), exit 1 when it cannot listen, `--max-numwant`,
//! `--max-peers`, `--threads`, `--grace`, `--no-full-scrape`, `--interval`
//! and `min interval`, the `/stats` totals and announce rate, and SIGTERM.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use common::{
    tracker_proto::{
        encode_failure, escape, response::decode_scrape, AnnounceEvent, AnnounceRequest,
        AnnounceResponse, ResponseError,
    },
    InfoHash, PeerId,
};
use integration::{
    net::{http_get, wait_for, Tracker},
    peer_info, run_ok, workspace_bin, KillOnDrop,
};

const HASH: InfoHash = InfoHash([0x42; 20]);

fn request(hash: InfoHash, id: u8, port: u16, left: u64, event: AnnounceEvent) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: hash,
        peer_id: PeerId([id; 20]),
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event,
        compact: true,
        no_peer_id: false,
        numwant: None,
        key: None,
        ip: None,
    }
}

/// One announce over HTTP/1.0 (the tracker's fast path), decoded.
fn announce(
    tracker: &Tracker,
    request: &AnnounceRequest,
) -> Result<AnnounceResponse, ResponseError> {
    let (status, body) = http_get(tracker.addr, &format!("/announce?{}", request.to_query()))
        .expect("the tracker answers an announce");
    assert_eq!(status, 200);
    AnnounceResponse::decode(&body)
}

fn failure(reply: Result<AnnounceResponse, ResponseError>) -> String {
    match reply {
        Err(ResponseError::Failure(reason)) => reason,
        other => panic!("expected a failure reason, got {other:?}"),
    }
}

/// Runs the tracker with `args` until it exits (failing after `timeout`);
/// returns its status and stderr.
fn run_to_exit(args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    let child = Command::new(workspace_bin("tracker"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tracker starts");
    let mut child = KillOnDrop(child);
    let status = wait_for(&format!("tracker {args:?} to exit"), timeout, || {
        child.0.try_wait().unwrap()
    });
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

/// Writes `bytes` to `dir/name` and a torrent of it, `dir/torrents/<name>.torrent`;
/// returns the info-hash (hex, from `peer info`).
fn torrent_of(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let data = dir.join(name);
    std::fs::write(&data, bytes).unwrap();
    let torrent = dir.join("torrents").join(format!("{name}.torrent"));
    run_ok(
        Command::new(workspace_bin("peer"))
            .args([
                "create",
                "-l",
                "16K",
                "-a",
                "http://127.0.0.1:1/announce",
                "-o",
            ])
            .arg(&torrent)
            .arg(&data),
    );
    peer_info(&torrent)["info_hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn hash_of(hex_hash: &str) -> InfoHash {
    InfoHash(hex::decode(hex_hash).unwrap().try_into().unwrap())
}

#[test]
fn torrents_dir_serves_only_its_torrents_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("torrents")).unwrap();
    let known = torrent_of(dir.path(), "known.bin", &[7; 40_000]);
    let idle = torrent_of(dir.path(), "idle.bin", &[9; 1000]);
    // Only `*.torrent` files are read: anything else in DIR is ignored.
    std::fs::write(dir.path().join("torrents/notes.txt"), "not a torrent").unwrap();
    let torrents = dir.path().join("torrents");
    let tracker = Tracker::start(&["--torrents", torrents.to_str().unwrap()]);

    let unknown = request(HASH, 1, 7001, 5, AnnounceEvent::Started);
    assert_eq!(
        failure(announce(&tracker, &unknown)),
        "unregistered torrent"
    );
    announce(
        &tracker,
        &request(hash_of(&known), 2, 7002, 10_000, AnnounceEvent::Started),
    )
    .expect("a listed torrent is served");

    let stats = tracker.stats();
    assert_eq!(stats["totals"]["swarms"], 2, "{stats}");
    assert_eq!(stats["totals"]["peers"], 1, "{stats}");
    let swarm = tracker.swarm(&known).expect("the announced torrent");
    assert_eq!(swarm["name"], "known.bin");
    assert_eq!(swarm["size"], 40_000);
    assert_eq!(swarm["peers"][0]["progress"], 0.75);
    let never = tracker
        .swarm(&idle)
        .expect("a listed torrent nobody announced");
    assert_eq!(never["name"], "idle.bin");
    assert_eq!(never["size"], 1000);
    assert!(never["last_activity"].is_null(), "{never}");
    assert!(tracker.swarm(&hex::encode(HASH.0)).is_none());
}

#[test]
fn a_bad_torrent_in_the_dir_is_exit_3_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("torrents")).unwrap();
    torrent_of(dir.path(), "good.bin", &[1; 100]);
    std::fs::write(dir.path().join("torrents/broken.torrent"), "d4:infoi1ee").unwrap();
    let torrents = dir.path().join("torrents");
    let (status, stderr) = run_to_exit(
        &[
            "--listen",
            "127.0.0.1:0",
            "--torrents",
            torrents.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("broken.torrent"), "{stderr}");
    // A missing DIR is the same refusal.
    let missing = dir.path().join("missing");
    let (status, stderr) = run_to_exit(
        &[
            "--listen",
            "127.0.0.1:0",
            "--torrents",
            missing.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(3), "{stderr}");
}

#[test]
fn a_taken_port_is_exit_1() {
    // A port some other socket listens on.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let (status, stderr) = run_to_exit(
        &["--listen", &taken, "--threads", "1"],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {taken}")),
        "{stderr}"
    );
    // Another tracker of ours with several threads (SO_REUSEPORT, same user)
    // must not share its port either: each would see half the swarm.
    let first = Tracker::start(&["--threads", "2"]);
    let port = first.addr.to_string();
    let (status, stderr) = run_to_exit(
        &["--listen", &port, "--threads", "2"],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    drop(holder);
}

#[test]
fn max_numwant_caps_every_reply_and_interval_sets_min_interval() {
    let tracker = Tracker::start(&["--max-numwant", "2", "--interval", "10"]);
    for id in 1..=5 {
        announce(
            &tracker,
            &request(HASH, id, 7000 + u16::from(id), 5, AnnounceEvent::Started),
        )
        .unwrap();
    }
    let asker = |numwant| AnnounceRequest {
        numwant,
        ..request(HASH, 9, 7009, 5, AnnounceEvent::None)
    };
    let reply = announce(&tracker, &asker(Some(50))).unwrap();
    assert_eq!(reply.peers.len(), 2, "numwant=50 over --max-numwant 2");
    assert_eq!(
        announce(&tracker, &asker(None)).unwrap().peers.len(),
        2,
        "the default 50 too"
    );
    assert_eq!(announce(&tracker, &asker(Some(1))).unwrap().peers.len(), 1);
    assert_eq!((reply.interval, reply.min_interval), (10, Some(5)));
}

#[test]
fn max_peers_refuses_new_peers_when_full() {
    let tracker = Tracker::start(&["--max-peers", "3"]);
    let other = InfoHash([0x43; 20]);
    for (hash, id) in [(HASH, 1), (HASH, 2), (other, 3)] {
        announce(
            &tracker,
            &request(hash, id, 7000 + u16::from(id), 5, AnnounceEvent::Started),
        )
        .unwrap();
    }
    // The limit is over all swarms, and only for new peers.
    let fourth = request(HASH, 4, 7004, 5, AnnounceEvent::Started);
    assert_eq!(failure(announce(&tracker, &fourth)), "tracker is full");
    announce(
        &tracker,
        &request(HASH, 1, 7001, 0, AnnounceEvent::Completed),
    )
    .expect("a stored peer may still announce");
    announce(&tracker, &request(HASH, 2, 7002, 5, AnnounceEvent::Stopped)).unwrap();
    announce(&tracker, &fourth).expect("room again after a peer stopped");
    assert_eq!(tracker.stats()["totals"]["peers"], 3);
}

/// The listening sockets on `port` (any address), from /proc/net/tcp and tcp6.
fn listeners_on(port: u16) -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|local| local.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            local_port == Some(port) && fields.get(3) == Some(&"0A")
        })
        .count()
}

/// The names of the tracker's serving threads (`tracker-N`), sorted.
fn serving_threads(pid: u32) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("tracker-"))
        .collect();
    names.sort();
    names
}

#[test]
fn threads_gives_each_accept_loop_a_thread_and_a_socket() {
    for threads in [1usize, 3] {
        let tracker = Tracker::start(&["--threads", &threads.to_string()]);
        assert_eq!(
            listeners_on(tracker.addr.port()),
            threads,
            "--threads {threads}"
        );
        let expected: Vec<String> = (1..threads).map(|n| format!("tracker-{n}")).collect();
        assert_eq!(serving_threads(tracker.process.0.id()), expected);
        // The kernel spreads connections over the sockets; every one is
        // served, into one shared state.
        for id in 1..=40u8 {
            announce(
                &tracker,
                &request(HASH, id, 7000 + u16::from(id), 5, AnnounceEvent::Started),
            )
            .unwrap();
        }
        assert_eq!(tracker.stats()["totals"]["peers"], 40);
    }
}

/// The one peer of `tracker`'s only swarm, if any.
fn only_peer(tracker: &Tracker) -> Option<serde_json::Value> {
    tracker.stats()["swarms"][0]["peers"].get(0).cloned()
}

#[test]
fn grace_is_added_to_the_interval_before_a_peer_expires() {
    let strict = Tracker::start(&["--interval", "1", "--grace", "0"]);
    let lenient = Tracker::start(&["--interval", "1", "--grace", "60"]);
    for tracker in [&strict, &lenient] {
        announce(tracker, &request(HASH, 1, 7001, 5, AnnounceEvent::Started)).unwrap();
    }
    // Silent for more than 1 + 0 s: dropped at the next sweep (every second).
    wait_for(
        "the strict tracker to expire the peer",
        Duration::from_secs(10),
        || only_peer(&strict).is_none().then_some(()),
    );
    // The lenient one keeps it through sweeps well past that.
    wait_for(
        "3 s of silence on the lenient tracker",
        Duration::from_secs(10),
        || {
            let peer = only_peer(&lenient).expect("--grace 60 keeps a peer silent for 3 s");
            (peer["last_announce"].as_u64().unwrap() >= 3).then_some(())
        },
    );
}

#[test]
fn no_full_scrape_refuses_only_the_scrape_of_everything() {
    let closed = Tracker::start(&["--no-full-scrape"]);
    let open = Tracker::start(&[]);
    for tracker in [&closed, &open] {
        announce(tracker, &request(HASH, 1, 7001, 0, AnnounceEvent::Started)).unwrap();
    }
    let (_, body) = http_get(closed.addr, "/scrape").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(&encode_failure("full scrape is disabled"))
    );
    let (_, body) = http_get(open.addr, "/scrape").unwrap();
    assert_eq!(decode_scrape(&body).unwrap().len(), 1);
    let (_, body) = http_get(
        closed.addr,
        &format!("/scrape?info_hash={}", escape(&HASH.0)),
    )
    .unwrap();
    let files = decode_scrape(&body).unwrap();
    assert_eq!((files[0].0, files[0].1.complete), (HASH, 1));
}

#[test]
fn stats_totals_and_rate_follow_the_announces() {
    let tracker = Tracker::start(&[]);
    let other = InfoHash([0x43; 20]);
    let announces = [
        request(HASH, 1, 7001, 0, AnnounceEvent::Started),
        request(HASH, 2, 7002, 50, AnnounceEvent::Started),
        request(HASH, 3, 7003, 50, AnnounceEvent::Started),
        request(HASH, 3, 7003, 0, AnnounceEvent::Completed),
        request(HASH, 4, 7004, 50, AnnounceEvent::Started),
        request(HASH, 4, 7004, 50, AnnounceEvent::Stopped),
        request(other, 5, 7005, 50, AnnounceEvent::Started),
    ];
    for a in &announces {
        announce(&tracker, a).unwrap();
    }
    // A refused announce is not counted.
    let (_, body) = http_get(tracker.addr, "/announce?port=1").unwrap();
    failure(AnnounceResponse::decode(&body));
    let after = tracker.stats();
    let totals = &after["totals"];
    assert_eq!(totals["swarms"], 2, "{after}");
    assert_eq!(totals["peers"], 4, "{after}");
    assert_eq!(totals["seeders"], 2, "{after}");
    assert_eq!(totals["leechers"], 2, "{after}");
    assert_eq!(totals["completed"], 1, "{after}");
    assert_eq!(totals["announces"], announces.len(), "{after}");

    // The rate is the mean over the complete seconds before now, up to 10:
    // once the second of the last announce is over, all of them count.
    let last = after["uptime"].as_u64().unwrap();
    let stats = wait_for(
        "the second of the last announce to end",
        Duration::from_secs(5),
        || {
            let stats = tracker.stats();
            (stats["uptime"].as_u64().unwrap() > last).then_some(stats)
        },
    );
    let uptime = stats["uptime"].as_u64().unwrap();
    assert!(
        uptime <= 10,
        "the test took too long to check the rate: {stats}"
    );
    let rate = stats["totals"]["announce_rate"].as_f64().unwrap();
    let expected = announces.len() as f64 / uptime.max(1) as f64;
    assert!(
        (rate - expected).abs() < 1e-9,
        "rate {rate}, expected {expected}: {stats}"
    );
}

#[test]
fn sigterm_stops_the_real_binary_promptly_with_exit_0() {
    let mut tracker = Tracker::start(&[]);
    announce(&tracker, &request(HASH, 1, 7001, 5, AnnounceEvent::Started)).unwrap();
    // A kept-alive connection that has been served, and one that sent nothing.
    let mut kept = TcpStream::connect(tracker.addr).unwrap();
    write!(kept, "GET /stats HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let silent = TcpStream::connect(tracker.addr).unwrap();

    let pid = tracker.process.0.id();
    let sent = Instant::now();
    run_ok(Command::new("kill").args(["-TERM", &pid.to_string()]));
    let status = wait_for(
        "the tracker to exit on SIGTERM",
        Duration::from_secs(10),
        || tracker.process.0.try_wait().unwrap(),
    );
    let took = sent.elapsed();
    assert!(status.success(), "SIGTERM ends with {status}");
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
    assert!(
        TcpStream::connect_timeout(&tracker.addr, Duration::from_secs(2)).is_err(),
        "still accepting after exit"
    );
    drop(silent);
}
