//! The dashboard (`tracker/src/dashboard.html`) in headless Chromium, served
//! by the real `tracker` binary with `--torrents DIR`: names and sizes from
//! the torrents, totals, each peer's progress bar, the live refresh (a peer
//! announced after the page's first `/stats` appears without a reload), and
//! the error banner once the tracker has stopped.
//!
//! Chromium loads the page through a small relay of ours in front of the
//! tracker, which sees every request the page makes: after it has passed on
//! the first `/stats` it announces a new peer, after the second it stops the
//! tracker with SIGTERM. `--dump-dom` with a virtual-time budget then prints
//! the page as it stands after several refreshes of a single load (virtual
//! time does not advance while a fetch is pending, so the steps cannot race).

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use integration::{
    net::{http_get, wait_for, Tracker},
    peer_info, require_tool, run_ok, workspace_bin, KillOnDrop,
};

/// What the relay does after passing on the page's n-th `/stats` (from 1).
type AfterStats = Box<dyn FnMut(usize) + Send>;

/// An HTTP/1.1 front for the tracker: every GET is fetched from the tracker
/// and passed back; the paths are logged.
struct Relay {
    addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

struct RelayState {
    stats_served: usize,
    after_stats: AfterStats,
}

impl Relay {
    fn start(tracker: SocketAddr, after_stats: AfterStats) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(RelayState {
            stats_served: 0,
            after_stats,
        }));
        let (log, stopping) = (paths.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let (log, state) = (log.clone(), state.clone());
                std::thread::spawn(move || relay_connection(client, tracker, &log, &state));
            }
        });
        Relay { addr, paths, stop }
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}

/// Serves one browser connection (kept alive) until it closes, or until the
/// tracker cannot be reached, which closes it without a reply.
fn relay_connection(
    client: TcpStream,
    tracker: SocketAddr,
    log: &Mutex<Vec<String>>,
    state: &Mutex<RelayState>,
) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut writer = client;
    // Bounded: a browser makes a few requests per connection here.
    for _ in 0..1000 {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        log.lock().unwrap().push(path.clone());
        // One `/stats` at a time, its after-step included.
        let mut state = state.lock().unwrap();
        let Ok((status, body)) = http_get(tracker, &path) else {
            return; // the tracker is gone: close without a reply
        };
        let kind = match path.as_str() {
            "/" => "text/html; charset=utf-8",
            "/stats" => "application/json",
            _ => "text/plain",
        };
        let head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\ncache-control: no-store\r\n\r\n",
            if status == 200 { "OK" } else { "Not Found" },
            body.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
            return;
        }
        let _ = writer.flush();
        if path == "/stats" {
            state.stats_served += 1;
            let n = state.stats_served;
            (state.after_stats)(n);
        }
    }
}

fn announce(tracker: SocketAddr, hash_hex: &str, id: u8, port: u16, left: u64) {
    let hash = hex::decode(hash_hex).unwrap();
    let escaped: String = hash.iter().map(|b| format!("%{b:02X}")).collect();
    let peer_id = String::from_utf8(vec![id; 20]).unwrap();
    let query = format!("/announce?info_hash={escaped}&peer_id={peer_id}&port={port}&uploaded=0&downloaded=0&left={left}&event=started");
    let (status, body) = http_get(tracker, &query).unwrap();
    assert_eq!(status, 200);
    assert!(
        !body.starts_with(b"d14:failure"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

/// Writes `len` bytes named `name` and its torrent into `dir/torrents`;
/// returns the info-hash.
fn torrent_of(dir: &std::path::Path, name: &str, len: usize) -> String {
    let data = dir.join(name);
    std::fs::write(&data, vec![3; len]).unwrap();
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

#[test]
fn the_dashboard_refreshes_live_and_shows_the_error_banner_in_a_real_browser() {
    require_tool("chromium");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("torrents")).unwrap();
    let movie = torrent_of(dir.path(), "movie.bin", 40_000);
    let idle = torrent_of(dir.path(), "idle.iso", 3 << 20);
    let torrents = dir.path().join("torrents");
    let tracker = Tracker::start(&["--torrents", torrents.to_str().unwrap()]);
    let addr = tracker.addr;
    // A seeder, a quarter and three quarters done.
    for (id, port, left) in [(b'a', 7001, 0), (b'b', 7002, 30_000), (b'c', 7003, 10_000)] {
        announce(addr, &movie, id, port, left);
    }

    let pid = tracker.process.0.id();
    let late_peer = movie.clone();
    let relay = Relay::start(
        addr,
        Box::new(move |served| match served {
            // The page has drawn three peers; a fourth arrives.
            1 => announce(addr, &late_peer, b'd', 7004, 40_000),
            // The page has drawn four; the tracker goes away.
            2 => {
                run_ok(Command::new("kill").args(["-TERM", &pid.to_string()]));
                wait_for(
                    "the tracker to stop serving",
                    Duration::from_secs(10),
                    || http_get(addr, "/stats").is_err().then_some(()),
                );
            }
            _ => {}
        }),
    );

    let chromium = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
        ])
        .args(["--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync"])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .args(["--virtual-time-budget=6000", "--dump-dom"])
        .arg(format!("http://{}/", relay.addr))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium runs");
    let mut chromium = KillOnDrop(chromium);
    // Bounded: a page that reloads itself never lets --dump-dom finish.
    let deadline = Instant::now() + Duration::from_secs(60);
    while chromium.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "chromium printed no page within 60 s; the page asked for {:?}",
            relay.paths()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut dom = String::new();
    std::io::Read::read_to_string(chromium.0.stdout.as_mut().unwrap(), &mut dom).unwrap();

    // Names and sizes from --torrents; the never-announced torrent too.
    let card = |hash: &str| {
        let start = dom
            .find(&format!("data-info-hash=\"{hash}\""))
            .unwrap_or_else(|| panic!("swarm {hash} missing from the page:\n{dom}"));
        let end = dom[start..]
            .find("class=\"swarm\"")
            .map_or(dom.len(), |n| start + n);
        dom[start..end].to_owned()
    };
    let movie_card = card(&movie);
    assert!(movie_card.contains("<h2>movie.bin</h2>"), "{movie_card}");
    assert!(
        movie_card.contains(&format!("{movie} · 39.1 KiB")),
        "{movie_card}"
    );
    let idle_card = card(&idle);
    assert!(idle_card.contains("<h2>idle.iso</h2>"), "{idle_card}");
    assert!(
        idle_card.contains(&format!("{idle} · 3.0 MiB")),
        "{idle_card}"
    );
    assert!(idle_card.contains("no announce yet"), "{idle_card}");

    // The fourth peer, announced after the first /stats, is on the page: it
    // was redrawn. Counts and totals are the second /stats.
    let paths = relay.paths();
    assert!(
        movie_card.contains("data-address=\"127.0.0.1:7004\""),
        "the peer announced after the first /stats is not on the page ({paths:?}):\n{movie_card}"
    );
    assert!(
        movie_card.contains("seeders: 1") && movie_card.contains("leechers: 3"),
        "{movie_card}"
    );
    for (label, value) in [
        ("swarms", "2"),
        ("peers", "4"),
        ("seeders", "1"),
        ("leechers", "3"),
    ] {
        assert!(
            dom.contains(&format!("{label}: <b>{value}</b>")),
            "totals: {label} {value} missing:\n{dom}"
        );
    }
    // Each peer's row: its address, a bar filled to its progress, the figure.
    for (port, percent) in [
        (7001, "100.0%"),
        (7002, "25.0%"),
        (7003, "75.0%"),
        (7004, "0.0%"),
    ] {
        let row_start = movie_card
            .find(&format!("data-address=\"127.0.0.1:{port}\""))
            .unwrap_or_else(|| panic!("peer {port} missing from the page:\n{movie_card}"));
        let row = &movie_card[row_start..];
        let row = &row[..row.find("</tr>").unwrap_or(row.len())];
        let width = percent.replace(".0%", "%");
        assert!(
            row.contains(&format!("width: {width};"))
                || row.contains(&format!("width: {percent};")),
            "peer {port}: bar not at {percent}: {row}"
        );
        assert!(
            row.contains(&format!("class=\"pct\">{percent}<")),
            "peer {port}: {row}"
        );
    }
    // All of it from one load of the page, refreshed several times.
    assert_eq!(
        paths.iter().filter(|p| *p == "/").count(),
        1,
        "the page was reloaded: {paths:?}"
    );
    assert!(
        paths.iter().filter(|p| *p == "/stats").count() >= 3,
        "{paths:?}"
    );
    // The tracker stopped while the page was open: the banner says so.
    assert!(
        dom.contains("<div id=\"error\">cannot reach the tracker"),
        "no error banner:\n{dom}"
    );
}

/// Chromium's DOM of `url` after a few seconds of virtual time.
fn dump_dom(url: &str, profile: &std::path::Path) -> String {
    let chromium = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
        ])
        .args(["--no-first-run", "--disable-background-networking"])
        .args(["--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=3000", "--dump-dom", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium runs");
    let mut chromium = KillOnDrop(chromium);
    let deadline = Instant::now() + Duration::from_secs(60);
    while chromium.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "chromium printed no page within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut dom = String::new();
    std::io::Read::read_to_string(chromium.0.stdout.as_mut().unwrap(), &mut dom).unwrap();
    dom
}

/// A UDP announce (BEP 15) to `tracker` from 127.0.0.1.
fn announce_udp(
    tracker: SocketAddr,
    hash: [u8; 20],
    id: u8,
    port: u16,
    left: u64,
    downloaded: u64,
) {
    use common::tracker_proto::{udp, AnnounceEvent};
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(tracker).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let exchange = |request: udp::Request| {
        let mut packet = Vec::new();
        request.encode(&mut packet);
        socket.send(&packet).unwrap();
        let mut buffer = [0u8; 2048];
        let n = socket.recv(&mut buffer).expect("a UDP reply");
        udp::Response::parse(&buffer[..n], false).unwrap()
    };
    let udp::Response::Connect { connection_id, .. } =
        exchange(udp::Request::Connect { transaction_id: 1 })
    else {
        panic!("no connect reply")
    };
    let reply = exchange(udp::Request::Announce(udp::Announce {
        connection_id,
        transaction_id: 2,
        info_hash: common::InfoHash(hash),
        peer_id: common::PeerId([id; 20]),
        downloaded,
        left,
        uploaded: 0,
        event: AnnounceEvent::Started,
        ip: None,
        key: 0,
        num_want: None,
        port,
        url_data: Vec::new(),
    }));
    assert!(matches!(reply, udp::Response::Announce { .. }), "{reply:?}");
}

#[test]
fn without_torrent_files_progress_is_learned_from_http_and_udp_announces() {
    require_tool("chromium");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start(&[]);
    let hash = [0x5a; 20];
    let hash_hex = hex::encode(hash);
    // A seeder that downloaded nothing says nothing of the size; a leecher
    // over HTTP a quarter done (from nothing: left + downloaded = 40,000);
    // one over UDP three quarters done.
    announce(tracker.addr, &hash_hex, b'a', 7001, 0);
    let escaped: String = hash.iter().map(|b| format!("%{b:02X}")).collect();
    let peer_id = "b".repeat(20);
    let query = format!("/announce?info_hash={escaped}&peer_id={peer_id}&port=7002&uploaded=0&downloaded=10000&left=30000&event=started");
    assert_eq!(http_get(tracker.addr, &query).unwrap().0, 200);
    announce_udp(tracker.udp.expect("UDP"), hash, b'c', 7003, 10_000, 30_000);

    let dom = dump_dom(
        &format!("http://{}/", tracker.addr),
        &dir.path().join("profile"),
    );
    for (port, percent) in [(7001, "100.0%"), (7002, "25.0%"), (7003, "75.0%")] {
        let row_start = dom
            .find(&format!("data-address=\"127.0.0.1:{port}\""))
            .unwrap_or_else(|| panic!("peer {port} missing from the page:\n{dom}"));
        let row = &dom[row_start..];
        let row = &row[..row.find("</tr>").unwrap_or(row.len())];
        assert!(
            row.contains(&format!("class=\"pct\">{percent}<")),
            "peer {port}: not at {percent} (a \"?\" means the size was not learned): {row}"
        );
    }
    assert!(
        dom.contains("39.1 KiB"),
        "the learned size is shown:\n{dom}"
    );
}
