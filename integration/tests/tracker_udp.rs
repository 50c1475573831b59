//! The `tracker` binary's UDP front end (BEP 15) over real sockets on
//! loopback: what each kind of packet gets back, a reply or silence. Silence
//! is asserted as no datagram within [`SILENCE`], after a valid request on
//! the same socket has shown that replies do arrive. The policy itself is
//! unit-tested in `tracker/src/udp/tests.rs`; this is the binary as a client
//! meets it: the default UDP port, `--udp`, `--no-udp`, dual-stack IPv6,
//! the whitelist and `/stats`.

use std::{
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use common::{
    tracker_proto::{
        udp::{Announce, Request, Response, ANNOUNCE_LEN, MAX_SCRAPE_HASHES},
        AnnounceEvent,
    },
    InfoHash, PeerId,
};
use integration::net::Tracker;

const HASH: InfoHash = InfoHash([0x42; 20]);
const SILENCE: Duration = Duration::from_millis(700);

struct Client {
    socket: UdpSocket,
    v6: bool,
}

impl Client {
    fn to(tracker: SocketAddr, local: &str) -> Client {
        let socket = UdpSocket::bind(local).unwrap();
        socket.connect(tracker).unwrap();
        Client {
            socket,
            v6: tracker.is_ipv6(),
        }
    }

    fn send(&self, request: &Request) -> Vec<u8> {
        let mut packet = Vec::new();
        request.encode(&mut packet);
        self.send_raw(&packet);
        packet
    }

    fn send_raw(&self, packet: &[u8]) {
        self.socket.send(packet).unwrap();
    }

    /// The next datagram, or `None` after `wait`.
    fn receive(&self, wait: Duration) -> Option<Vec<u8>> {
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buffer = [0u8; 4096];
        self.socket
            .recv(&mut buffer)
            .ok()
            .map(|n| buffer[..n].to_vec())
    }

    fn reply(&self) -> Response {
        let bytes = self.receive(Duration::from_secs(5)).expect("a reply");
        Response::parse(&bytes, self.v6).expect("a well-formed reply")
    }

    fn silent(&self, what: &str) {
        if let Some(bytes) = self.receive(SILENCE) {
            panic!(
                "{what}: expected silence, got {:?}",
                Response::parse(&bytes, self.v6)
            );
        }
    }

    fn connect(&self) -> u64 {
        let packet = self.send(&Request::Connect { transaction_id: 1 });
        let bytes = self
            .receive(Duration::from_secs(5))
            .expect("a connect reply");
        assert_eq!(
            bytes.len(),
            packet.len(),
            "the connect reply is no larger than its request"
        );
        match Response::parse(&bytes, self.v6) {
            Ok(Response::Connect {
                connection_id,
                transaction_id: 1,
            }) => connection_id,
            other => panic!("{other:?}"),
        }
    }
}

fn announce(connection_id: u64, id: u8, port: u16) -> Announce {
    Announce {
        connection_id,
        transaction_id: 7,
        info_hash: HASH,
        peer_id: PeerId([id; 20]),
        downloaded: 0,
        left: 100,
        uploaded: 0,
        event: AnnounceEvent::Started,
        ip: None,
        key: 0,
        num_want: None,
        port,
        url_data: Vec::new(),
    }
}

fn encoded(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode(&mut out);
    out
}

fn error_text(response: Response) -> String {
    match response {
        Response::Error { message, .. } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn each_kind_of_packet_gets_its_reply_or_silence() {
    let tracker = Tracker::start(&[]);
    let udp = tracker.udp.expect("UDP on by default");
    assert_eq!(
        udp.port(),
        tracker.addr.port(),
        "the HTTP port's number on UDP"
    );
    let client = Client::to(udp, "127.0.0.1:0");
    let id = client.connect();

    // A valid announce, then one from another peer: it is given the first.
    client.send(&Request::Announce(announce(id, 1, 6001)));
    assert!(matches!(client.reply(), Response::Announce { .. }));
    client.send(&Request::Announce(announce(id, 2, 6002)));
    match client.reply() {
        Response::Announce {
            peers,
            seeders,
            leechers,
            ..
        } => {
            assert_eq!((seeders, leechers), (0, 2));
            assert_eq!(peers, vec!["127.0.0.1:6001".parse::<SocketAddr>().unwrap()]);
        }
        other => panic!("{other:?}"),
    }

    // Short and oversized packets. Short: no id, silence. Oversized: read by
    // prefix, answered (the kernel cuts it at the tracker's buffer).
    client.send_raw(&[0u8; 15]);
    client.silent("a 15-byte packet");
    let mut oversized = encoded(&Request::Announce(announce(id, 1, 6001)));
    oversized.resize(4000, 0xee);
    client.send_raw(&oversized);
    assert!(matches!(client.reply(), Response::Announce { .. }));

    // BEP 41 options and trailing bytes never spoil an announce.
    let mut options = encoded(&Request::Announce(announce(id, 1, 6001)));
    options.extend_from_slice(b"\x01\x02\x0a/announce\x00trailing");
    client.send_raw(&options);
    assert!(matches!(client.reply(), Response::Announce { .. }));

    // Wrong, forged and foreign ids: silence, whatever the request.
    client.send(&Request::Announce(announce(id ^ 0x10, 1, 6001)));
    client.silent("a forged connection id");
    client.send(&Request::Announce(announce(0, 1, 6001)));
    client.silent("connection id 0");
    let other = Client::to(udp, "127.0.0.2:0");
    other.send(&Request::Announce(announce(id, 3, 6003)));
    other.silent("another address's connection id");
    let mut unknown_unvalidated = encoded(&Request::Announce(announce(0, 1, 6001)));
    unknown_unvalidated[8..12].copy_from_slice(&9u32.to_be_bytes());
    client.send_raw(&unknown_unvalidated);
    client.silent("an unknown action without a valid id");
    let mut not_bep15 = encoded(&Request::Connect { transaction_id: 1 });
    not_bep15[0] = 9;
    client.send_raw(&not_bep15);
    client.silent("a connect without the protocol id");

    // A validated source hears what is wrong.
    let mut unknown = encoded(&Request::Announce(announce(id, 1, 6001)));
    unknown[8..12].copy_from_slice(&9u32.to_be_bytes());
    client.send_raw(&unknown);
    assert!(error_text(client.reply()).contains("unknown action"));
    client.send(&Request::Announce(announce(id, 1, 0)));
    assert!(error_text(client.reply()).contains("port 0"));
    let mut hundred = encoded(&Request::Scrape {
        connection_id: id,
        transaction_id: 3,
        info_hashes: vec![HASH],
    });
    hundred.resize(16 + 100 * 20, 0x11);
    client.send_raw(&hundred);
    assert!(error_text(client.reply()).contains("74"));

    // A full scrape packet: 74 hashes, each answered, unknown ones with zeros.
    let mut hashes = vec![HASH];
    hashes.extend((1..MAX_SCRAPE_HASHES as u8).map(|n| InfoHash([0x80 + n; 20])));
    client.send(&Request::Scrape {
        connection_id: id,
        transaction_id: 4,
        info_hashes: hashes,
    });
    match client.reply() {
        Response::Scrape { stats, .. } => {
            assert_eq!(stats.len(), MAX_SCRAPE_HASHES);
            assert_eq!(stats[0].incomplete, 2);
            assert!(stats[1..]
                .iter()
                .all(|s| s.incomplete == 0 && s.complete == 0));
        }
        other => panic!("{other:?}"),
    }

    let totals = &tracker.stats()["totals"];
    assert_eq!(totals["announces_udp"], 4, "{totals}");
    assert_eq!(totals["announces_http"], 0, "{totals}");
}

#[test]
fn an_ipv6_source_gets_18_byte_entries_and_only_ipv6_peers() {
    if UdpSocket::bind("[::1]:0").is_err() {
        panic!("this test needs IPv6 on loopback (::1)");
    }
    // On 0.0.0.0 the UDP socket is dual-stack: IPv4 and IPv6 clients alike.
    let tracker = Tracker::start_command(
        std::process::Command::new(integration::workspace_bin("tracker"))
            .args(["--listen", "0.0.0.0:0"]),
    );
    let port = tracker.udp.expect("UDP").port();
    let v4 = Client::to(SocketAddr::from(([127, 0, 0, 1], port)), "127.0.0.1:0");
    let v6 = Client::to(format!("[::1]:{port}").parse().unwrap(), "[::1]:0");
    let id4 = v4.connect();
    v4.send(&Request::Announce(announce(id4, 1, 6001)));
    assert!(matches!(v4.reply(), Response::Announce { .. }));
    let id6 = v6.connect();
    v6.send(&Request::Announce(announce(id6, 2, 6002)));
    match v6.reply() {
        Response::Announce {
            peers, leechers, ..
        } => {
            assert_eq!(leechers, 2, "one swarm counts both");
            assert!(
                peers.is_empty(),
                "the IPv4 peer is not given to IPv6: {peers:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    v6.send(&Request::Announce(announce(id6, 3, 6003)));
    let bytes = v6.receive(Duration::from_secs(5)).unwrap();
    assert_eq!(bytes.len(), 20 + 18, "one IPv6 peer in an 18-byte entry");
    // An IPv4 id is not an IPv6 id.
    v6.send(&Request::Announce(announce(id4, 4, 6004)));
    v6.silent("an IPv4 client's id from an IPv6 address");
    assert!(bytes.len() <= 14 * ANNOUNCE_LEN);
}

#[test]
fn udp_follows_the_flags_and_the_whitelist() {
    // --no-udp: nothing listens there; the JSON line says so.
    let off = Tracker::start(&["--no-udp"]);
    assert!(off.udp.is_none());
    let client = Client::to(
        SocketAddr::from(([127, 0, 0, 1], off.addr.port())),
        "127.0.0.1:0",
    );
    client.send(&Request::Connect { transaction_id: 1 });
    client.silent("--no-udp");

    // --udp ADDR, with a whitelist that does not hold the hash.
    let whitelist = tempfile::tempdir().unwrap();
    let port = integration::net::free_port();
    let on = Tracker::start(&[
        "--udp",
        &format!("127.0.0.1:{port}"),
        "--torrents",
        whitelist.path().to_str().unwrap(),
    ]);
    assert_eq!(on.udp.map(|a| a.port()), Some(port));
    let client = Client::to(on.udp.unwrap(), "127.0.0.1:0");
    let id = client.connect();
    client.send(&Request::Announce(announce(id, 1, 6001)));
    assert_eq!(error_text(client.reply()), "unregistered torrent");
}
