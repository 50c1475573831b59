//! The peer's address rules and the whitelist on the announce fast path
//! (`tracker::fast`), over real loopback sockets, with the requests real
//! clients send: HTTP/1.0, or HTTP/1.1 with `Connection: close`. Clients
//! connect from chosen loopback addresses (127.0.0.x), so the trusted proxy
//! and an untrusted source are both real sources; a stored address is read
//! from another peer's announce reply, never after a request that could have
//! rewritten it.

use std::{net::SocketAddr, time::Duration};

use common::{
    tracker_proto::{AnnounceEvent, AnnounceRequest, AnnounceResponse, ResponseError},
    InfoHash, PeerId,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracker::{
    catalog::{Catalog, KnownTorrent},
    AppState, Config,
};

mod support;
use support::RealServer;

const HASH: InfoHash = InfoHash([0xcd; 20]);

fn request(id: u8, port: u16) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: HASH,
        peer_id: PeerId([id; 20]),
        port,
        uploaded: 0,
        downloaded: 0,
        left: 5,
        event: AnnounceEvent::Started,
        compact: true,
        no_peer_id: false,
        numwant: None,
        key: None,
        ip: None,
    }
}

/// The two request forms the fast path answers.
#[derive(Clone, Copy)]
enum Form {
    Http10,
    Http11Close,
}

/// Sends one announce from `source` (a loopback address) in `form`, with
/// `headers` (each a whole line), and returns the decoded reply.
async fn announce_from(
    server: SocketAddr,
    source: [u8; 4],
    form: Form,
    headers: &str,
    request: &AnnounceRequest,
) -> Result<AnnounceResponse, ResponseError> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let query = request.to_query();
    let head = match form {
        Form::Http10 => format!("GET /announce?{query} HTTP/1.0\r\n{headers}\r\n"),
        Form::Http11Close => format!(
            "GET /announce?{query} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n"
        ),
    };
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server closes after one reply: read to the end.
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
        .await
        .expect("the tracker answers and closes within 5 s")
        .unwrap();
    let text = String::from_utf8_lossy(&reply);
    let status = match form {
        Form::Http10 => "HTTP/1.0 200 OK\r\n",
        Form::Http11Close => "HTTP/1.1 200 OK\r\n",
    };
    assert!(text.starts_with(status), "{text}");
    let split = text.find("\r\n\r\n").expect("a whole head") + 4;
    AnnounceResponse::decode(&reply[split..])
}

/// The addresses another peer is told about, sorted: what the tracker stored.
async fn stored_addresses(server: SocketAddr, observer: u8) -> Vec<String> {
    let reply = announce_from(
        server,
        [127, 0, 0, 9],
        Form::Http10,
        "",
        &request(observer, 9999),
    )
    .await
    .unwrap();
    let mut addrs: Vec<String> = reply.peers.iter().map(|p| p.addr.to_string()).collect();
    addrs.sort();
    addrs
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_the_trusted_proxy() {
    let state = AppState::new(Config {
        trusted_proxy: Some("127.0.0.2".parse().unwrap()),
        ..Config::default()
    });
    let server = RealServer::start(state.clone()).await;
    let proxied = "X-Forwarded-For: 1.1.1.1, 192.0.2.7\r\n";
    // Through the proxy, in both forms: the header's last hop is the peer.
    announce_from(
        server.addr,
        [127, 0, 0, 2],
        Form::Http10,
        proxied,
        &request(1, 7001),
    )
    .await
    .unwrap();
    announce_from(
        server.addr,
        [127, 0, 0, 2],
        Form::Http11Close,
        "X-Forwarded-For: 192.0.2.8\r\n",
        &request(2, 7002),
    )
    .await
    .unwrap();
    // From anyone else the header is ignored: the peer is the source.
    announce_from(
        server.addr,
        [127, 0, 0, 3],
        Form::Http10,
        proxied,
        &request(3, 7003),
    )
    .await
    .unwrap();
    announce_from(
        server.addr,
        [127, 0, 0, 4],
        Form::Http11Close,
        proxied,
        &request(4, 7004),
    )
    .await
    .unwrap();
    assert_eq!(
        stored_addresses(server.addr, 99).await,
        [
            "127.0.0.3:7003",
            "127.0.0.4:7004",
            "192.0.2.7:7001",
            "192.0.2.8:7002"
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn the_ip_parameter_counts_only_when_allowed() {
    let with_ip = AnnounceRequest {
        ip: Some("198.51.100.4".parse().unwrap()),
        ..request(1, 7001)
    };
    for (allow, expected) in [(false, "127.0.0.5:7001"), (true, "198.51.100.4:7001")] {
        let state = AppState::new(Config {
            allow_ip_param: allow,
            ..Config::default()
        });
        let server = RealServer::start(state).await;
        for form in [Form::Http10, Form::Http11Close] {
            announce_from(server.addr, [127, 0, 0, 5], form, "", &with_ip)
                .await
                .unwrap();
            assert_eq!(
                stored_addresses(server.addr, 99).await,
                [expected],
                "allow_ip_param {allow}"
            );
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn the_whitelist_refuses_unknown_torrents_on_the_fast_path() {
    let mut catalog = Catalog::new();
    catalog.insert(
        HASH,
        KnownTorrent {
            name: "known.bin".into(),
            total_length: 10,
        },
    );
    let state = AppState::new(Config {
        catalog: Some(catalog),
        ..Config::default()
    });
    let server = RealServer::start(state.clone()).await;
    let unknown = AnnounceRequest {
        info_hash: InfoHash([1; 20]),
        ..request(1, 7001)
    };
    for form in [Form::Http10, Form::Http11Close] {
        match announce_from(server.addr, [127, 0, 0, 1], form, "", &unknown).await {
            Err(ResponseError::Failure(reason)) => assert_eq!(reason, "unregistered torrent"),
            other => panic!("an unknown torrent was served: {other:?}"),
        }
    }
    assert_eq!(state.swarms.peer_count(), 0, "no refused peer is stored");
    for form in [Form::Http10, Form::Http11Close] {
        announce_from(server.addr, [127, 0, 0, 1], form, "", &request(2, 7002))
            .await
            .expect("a listed torrent is served");
    }
    assert_eq!(state.swarms.peer_count(), 1);
    server.stop().await;
}
