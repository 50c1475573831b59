//! Connections to an in-process server on a loopback port chosen by the
//! system, spoken to byte for byte.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::JoinHandle,
};

use crate::baseline::serve::{ServeOptions, Server, Summary};

const BIG: u64 = 256 << 20;

struct Running {
    address: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Summary>,
    _root: tempfile::TempDir,
}

async fn start() -> Running {
    start_with(4).await
}

async fn start_with(max_connections: usize) -> Running {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), b"hello").unwrap();
    // Sparse, and larger than any socket buffer.
    let big = std::fs::File::create(root.path().join("big.bin")).unwrap();
    big.set_len(BIG).unwrap();
    let server = Server::new(ServeOptions {
        root: root.path().to_owned(),
        list: false,
        rate: None,
        max_connections,
    })
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server.run(listener, async {
        let _ = stopped.await;
    }));
    Running {
        address,
        stop,
        task,
        _root: root,
    }
}

/// Sends `request` and reads until the server closes (at most 10 s).
async fn exchange(address: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

fn statuses(reply: &str) -> Vec<&str> {
    reply
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &reply[i + 9..i + 12])
        .collect()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let server = start().await;
    let reply = exchange(
        server.address,
        b"GET /a.txt HTTP/1.1\r\nHost: h\r\n\r\nHEAD /missing HTTP/1.1\r\nHost: h\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=1-2\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(statuses(&reply), ["200", "404", "206"], "{reply}");
    assert!(reply.contains("\r\n\r\nhelloHTTP/1.1 404"), "{reply}");
    assert!(reply.ends_with("connection: close\r\n\r\nel"), "{reply}");
    server.stop.send(()).unwrap();
    let summary = server.task.await.unwrap();
    assert_eq!(
        (summary.requests, summary.transfers, summary.bytes_sent),
        (3, 2, 7)
    );
}

#[tokio::test]
async fn http_1_0_and_requests_with_a_body_are_answered_then_closed() {
    let server = start().await;
    let reply = exchange(server.address, b"GET /a.txt HTTP/1.0\r\n\r\n").await;
    assert!(
        reply.starts_with("HTTP/1.1 200 OK\r\n") && reply.ends_with("close\r\n\r\nhello"),
        "{reply}"
    );
    let reply = exchange(
        server.address,
        b"GET /a.txt HTTP/1.1\r\nContent-Length: 20\r\n\r\nGET /a.txt HTTP/1.1\r\n\r\n",
    )
    .await;
    assert_eq!(
        statuses(&reply),
        ["200"],
        "the body was not read as a request: {reply}"
    );
    server.stop.send(()).unwrap();
}

#[tokio::test]
async fn malformed_and_oversized_heads_are_refused() {
    let server = start().await;
    let reply = exchange(server.address, b"GET /a.txt HTTP/1.1\r\nBad Header\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
    let huge = format!("GET /a.txt HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(20_000));
    let reply = exchange(server.address, huge.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
    let reply = exchange(
        server.address,
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
    server.stop.send(()).unwrap();
}

#[tokio::test]
async fn a_client_that_leaves_midway_counts_as_aborted() {
    let server = start().await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream
        .write_all(b"GET /big.bin HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1024];
    stream.read_exact(&mut first).await.unwrap();
    drop(stream);
    server.stop.send(()).unwrap();
    let summary = server.task.await.unwrap();
    assert_eq!((summary.transfers, summary.aborted), (0, 1));
    assert!(summary.bytes_sent < BIG);
}

/// A request head without the blank line that ends it.
const PARTIAL: &[u8] = b"GET /a.txt HTTP/1.1\r\nHost: h\r\n";

/// Whether the server closed `stream` (a reset counts), waiting at most `within`.
async fn is_closed(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(within, stream.read(&mut byte)).await {
        Err(_) => false,
        Ok(Ok(n)) => {
            assert_eq!(n, 0, "the server sent nothing to a partial head");
            true
        }
        Ok(Err(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
            true
        }
    }
}

#[tokio::test]
async fn idle_connections_give_their_slots_to_a_client_that_talks() {
    let server = start_with(4).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        stream.write_all(PARTIAL).await.unwrap();
        idle.push(stream);
    }
    let reply = exchange(
        server.address,
        b"GET /a.txt HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.ends_with("\r\n\r\nhello"), "{reply}");
    // The one that waited longest made room; the others still wait.
    assert!(is_closed(&mut idle[0], Duration::from_secs(1)).await);
    for stream in &mut idle[1..] {
        assert!(!is_closed(stream, Duration::from_millis(50)).await);
    }
    server.stop.send(()).unwrap();
    let summary = server.task.await.unwrap();
    assert_eq!((summary.evicted, summary.transfers), (1, 1), "{summary:?}");
}

#[tokio::test]
async fn a_connection_that_is_replying_is_never_evicted() {
    let server = start_with(1).await;
    let mut busy = TcpStream::connect(server.address).await.unwrap();
    busy.write_all(b"GET /big.bin HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1024];
    busy.read_exact(&mut first).await.unwrap();
    // The only slot is replying: a newcomer waits, unanswered, in the backlog.
    let mut next = TcpStream::connect(server.address).await.unwrap();
    next.write_all(b"GET /a.txt HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let early =
        tokio::time::timeout(Duration::from_millis(300), next.read_to_end(&mut reply)).await;
    assert!(
        early.is_err(),
        "answered while the slot was busy: {reply:?}"
    );
    drop(busy);
    tokio::time::timeout(Duration::from_secs(10), next.read_to_end(&mut reply))
        .await
        .expect("answered once the slot is free")
        .unwrap();
    assert!(reply.ends_with(b"\r\n\r\nhello"), "{reply:?}");
    server.stop.send(()).unwrap();
    let summary = server.task.await.unwrap();
    assert_eq!((summary.evicted, summary.aborted), (0, 1), "{summary:?}");
}

#[tokio::test(start_paused = true)]
async fn head_deadlines_follow_how_full_the_slots_are() {
    let server = start_with(2).await;
    let mut partial = TcpStream::connect(server.address).await.unwrap();
    partial.write_all(PARTIAL).await.unwrap();
    let mut silent = TcpStream::connect(server.address).await.unwrap();
    // Both slots taken: 2 s each, and the 30 bytes of head earn 60 ms more.
    tokio::time::sleep(Duration::from_millis(1900)).await;
    assert!(!is_closed(&mut silent, Duration::from_millis(1)).await);
    assert!(!is_closed(&mut partial, Duration::from_millis(1)).await);
    assert!(is_closed(&mut silent, Duration::from_millis(150)).await);
    // Half the slots are free again: the partial head has 30 s from its accept.
    assert!(!is_closed(&mut partial, Duration::from_secs(27)).await);
    assert!(is_closed(&mut partial, Duration::from_secs(2)).await);
    server.stop.send(()).unwrap();
    let summary = server.task.await.unwrap();
    assert_eq!(
        (summary.head_timeouts, summary.evicted),
        (2, 0),
        "{summary:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn with_slots_to_spare_an_idle_connection_has_thirty_seconds() {
    let server = start_with(4).await;
    let mut idle = TcpStream::connect(server.address).await.unwrap();
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert!(!is_closed(&mut idle, Duration::from_millis(1)).await);
    assert!(is_closed(&mut idle, Duration::from_secs(2)).await);
    server.stop.send(()).unwrap();
    assert_eq!(server.task.await.unwrap().head_timeouts, 1);
}
