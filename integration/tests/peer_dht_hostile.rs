//! `peer dht` under hostile input on loopback, over a real UDP socket:
//! garbage, oversized and deeply nested datagrams, a reply with far too many
//! nodes, `announce_peer` with a made-up token, and a flood of `get_peers`
//! from one address, whose replies must stay within the per-source rate
//! limit (no amplification). The node keeps answering others throughout.

use std::{
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use common::{
    krpc::{codes, Body, Message, NodeId, Query},
    InfoHash,
};
use integration::peers::DhtNode;

fn query(transaction: &[u8], query: Query) -> Vec<u8> {
    Message {
        transaction: transaction.to_vec(),
        id: Some(NodeId([7; 20])),
        body: Body::Query(query),
        read_only: true,
        requester: None,
        version: None,
    }
    .encode()
}

fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket
}

/// Sends `datagram` and waits for the reply with transaction `t`.
fn ask(socket: &UdpSocket, to: SocketAddr, datagram: &[u8], t: &[u8]) -> Option<Message> {
    socket.send_to(datagram, to).unwrap();
    let mut buffer = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let Ok((len, _)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        if let Ok(message) = Message::decode(&buffer[..len]) {
            if message.transaction == t {
                return Some(message);
            }
        }
    }
    None
}

#[test]
fn garbage_oversized_nested_and_flooding_input_is_survived_and_bounded() {
    let mut node = DhtNode::start();
    let socket = client();
    // Garbage, an oversized datagram, deep nesting, and a "reply" carrying
    // 2,000 nodes (52,000 bytes): none is answered, none stops the node.
    let mut deep = b"d1:ad2:id20:abcdefghij01234567891:x".to_vec();
    deep.extend(std::iter::repeat_n(b'l', 3000));
    deep.extend(std::iter::repeat_n(b'e', 3000));
    deep.extend(b"e1:q4:ping1:t2:aa1:y1:qe");
    let mut flood_of_nodes = b"d1:rd2:id20:abcdefghij01234567895:nodes52000:".to_vec();
    flood_of_nodes.extend(std::iter::repeat_n(7u8, 52_000));
    flood_of_nodes.extend(b"e1:t2:aa1:y1:re");
    for junk in [&b"garbage"[..], &[0xffu8; 9000][..], &deep, &flood_of_nodes] {
        socket.send_to(junk, node.addr).unwrap();
    }
    let pong = ask(&socket, node.addr, &query(b"p1", Query::Ping), b"p1");
    assert!(
        matches!(pong.map(|m| m.body), Some(Body::Reply(_))),
        "still answering"
    );
    assert!(node.counters()["malformed"].as_u64().unwrap() >= 4);

    // announce_peer with a token it never gave: refused with 203.
    let hash = InfoHash([3; 20]);
    let made_up = Query::AnnouncePeer {
        info_hash: hash,
        port: 6881,
        implied_port: false,
        token: b"made-up!".to_vec(),
    };
    let refused = ask(&socket, node.addr, &query(b"a1", made_up), b"a1").expect("an answer");
    assert!(
        matches!(
            refused.body,
            Body::Error {
                code: codes::PROTOCOL,
                ..
            }
        ),
        "{refused:?}"
    );

    // 3,000 get_peers from one address within about a second.
    let flooder = client();
    flooder.set_nonblocking(true).unwrap();
    let request = query(b"fl", Query::GetPeers { info_hash: hash });
    let (mut sent, mut received, mut bytes_out) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    let mut buffer = [0u8; 2048];
    while sent < 3000 && started.elapsed() < Duration::from_secs(5) {
        if flooder.send_to(&request, node.addr).is_ok() {
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(300));
        while let Ok((len, _)) = flooder.recv_from(&mut buffer) {
            received += 1;
            bytes_out += len;
        }
    }
    let flood_seconds = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    while let Ok((len, _)) = flooder.recv_from(&mut buffer) {
        received += 1;
        bytes_out += len;
    }
    // The per-source limit: a burst of 20, then 10 a second (then blocked).
    let allowed = 20 + (10.0 * flood_seconds).ceil() as usize;
    println!("flood: {sent} queries ({} bytes) in {flood_seconds:.2} s, {received} replies ({bytes_out} bytes)", sent * request.len());
    assert!(
        received <= allowed,
        "{received} replies, at most {allowed} allowed"
    );
    assert!(bytes_out < sent * request.len() / 10, "no amplification");
    // Another address is still answered; the counters saw the refusals.
    let other = client();
    let pong = ask(&other, node.addr, &query(b"p2", Query::Ping), b"p2");
    assert!(pong.is_some(), "others are still answered during a flood");
    let counters = node.counters();
    // Whatever reached the node past its limit was refused (the kernel may
    // drop some of the flood first): the flood, two pings and the announce
    // are all it answered.
    let answered = counters["queries_answered"].as_u64().unwrap() as usize;
    assert!(answered <= allowed + 3, "{counters}");
    assert!(
        counters["queries_refused"].as_u64().unwrap() > 0,
        "{counters}"
    );
}
