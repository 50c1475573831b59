//! The listener on real loopback sockets, with small limits: what comes out
//! of `next` (only handshaken peers), what is closed and when.

use std::{future::Future, net::Ipv4Addr, time::Duration};

use common::{
    wire::{Handshake, HANDSHAKE_LEN},
    InfoHash, PeerId,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
    time::{timeout, Instant},
};

use super::*;

const INFO_HASH: InfoHash = InfoHash([7; 20]);

async fn listener(handshakes: usize, per_ip: usize) -> (Listener, SocketAddr) {
    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let ours = Handshake::new(INFO_HASH, PeerId([1; 20]));
    let limits = Limits { handshakes, per_ip };
    (Listener::new(socket, ours, limits), addr)
}

/// A connection to `to` from the loopback address 127.0.0.`last`.
async fn connect_from(last: u8, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), 0)))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// Runs `client` while the listener accepts; no peer may come out meanwhile.
async fn meanwhile<T>(listener: &mut Listener, client: impl Future<Output = T>) -> T {
    tokio::select! {
        peer = listener.next() => panic!("a peer from {} came out unexpectedly", peer.addr),
        out = client => out,
    }
}

/// Lets the listener work until it has `n` connections in their handshake.
async fn until_handshaking(listener: &mut Listener, n: usize) {
    for _ in 0..500 {
        if listener.admission.handshaking() == n {
            return;
        }
        meanwhile(listener, tokio::time::sleep(Duration::from_millis(10))).await;
    }
    panic!(
        "{} handshaking, expected {n}",
        listener.admission.handshaking()
    );
}

/// Whether the listener closed `stream` (it never sends before a handshake).
async fn closed(listener: &mut Listener, stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let read = meanwhile(
        listener,
        timeout(Duration::from_millis(200), stream.read(&mut byte)),
    )
    .await;
    match read {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => panic!("the listener sent something before a handshake"),
        Err(_) => false, // still open
    }
}

/// Sends a handshake for our torrent as `id` and reads the answer.
async fn handshake(stream: &mut TcpStream, id: u8) {
    let hello = Handshake::new(INFO_HASH, PeerId([id; 20]));
    stream.write_all(&hello.encode()).await.unwrap();
    let mut answer = [0u8; HANDSHAKE_LEN];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(Handshake::decode(&answer).unwrap().peer_id, PeerId([1; 20]));
}

/// The next handshaken peer, while `client` handshakes as `id`.
async fn handshaken(listener: &mut Listener, client: &mut TcpStream, id: u8) -> Handshaken {
    let (peer, ()) = tokio::join!(
        async {
            timeout(Duration::from_secs(5), listener.next())
                .await
                .unwrap()
        },
        handshake(client, id)
    );
    assert_eq!(peer.theirs.peer_id, PeerId([id; 20]));
    peer
}

#[tokio::test]
async fn at_the_cap_a_newcomer_closes_the_oldest_handshake_and_gets_in() {
    let (mut listener, addr) = listener(2, 8).await;
    let mut oldest = connect_from(1, addr).await;
    until_handshaking(&mut listener, 1).await;
    let mut second = connect_from(1, addr).await;
    second.write_all(b"\x13Bit").await.unwrap();
    until_handshaking(&mut listener, 2).await;

    let mut honest = connect_from(1, addr).await;
    let peer = handshaken(&mut listener, &mut honest, 9).await;
    assert_eq!(peer.addr, honest.local_addr().unwrap());
    assert!(
        closed(&mut listener, &mut oldest).await,
        "the oldest made room"
    );
    assert!(
        !closed(&mut listener, &mut second).await,
        "the second stays"
    );
    // The honest one's handshake is in: it holds no slot any more.
    assert_eq!(listener.admission.handshaking(), 1);
}

#[tokio::test]
async fn an_address_over_its_limit_is_closed_at_once_and_others_are_not() {
    let (mut listener, addr) = listener(64, 2).await;
    let mut kept = Vec::new();
    for _ in 0..2 {
        kept.push(connect_from(3, addr).await);
    }
    until_handshaking(&mut listener, 2).await;
    let mut third = connect_from(3, addr).await;
    assert!(closed(&mut listener, &mut third).await);
    let mut other = connect_from(4, addr).await;
    until_handshaking(&mut listener, 3).await;
    assert!(!closed(&mut listener, &mut other).await);
    for stream in &mut kept {
        assert!(!closed(&mut listener, stream).await);
    }
}

#[tokio::test]
async fn a_session_keeps_its_address_counted_until_it_ends() {
    let (mut listener, addr) = listener(64, 1).await;
    let mut first = connect_from(5, addr).await;
    let peer = handshaken(&mut listener, &mut first, 2).await;
    // Stand-in for the session task the coordinator would spawn.
    let mut sessions = JoinSet::new();
    let session = sessions.spawn(std::future::pending::<()>());
    listener.started(session.id(), peer.ticket);

    let mut second = connect_from(5, addr).await;
    assert!(closed(&mut listener, &mut second).await, "one per address");
    listener.ended(session.id());
    let mut third = connect_from(5, addr).await;
    handshaken(&mut listener, &mut third, 3).await;
}

/// The deadline counts from accept: a peer that waits 9 s before its first
/// bytes, and then sends only 4 of them, is closed 10 s after it connected,
/// not 10 s after it began.
#[tokio::test(start_paused = true)]
async fn the_deadline_counts_from_accept_including_the_first_bytes() {
    let (mut listener, addr) = listener(64, 8).await;
    let connected = Instant::now();
    let mut slow = connect_from(6, addr).await;
    until_handshaking(&mut listener, 1).await;
    meanwhile(&mut listener, tokio::time::sleep(Duration::from_secs(9))).await;
    slow.write_all(b"\x13Bit").await.unwrap();
    let mut byte = [0u8; 1];
    let read = meanwhile(&mut listener, slow.read(&mut byte)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "closed, not {read:?}");
    let after = connected.elapsed();
    assert!(
        after >= HANDSHAKE_TIMEOUT && after < HANDSHAKE_TIMEOUT + Duration::from_millis(500),
        "closed {after:?} after the connect"
    );
    until_handshaking(&mut listener, 0).await;
    let from = slow.local_addr().unwrap().ip();
    assert_eq!(listener.admission.from_address(from), 0, "nothing left");
}
