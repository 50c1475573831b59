//! The tracker's HTTP interface, tested through the router with `oneshot`:
//! every bad-request class, compact and dictionary replies, scrape counts,
//! whitelist mode, the peer's address rules; and a real server on port 0 that
//! answers a closing announce (its fast path) as hyper and axum would, and
//! expires a silent peer and shuts down cleanly. The same address and
//! whitelist rules on that fast path, over real sockets, are in `fast_path.rs`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{body::Body, extract::connect_info::MockConnectInfo, http::Request};
use common::{
    tracker_proto::{
        escape, response::decode_scrape, AnnounceEvent, AnnounceRequest, AnnounceResponse,
        ResponseError, ScrapeStats,
    },
    InfoHash, PeerId,
};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tracker::{app, AppState, Config};

mod support;
use support::RealServer;

const HASH: InfoHash = InfoHash([0xab; 20]);

fn request(id: u8, port: u16, left: u64, event: AnnounceEvent) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: HASH,
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

async fn get_from(
    state: &Arc<AppState>,
    from: SocketAddr,
    uri: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<u8>) {
    let mut builder = Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = app(state.clone())
        .layer(MockConnectInfo(from))
        .oneshot(builder.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

async fn get(state: &Arc<AppState>, uri: &str) -> (u16, Vec<u8>) {
    get_from(state, "10.1.1.1:40000".parse().unwrap(), uri, &[]).await
}

async fn announce(
    state: &Arc<AppState>,
    from: [u8; 4],
    request: &AnnounceRequest,
) -> Result<AnnounceResponse, ResponseError> {
    let (status, body) = get_from(
        state,
        SocketAddr::from((from, 40000)),
        &format!("/announce?{}", request.to_query()),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    AnnounceResponse::decode(&body)
}

async fn failure_of(state: &Arc<AppState>, uri: &str) -> String {
    let (status, body) = get(state, uri).await;
    assert_eq!(status, 200, "refusals are HTTP 200");
    match AnnounceResponse::decode(&body) {
        Err(ResponseError::Failure(reason)) => reason,
        other => panic!("{uri}: expected a failure reason, got {other:?}"),
    }
}

#[tokio::test]
async fn every_bad_request_class_gets_its_failure_reason() {
    let state = AppState::new(Config::default());
    let good = request(1, 6881, 10, AnnounceEvent::Started).to_query();
    let h = escape(&HASH.0);
    let cases = [
        (
            format!("/announce?peer_id={}&port=1&left=0", "a".repeat(20)),
            "missing info_hash",
        ),
        (
            format!("/announce?info_hash={h}&port=1&left=0"),
            "missing peer_id",
        ),
        (
            format!(
                "/announce?info_hash=abc&peer_id={}&port=1&left=0",
                "a".repeat(20)
            ),
            "info_hash must be 20 bytes, got 3",
        ),
        (
            format!("/announce?info_hash={h}&peer_id=short&port=1&left=0"),
            "peer_id must be 20 bytes, got 5",
        ),
        (good.replace("port=6881", "port=0"), "invalid port"),
        (good.replace("port=6881", "port=99999"), "invalid port"),
        (good.replace("left=10", "left=ten"), "left is not a number"),
        (
            good.replace("downloaded=0", "downloaded=-5"),
            "downloaded is not a number",
        ),
        (
            good.replace("event=started", "event=bogus"),
            "unknown event \"bogus\"",
        ),
        (
            format!("/announce?{good}&x=%G0"),
            "malformed percent-encoding in `%G0`",
        ),
        (
            format!("/announce?{good}&pad={}", "x".repeat(9000)),
            "query longer than 8192 bytes",
        ),
        (
            "/scrape?info_hash=short".to_string(),
            "info_hash must be 20 bytes, got 5",
        ),
    ];
    for (uri, reason) in cases {
        let uri = if uri.starts_with('/') {
            uri
        } else {
            format!("/announce?{uri}")
        };
        assert_eq!(failure_of(&state, &uri).await, reason, "{uri}");
    }
    assert_eq!(
        state.swarms.peer_count(),
        0,
        "no refused announce is stored"
    );
}

#[tokio::test]
async fn compact_and_dictionary_replies_list_the_other_peers() {
    let state = AppState::new(Config::default());
    announce(
        &state,
        [10, 0, 0, 1],
        &request(1, 7001, 0, AnnounceEvent::Started),
    )
    .await
    .unwrap();
    announce(
        &state,
        [10, 0, 0, 2],
        &request(2, 7002, 50, AnnounceEvent::Started),
    )
    .await
    .unwrap();

    let compact = announce(
        &state,
        [10, 0, 0, 3],
        &request(3, 7003, 50, AnnounceEvent::Started),
    )
    .await
    .unwrap();
    let mut addrs: Vec<String> = compact.peers.iter().map(|p| p.addr.to_string()).collect();
    addrs.sort();
    assert_eq!(addrs, ["10.0.0.1:7001", "10.0.0.2:7002"]);
    assert_eq!(
        (compact.complete, compact.incomplete, compact.interval),
        (1, 2, 120)
    );
    assert!(
        compact.peers.iter().all(|p| p.peer_id.is_none()),
        "compact replies carry no ids"
    );

    let dictionary = announce(
        &state,
        [10, 0, 0, 3],
        &AnnounceRequest {
            compact: false,
            ..request(3, 7003, 50, AnnounceEvent::None)
        },
    )
    .await
    .unwrap();
    // Peers are stored by address, without their ids (as opentracker and
    // aquatic store them): a dictionary reply lists addresses only.
    let mut listed: Vec<String> = dictionary
        .peers
        .iter()
        .map(|p| p.addr.to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, ["10.0.0.1:7001", "10.0.0.2:7002"]);
    assert!(dictionary.peers.iter().all(|p| p.peer_id.is_none()));
    let no_ids = AnnounceRequest {
        compact: false,
        no_peer_id: true,
        ..request(3, 7003, 50, AnnounceEvent::None)
    };
    assert!(announce(&state, [10, 0, 0, 3], &no_ids)
        .await
        .unwrap()
        .peers
        .iter()
        .all(|p| p.peer_id.is_none()));

    // A seeder is told only about leechers.
    let seeder = announce(
        &state,
        [10, 0, 0, 1],
        &request(1, 7001, 0, AnnounceEvent::None),
    )
    .await
    .unwrap();
    let mut addrs: Vec<String> = seeder.peers.iter().map(|p| p.addr.to_string()).collect();
    addrs.sort();
    assert_eq!(addrs, ["10.0.0.2:7002", "10.0.0.3:7003"]);

    // numwant is honoured and capped by the operator's maximum.
    let one = announce(
        &state,
        [10, 0, 0, 3],
        &AnnounceRequest {
            numwant: Some(1),
            ..request(3, 7003, 50, AnnounceEvent::None)
        },
    )
    .await
    .unwrap();
    assert_eq!(one.peers.len(), 1);
}

#[tokio::test]
async fn ipv6_peers_come_back_in_peers6() {
    let state = AppState::new(Config::default());
    let from: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
    get_from(
        &state,
        from,
        &format!(
            "/announce?{}",
            request(1, 7001, 5, AnnounceEvent::Started).to_query()
        ),
        &[],
    )
    .await;
    let reply = announce(
        &state,
        [10, 0, 0, 2],
        &request(2, 7002, 5, AnnounceEvent::Started),
    )
    .await
    .unwrap();
    assert_eq!(reply.peers[0].addr, "[2001:db8::1]:7001".parse().unwrap());
}

#[tokio::test]
async fn scrape_counts_follow_started_completed_and_stopped() {
    let state = AppState::new(Config::default());
    let scrape = |state: Arc<AppState>| async move {
        let (_, body) = get(&state, &format!("/scrape?info_hash={}", escape(&HASH.0))).await;
        decode_scrape(&body).unwrap()[0].1
    };
    announce(
        &state,
        [10, 0, 0, 1],
        &request(1, 7001, 100, AnnounceEvent::Started),
    )
    .await
    .unwrap();
    announce(
        &state,
        [10, 0, 0, 2],
        &request(2, 7002, 100, AnnounceEvent::Started),
    )
    .await
    .unwrap();
    assert_eq!(
        scrape(state.clone()).await,
        ScrapeStats {
            complete: 0,
            downloaded: 0,
            incomplete: 2
        }
    );
    announce(
        &state,
        [10, 0, 0, 1],
        &request(1, 7001, 0, AnnounceEvent::Completed),
    )
    .await
    .unwrap();
    assert_eq!(
        scrape(state.clone()).await,
        ScrapeStats {
            complete: 1,
            downloaded: 1,
            incomplete: 1
        }
    );
    announce(
        &state,
        [10, 0, 0, 2],
        &request(2, 7002, 100, AnnounceEvent::Stopped),
    )
    .await
    .unwrap();
    assert_eq!(
        scrape(state.clone()).await,
        ScrapeStats {
            complete: 1,
            downloaded: 1,
            incomplete: 0
        }
    );

    // An unknown hash scrapes as zeros; no hash lists every swarm.
    let (_, body) = get(
        &state,
        &format!(
            "/scrape?info_hash={}&info_hash={}",
            escape(&HASH.0),
            "z".repeat(20)
        ),
    )
    .await;
    assert_eq!(decode_scrape(&body).unwrap().len(), 2);
    let (_, body) = get(&state, "/scrape").await;
    assert_eq!(
        decode_scrape(&body).unwrap(),
        vec![(
            HASH,
            ScrapeStats {
                complete: 1,
                downloaded: 1,
                incomplete: 0
            }
        )]
    );
    let closed = AppState::new(Config {
        allow_full_scrape: false,
        ..Config::default()
    });
    assert_eq!(
        failure_of(&closed, "/scrape").await,
        "full scrape is disabled"
    );
}

#[tokio::test]
async fn whitelist_mode_refuses_unknown_torrents() {
    let mut catalog = tracker::catalog::Catalog::new();
    catalog.insert(
        HASH,
        tracker::catalog::KnownTorrent {
            name: "seed.bin".into(),
            total_length: 100,
        },
    );
    let state = AppState::new(Config {
        catalog: Some(catalog),
        ..Config::default()
    });
    let other = AnnounceRequest {
        info_hash: InfoHash([1; 20]),
        ..request(1, 7001, 5, AnnounceEvent::Started)
    };
    assert_eq!(
        failure_of(&state, &format!("/announce?{}", other.to_query())).await,
        "unregistered torrent"
    );
    announce(
        &state,
        [10, 0, 0, 1],
        &request(1, 7001, 25, AnnounceEvent::Started),
    )
    .await
    .unwrap();
    let (_, body) = get(&state, "/stats").await;
    let stats: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let swarm = &stats["swarms"][0];
    assert_eq!(swarm["name"], "seed.bin");
    assert_eq!(swarm["peers"][0]["progress"], 0.75);
    assert_eq!(swarm["peers"][0]["address"], "10.0.0.1:7001");
}

#[tokio::test]
async fn the_peer_address_is_the_source_unless_a_trusted_proxy_or_allowed_ip_says_otherwise() {
    let proxy: SocketAddr = "10.9.9.9:5000".parse().unwrap();
    let state = AppState::new(Config {
        trusted_proxy: Some(proxy.ip()),
        ..Config::default()
    });
    let query = format!(
        "/announce?{}",
        request(1, 7001, 5, AnnounceEvent::Started).to_query()
    );
    get_from(
        &state,
        proxy,
        &query,
        &[("x-forwarded-for", "1.1.1.1, 192.0.2.7")],
    )
    .await;
    // From anyone else the header is ignored.
    let query2 = format!(
        "/announce?{}",
        request(2, 7002, 5, AnnounceEvent::Started).to_query()
    );
    get_from(
        &state,
        "10.0.0.2:1".parse().unwrap(),
        &query2,
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    let (_, body) = get(&state, "/stats").await;
    let stats: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut addrs: Vec<String> = stats["swarms"][0]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["address"].as_str().unwrap().to_owned())
        .collect();
    addrs.sort();
    assert_eq!(addrs, ["10.0.0.2:7002", "192.0.2.7:7001"]);

    let with_ip = AnnounceRequest {
        ip: Some("198.51.100.4".parse().unwrap()),
        ..request(3, 7003, 5, AnnounceEvent::Started)
    };
    let strict = AppState::new(Config::default());
    announce(&strict, [10, 0, 0, 3], &with_ip).await.unwrap();
    let lax = AppState::new(Config {
        allow_ip_param: true,
        ..Config::default()
    });
    announce(&lax, [10, 0, 0, 3], &with_ip).await.unwrap();
    let seen = |state: Arc<AppState>| async move {
        let (_, body) = get(&state, "/stats").await;
        let stats: serde_json::Value = serde_json::from_slice(&body).unwrap();
        stats["swarms"][0]["peers"][0]["address"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(seen(strict).await, "10.0.0.3:7003");
    assert_eq!(seen(lax).await, "198.51.100.4:7003");
}

#[tokio::test]
async fn a_real_server_expires_a_silent_peer_and_shuts_down() {
    let state = AppState::new(Config {
        interval: 1,
        grace: 1,
        ..Config::default()
    });
    let server = RealServer::start(state.clone()).await;
    let addr = server.addr;

    // A raw HTTP/1.0 request over a real socket: the tracker sees 127.0.0.1.
    let query = request(1, 7001, 5, AnnounceEvent::Started).to_query();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(format!("GET /announce?{query} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(state.swarms.peer_count(), 1);

    // interval 1 s + grace 1 s: the sweeper (every second) must drop it soon after.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while state.swarms.peer_count() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the silent peer was never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

/// Sends `request` on a fresh connection and reads one response: to the end
/// of the stream, or, for a kept connection, to the end of its body.
async fn exchange(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        let text = String::from_utf8_lossy(&reply);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|n| n.parse::<usize>().ok());
            if length == Some(body.len()) {
                break;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("a reply within 5 s")
            .unwrap();
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// The response without its `date` and `connection` lines, which depend on
/// the second and on the connection.
fn comparable(response: &str) -> String {
    response
        .split("\r\n")
        .filter(|line| !line.starts_with("date: ") && !line.starts_with("connection: "))
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[tokio::test]
async fn a_closing_announce_gets_the_same_reply_as_through_hyper() {
    // Each path on a tracker of its own, so both replies describe the same
    // swarm, and through the trusted proxy each names its own address.
    let start = || async {
        let state = AppState::new(Config {
            trusted_proxy: Some("127.0.0.1".parse().unwrap()),
            ..Config::default()
        });
        let server = RealServer::start(state.clone()).await;
        (state, server)
    };
    // The stored addresses, read without announcing.
    let stored = |state: Arc<AppState>| async move {
        let (_, stats) = get(&state, "/stats").await;
        let stats: serde_json::Value = serde_json::from_slice(&stats).unwrap();
        let peers = stats["swarms"][0]["peers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        peers
            .iter()
            .map(|p| p["address"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let seeder = request(1, 7001, 0, AnnounceEvent::Started).to_query();
    for target in [
        format!("/announce?{seeder}"),
        "/announce?port=1".to_owned(),
        "/announce".to_owned(),
    ] {
        // Closing: answered by the fast path. Kept alive: by hyper and axum.
        let (fast_state, fast_server) = start().await;
        let fast = exchange(
            fast_server.addr,
            &format!(
                "GET {target} HTTP/1.1\r\nX-Forwarded-For: 10.9.9.9\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        let (hyper_state, hyper_server) = start().await;
        let hyper = exchange(
            hyper_server.addr,
            &format!("GET {target} HTTP/1.1\r\nX-Forwarded-For: 10.9.9.8\r\n\r\n"),
        )
        .await;
        if target.contains("peer_id") {
            assert_eq!(
                stored(fast_state).await,
                ["10.9.9.9:7001"],
                "after the fast path"
            );
            assert_eq!(stored(hyper_state).await, ["10.9.9.8:7001"], "after hyper");
        }
        assert!(fast.contains("\r\nconnection: close\r\n"), "{fast}");
        assert!(fast.starts_with("HTTP/1.1 200 OK\r\n"), "{fast}");
        assert_eq!(comparable(&fast), comparable(&hyper));
        fast_server.stop().await;
        hyper_server.stop().await;
    }
}
