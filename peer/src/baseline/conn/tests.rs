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
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), b"hello").unwrap();
    // Sparse, and larger than any socket buffer.
    let big = std::fs::File::create(root.path().join("big.bin")).unwrap();
    big.set_len(BIG).unwrap();
    let server = Server::new(ServeOptions {
        root: root.path().to_owned(),
        list: false,
        rate: None,
        max_connections: 4,
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
