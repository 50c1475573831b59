//! The UDP tracker client against scripted trackers on loopback sockets:
//! URLs, the connect-then-announce exchange, BEP 41 URL data, transaction
//! ids, retries, error replies and trackers that are gone or silent.

use std::sync::{Arc, Mutex};

use common::{
    tracker_proto::udp::{Request, Response},
    InfoHash, PeerId,
};

use super::*;

const WAIT: Duration = Duration::from_millis(150);

fn progress() -> Progress {
    Progress {
        uploaded: 1,
        downloaded: 2,
        left: 3,
    }
}

async fn announce(tracker: &mut UdpTracker) -> Result<AnnounceResponse, String> {
    tracker
        .announce(
            InfoHash([1; 20]),
            PeerId([2; 20]),
            6881,
            7,
            AnnounceEvent::Started,
            progress(),
        )
        .await
}

/// A tracker on `addr` that answers with `script(request, n)` (the n-th
/// request it got, from 0): zero or more replies. It records each request.
async fn scripted(
    addr: &str,
    script: impl Fn(&Request, usize) -> Vec<Response> + Send + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<Request>>>) {
    let socket = UdpSocket::bind(addr).await.unwrap();
    let local = socket.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut buffer = [0u8; 2048];
        for n in 0..50 {
            let Ok((len, from)) = socket.recv_from(&mut buffer).await else {
                return;
            };
            let request = Request::parse(&buffer[..len]).unwrap();
            for reply in script(&request, n) {
                let mut out = Vec::new();
                reply.encode(&mut out);
                socket.send_to(&out, from).await.unwrap();
            }
            log.lock().unwrap().push(request);
        }
    });
    (local, seen)
}

fn tid(request: &Request) -> u32 {
    match request {
        Request::Connect { transaction_id } => *transaction_id,
        Request::Announce(a) => a.transaction_id,
        Request::Scrape { transaction_id, .. } => *transaction_id,
    }
}

fn peers_reply(transaction_id: u32, peers: Vec<SocketAddr>) -> Response {
    Response::Announce {
        transaction_id,
        interval: 60,
        leechers: 1,
        seeders: 2,
        peers,
    }
}

#[test]
fn urls_are_read_with_their_path_as_url_data() {
    let t = UdpTracker::parse("udp://tracker.example:6969/announce?k=1").unwrap();
    assert_eq!((t.host.as_str(), t.port), ("tracker.example", 6969));
    assert_eq!(t.url_data, b"/announce?k=1");
    let t = UdpTracker::parse("udp://[::1]:80").unwrap();
    assert_eq!((t.host.as_str(), t.port, t.url_data.len()), ("::1", 80, 0));
    for bad in [
        "http://a:1/",
        "udp://a",
        "udp://a:0",
        "udp://:5",
        "udp://[::1]",
        "udp://a:x",
    ] {
        assert!(UdpTracker::parse(bad).is_none(), "{bad}");
    }
}

#[tokio::test]
async fn connects_once_then_announces_with_the_id_and_url_data() {
    let (addr, seen) = scripted("127.0.0.1:0", |request, _| match request {
        Request::Connect { transaction_id } => vec![Response::Connect {
            transaction_id: *transaction_id,
            connection_id: 42,
        }],
        Request::Announce(a) => vec![peers_reply(
            a.transaction_id,
            vec!["127.0.0.9:1".parse().unwrap()],
        )],
        _ => vec![],
    })
    .await;
    let mut tracker = UdpTracker::parse(&format!("udp://{addr}/ann?x=1")).unwrap();
    let reply = announce(&mut tracker).await.unwrap();
    assert_eq!(
        (reply.complete, reply.incomplete, reply.interval),
        (2, 1, 60)
    );
    assert_eq!(
        reply.peers[0].addr,
        "127.0.0.9:1".parse::<SocketAddr>().unwrap()
    );
    announce(&mut tracker).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "one connect, two announces: {seen:?}");
    let Request::Announce(a) = &seen[2] else {
        panic!()
    };
    assert_eq!((a.connection_id, a.key, a.port, a.left), (42, 7, 6881, 3));
    assert_eq!(a.url_data, b"/ann?x=1");
}

#[tokio::test]
async fn a_lost_reply_is_asked_again_and_stale_transactions_are_ignored() {
    // The first announce gets no answer; the second gets first a reply to
    // the first (stale), then its own.
    let first_tid = Arc::new(Mutex::new(0));
    let remember = first_tid.clone();
    let (addr, seen) = scripted("127.0.0.1:0", move |request, n| match request {
        Request::Connect { transaction_id } => vec![Response::Connect {
            transaction_id: *transaction_id,
            connection_id: 1,
        }],
        Request::Announce(a) if n == 1 => {
            *remember.lock().unwrap() = a.transaction_id;
            vec![]
        }
        Request::Announce(a) => vec![
            peers_reply(*remember.lock().unwrap(), vec![]),
            peers_reply(a.transaction_id, vec!["127.0.0.3:3".parse().unwrap()]),
        ],
        _ => vec![],
    })
    .await;
    let mut tracker = UdpTracker::parse(&format!("udp://{addr}"))
        .unwrap()
        .with_first_wait(WAIT);
    let reply = announce(&mut tracker).await.unwrap();
    assert_eq!(
        reply.peers.len(),
        1,
        "the answer to the retry, not the stale one"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_ne!(
        tid(&seen[1]),
        tid(&seen[2]),
        "each try has its own transaction id"
    );
}

#[tokio::test]
async fn an_error_reply_is_an_error() {
    let (addr, _) = scripted("127.0.0.1:0", |request, _| {
        vec![Response::Error {
            transaction_id: tid(request),
            message: "unregistered torrent".into(),
        }]
    })
    .await;
    let mut tracker = UdpTracker::parse(&format!("udp://{addr}")).unwrap();
    let error = announce(&mut tracker).await.unwrap_err();
    assert!(error.contains("unregistered torrent"), "{error}");
}

#[tokio::test]
async fn a_silent_tracker_costs_the_bounded_schedule_and_a_closed_port_nothing() {
    let (addr, seen) = scripted("127.0.0.1:0", |_, _| vec![]).await;
    let mut tracker = UdpTracker::parse(&format!("udp://{addr}"))
        .unwrap()
        .with_first_wait(WAIT);
    let started = Instant::now();
    assert_eq!(announce(&mut tracker).await.unwrap_err(), "no reply");
    let took = started.elapsed();
    assert!(
        took >= WAIT * 3 && took < WAIT * 3 + Duration::from_secs(1),
        "{took:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), TRIES as usize);

    // Nothing listening: the kernel's refusal ends it at once.
    let closed = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let mut tracker = UdpTracker::parse(&format!("udp://{closed}")).unwrap();
    let started = Instant::now();
    assert!(announce(&mut tracker).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn an_ipv6_tracker_gets_18_byte_peers() {
    let Ok(probe) = std::net::UdpSocket::bind("[::1]:0") else {
        panic!("this test needs IPv6 on loopback (::1)");
    };
    drop(probe);
    let (addr, _) = scripted("[::1]:0", |request, _| match request {
        Request::Connect { transaction_id } => vec![Response::Connect {
            transaction_id: *transaction_id,
            connection_id: 5,
        }],
        Request::Announce(a) => vec![peers_reply(
            a.transaction_id,
            vec!["[::1]:7000".parse().unwrap()],
        )],
        _ => vec![],
    })
    .await;
    let mut tracker = UdpTracker::parse(&format!("udp://{addr}")).unwrap();
    let reply = announce(&mut tracker).await.unwrap();
    assert_eq!(
        reply.peers[0].addr,
        "[::1]:7000".parse::<SocketAddr>().unwrap()
    );
}
