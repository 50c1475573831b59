//! BEP 15 and BEP 41 packets both ways: round trips, the spec's examples,
//! each malformed class, and parsers that never panic.

use super::*;
use proptest::prelude::*;

fn announce() -> Announce {
    Announce {
        connection_id: 0x0102_0304_0506_0708,
        transaction_id: 77,
        info_hash: InfoHash([0xab; 20]),
        peer_id: PeerId(*b"-XX0001-abcdefghijkl"),
        downloaded: 1,
        left: 2,
        uploaded: 3,
        event: AnnounceEvent::Started,
        ip: None,
        key: 9,
        num_want: Some(30),
        port: 6881,
        url_data: Vec::new(),
    }
}

fn encoded(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode(&mut out);
    out
}

#[test]
fn a_connect_request_is_the_magic_number_action_and_transaction() {
    let bytes = encoded(&Request::Connect {
        transaction_id: 0xdead_beef,
    });
    assert_eq!(
        bytes,
        [0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]
    );
    assert_eq!(
        Request::parse(&bytes),
        Ok(Request::Connect {
            transaction_id: 0xdead_beef
        })
    );
    let mut wrong = bytes.clone();
    wrong[0] = 1;
    assert_eq!(Request::parse(&wrong), Err(UdpError::NotBep15));
}

#[test]
fn requests_round_trip() {
    let mut with_url = announce();
    with_url.url_data = b"/announce?key=1".to_vec();
    with_url.ip = Some(Ipv4Addr::new(127, 0, 0, 9));
    with_url.event = AnnounceEvent::Stopped;
    for request in [
        Request::Connect { transaction_id: 1 },
        Request::Announce(announce()),
        Request::Announce(with_url),
        Request::Scrape {
            connection_id: 5,
            transaction_id: 6,
            info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
        },
    ] {
        assert_eq!(Request::parse(&encoded(&request)), Ok(request.clone()));
    }
    assert_eq!(encoded(&Request::Announce(announce())).len(), ANNOUNCE_LEN);
}

#[test]
fn bep41_url_data_is_read_from_its_options_and_the_rest_ignored() {
    let base = encoded(&Request::Announce(announce()));
    let with = |options: &[u8]| {
        let mut packet = base.clone();
        packet.extend_from_slice(options);
        match Request::parse(&packet) {
            Ok(Request::Announce(a)) => a.url_data,
            other => panic!("{other:?}"),
        }
    };
    // BEP 41's own example: "/announce?abcd" in two options.
    let mut example = vec![2, 12];
    example.extend_from_slice(b"/announce?ab");
    example.extend_from_slice(&[2, 2, b'c', b'd', 0]);
    assert_eq!(with(&example), b"/announce?abcd");
    // A NOP is skipped; trailing bytes after the end option do not matter.
    assert_eq!(with(&[1, 2, 1, b'x', 0, 0xff, 0xff]), b"x");
    // A truncated option, an unknown one, or plain trailing garbage never
    // makes a valid announce fail.
    assert_eq!(with(&[2, 200, b'a']), b"");
    assert_eq!(with(&[9, 9, 9]), b"");
    assert_eq!(with(b"trailing bytes"), b"");
    // At most MAX_URL_DATA bytes are kept, however many options come.
    let mut long = Vec::new();
    for _ in 0..10 {
        long.push(2);
        long.push(255);
        long.extend_from_slice(&[b'a'; 255]);
    }
    assert_eq!(with(&long).len(), MAX_URL_DATA);
}

#[test]
fn num_want_minus_one_or_zero_and_ip_zero_mean_the_defaults() {
    let mut packet = encoded(&Request::Announce(announce()));
    for want in [-1i32, 0] {
        packet[92..96].copy_from_slice(&want.to_be_bytes());
        let Ok(Request::Announce(a)) = Request::parse(&packet) else {
            panic!()
        };
        assert_eq!((a.num_want, a.ip), (None, None));
    }
}

#[test]
fn malformed_requests_are_each_their_error() {
    let good = encoded(&Request::Announce(announce()));
    assert_eq!(Request::parse(&good[..15]), Err(UdpError::TooShort(15)));
    assert_eq!(Request::parse(&good[..97]), Err(UdpError::TooShort(97)));
    let mut port_zero = good.clone();
    port_zero[96..98].copy_from_slice(&[0, 0]);
    assert_eq!(Request::parse(&port_zero), Err(UdpError::PortZero));
    let mut bad_event = good.clone();
    bad_event[80..84].copy_from_slice(&4u32.to_be_bytes());
    assert_eq!(Request::parse(&bad_event), Err(UdpError::BadEvent(4)));
    let mut unknown = good.clone();
    unknown[8..12].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(Request::parse(&unknown), Err(UdpError::UnknownAction(7)));

    let scrape = |hashes: usize, extra: usize| {
        let mut packet = encoded(&Request::Scrape {
            connection_id: 1,
            transaction_id: 2,
            info_hashes: vec![],
        });
        packet.resize(CONNECT_LEN + 20 * hashes + extra, 7);
        Request::parse(&packet)
    };
    assert_eq!(scrape(0, 0), Err(UdpError::BadScrape(0)));
    assert_eq!(scrape(75, 0), Err(UdpError::BadScrape(75)));
    assert_eq!(scrape(100, 0), Err(UdpError::BadScrape(100)));
    assert_eq!(scrape(2, 5), Err(UdpError::BadScrape(2)));
    assert!(
        matches!(scrape(74, 0), Ok(Request::Scrape { info_hashes, .. }) if info_hashes.len() == 74)
    );
}

#[test]
fn responses_round_trip_in_each_family() {
    let v4: Vec<SocketAddr> = vec![
        "127.0.0.2:6881".parse().unwrap(),
        "127.0.0.3:1".parse().unwrap(),
    ];
    let v6: Vec<SocketAddr> = vec!["[::1]:6881".parse().unwrap()];
    let stats = ScrapeStats {
        complete: 1,
        downloaded: 2,
        incomplete: 3,
    };
    for (response, is_v6) in [
        (
            Response::Connect {
                transaction_id: 1,
                connection_id: u64::MAX,
            },
            false,
        ),
        (
            Response::Announce {
                transaction_id: 2,
                interval: 120,
                leechers: 3,
                seeders: 4,
                peers: v4.clone(),
            },
            false,
        ),
        (
            Response::Announce {
                transaction_id: 2,
                interval: 120,
                leechers: 3,
                seeders: 4,
                peers: v6.clone(),
            },
            true,
        ),
        (
            Response::Scrape {
                transaction_id: 3,
                stats: vec![stats, stats],
            },
            false,
        ),
        (
            Response::Error {
                transaction_id: 4,
                message: "unknown torrent".into(),
            },
            false,
        ),
    ] {
        let mut bytes = Vec::new();
        response.encode(&mut bytes);
        assert_eq!(Response::parse(&bytes, is_v6), Ok(response.clone()));
    }
    // Entry sizes: 6 bytes per IPv4 peer, 18 per IPv6 peer.
    let size = |peers: Vec<SocketAddr>| {
        let mut out = Vec::new();
        Response::Announce {
            transaction_id: 0,
            interval: 0,
            leechers: 0,
            seeders: 0,
            peers,
        }
        .encode(&mut out);
        out.len()
    };
    assert_eq!(size(v4.clone()), 20 + 2 * PEER_V4_LEN);
    assert_eq!(size(v6), 20 + PEER_V6_LEN);
    // A mixed list keeps only the first peer's family.
    let mut mixed = v4;
    mixed.push("[::1]:1".parse().unwrap());
    assert_eq!(size(mixed), 20 + 2 * PEER_V4_LEN);
}

#[test]
fn malformed_replies_are_refused() {
    assert_eq!(Response::parse(&[0; 7], false), Err(UdpError::TooShort(7)));
    assert_eq!(
        Response::parse(&[0; 12], false),
        Err(UdpError::TooShort(12))
    );
    let mut announce = vec![0, 0, 0, 1, 0, 0, 0, 2];
    announce.extend_from_slice(&[0; 12]);
    announce.extend_from_slice(&[1, 2, 3]);
    assert_eq!(Response::parse(&announce, false), Err(UdpError::BadPeers));
    assert_eq!(
        Response::parse(&[0, 0, 0, 9, 0, 0, 0, 0], false),
        Err(UdpError::UnknownAction(9))
    );
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), v6: bool) {
        let _ = Request::parse(&bytes);
        let _ = Response::parse(&bytes, v6);
    }

    #[test]
    fn announces_round_trip(
        downloaded: u64, left: u64, uploaded: u64, key: u32, port in 1u16..,
        want in 1u32..=i32::MAX as u32, url in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut a = announce();
        (a.downloaded, a.left, a.uploaded, a.key, a.port, a.num_want) =
            (downloaded, left, uploaded, key, port, Some(want));
        a.url_data = url;
        let request = Request::Announce(a);
        prop_assert_eq!(Request::parse(&encoded(&request)), Ok(request));
    }
}
