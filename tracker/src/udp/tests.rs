//! The UDP front end's policy, packet by packet, with no socket: who gets a
//! reply, how big, and which peers.

use std::net::SocketAddr;

use common::{
    tracker_proto::{
        udp::{Announce as UdpAnnounce, Request, Response, ANNOUNCE_LEN},
        AnnounceEvent,
    },
    InfoHash, PeerId,
};
use proptest::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

use super::*;
use crate::{catalog::Catalog, Config};
use common::tracker_proto::ScrapeStats;

const NOW: u32 = 1000;
const HASH: InfoHash = InfoHash([0x11; 20]);

fn ids() -> ConnectionIds {
    ConnectionIds::new([3; 16])
}

fn state(config: Config) -> Arc<AppState> {
    AppState::new(config)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The reply to `packet` from `source` (empty: silence).
fn reply(state: &AppState, packet: &[u8], source: SocketAddr, now: u32) -> Vec<u8> {
    let mut out = Vec::new();
    answer(
        state,
        &ids(),
        packet,
        source,
        now,
        &mut StdRng::seed_from_u64(1),
        &mut out,
    );
    out
}

fn bytes(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    request.encode(&mut out);
    out
}

fn announce_from(source: SocketAddr, id: u8, left: u64) -> Vec<u8> {
    bytes(&Request::Announce(UdpAnnounce {
        connection_id: ids().issue(source.ip(), NOW),
        transaction_id: u32::from(id),
        info_hash: HASH,
        peer_id: PeerId([id; 20]),
        downloaded: 0,
        left,
        uploaded: 0,
        event: AnnounceEvent::Started,
        ip: None,
        key: 0,
        num_want: None,
        port: source.port(),
        url_data: Vec::new(),
    }))
}

fn peers_of(reply: &[u8], v6: bool) -> Vec<SocketAddr> {
    match Response::parse(reply, v6) {
        Ok(Response::Announce { peers, .. }) => peers,
        other => panic!("not an announce reply: {other:?}"),
    }
}

fn error_of(reply: &[u8]) -> String {
    match Response::parse(reply, false) {
        Ok(Response::Error { message, .. }) => message,
        other => panic!("not an error: {other:?}"),
    }
}

#[test]
fn connect_then_announce_then_scrape() {
    let state = state(Config::default());
    let client = addr("127.0.0.2:6881");
    let connect = bytes(&Request::Connect { transaction_id: 9 });
    let got = reply(&state, &connect, client, NOW);
    assert_eq!(got.len(), 16, "the connect reply is as long as the request");
    let Ok(Response::Connect {
        transaction_id: 9,
        connection_id,
    }) = Response::parse(&got, false)
    else {
        panic!("{got:?}")
    };
    assert!(ids().valid(connection_id, client.ip(), NOW));

    let other = addr("127.0.0.3:6882");
    reply(&state, &announce_from(other, 2, 0), other, NOW);
    let got = reply(&state, &announce_from(client, 1, 100), client, NOW);
    assert_eq!(peers_of(&got, false), vec![other]);
    assert_eq!(state.udp_announces.total(), 2);

    let scrape = bytes(&Request::Scrape {
        connection_id,
        transaction_id: 5,
        info_hashes: vec![HASH, InfoHash([0x22; 20])],
    });
    let got = reply(&state, &scrape, client, NOW);
    let Ok(Response::Scrape { stats, .. }) = Response::parse(&got, false) else {
        panic!("{got:?}")
    };
    assert_eq!((stats[0].complete, stats[0].incomplete), (1, 1));
    assert_eq!(stats[1], ScrapeStats::default(), "unknown: zeros");
}

#[test]
fn wrong_expired_and_forged_ids_get_silence() {
    let state = state(Config::default());
    let client = addr("127.0.0.2:6881");
    let packet = announce_from(client, 1, 100);
    assert!(!reply(&state, &packet, client, NOW).is_empty());
    // Another source with the same packet, as a spoofer would send it.
    assert!(reply(&state, &packet, addr("127.0.0.9:6881"), NOW).is_empty());
    // Expired: two slots later.
    assert!(reply(&state, &packet, client, NOW + 3 * 120).is_empty());
    let mut forged = packet.clone();
    forged[7] ^= 1;
    assert!(reply(&state, &forged, client, NOW).is_empty());
    // Even a malformed request gets silence without a valid id.
    forged.truncate(50);
    assert!(reply(&state, &forged, client, NOW).is_empty());
}

#[test]
fn a_validated_source_hears_what_is_wrong_with_its_request() {
    let state = state(Config::default());
    let client = addr("127.0.0.2:6881");
    let id = ids().issue(client.ip(), NOW);
    let mut port_zero = announce_from(client, 1, 100);
    port_zero[96..98].copy_from_slice(&[0, 0]);
    assert!(error_of(&reply(&state, &port_zero, client, NOW)).contains("port 0"));

    let mut unknown = announce_from(client, 1, 100);
    unknown[8..12].copy_from_slice(&9u32.to_be_bytes());
    assert!(error_of(&reply(&state, &unknown, client, NOW)).contains("unknown action"));

    let mut scrape = bytes(&Request::Scrape {
        connection_id: id,
        transaction_id: 5,
        info_hashes: vec![],
    });
    scrape.resize(16 + 100 * 20, 1);
    assert!(error_of(&reply(&state, &scrape, client, NOW)).contains("74"));
    // Short packets carry no id at all: silence.
    assert!(reply(&state, &port_zero[..15], client, NOW).is_empty());
}

#[test]
fn options_and_trailing_bytes_never_spoil_an_announce() {
    let state = state(Config::default());
    let client = addr("127.0.0.2:6881");
    for tail in [
        &b"\x02\x05/ann?\x00"[..],
        b"\x01\x01\x00junk",
        b"garbage",
        &[0xff; 500],
    ] {
        let mut packet = announce_from(client, 1, 100);
        packet.extend_from_slice(tail);
        let got = reply(&state, &packet, client, NOW);
        assert!(matches!(
            Response::parse(&got, false),
            Ok(Response::Announce { .. })
        ));
    }
}

#[test]
fn families_are_kept_apart_and_replies_stay_small() {
    let state = state(Config::default());
    let v6 = addr("[::1]:7000");
    let mapped = addr("[::ffff:127.0.0.5]:7001");
    for n in 0..120u8 {
        let v4 = SocketAddr::new(std::net::Ipv4Addr::new(127, 1, 0, n).into(), 6000);
        reply(&state, &announce_from(v4, n, 0), v4, NOW);
        let v6n = SocketAddr::new("::1".parse().unwrap(), 8000 + u16::from(n));
        let mut packet = announce_from(v6n, 200 - n / 2, 0);
        packet[36] = 0xee; // a distinct peer id
        packet[37] = n;
        reply(&state, &packet, v6n, NOW);
    }
    let mut packet = announce_from(v6, 250, 100);
    packet[92..96].copy_from_slice(&500i32.to_be_bytes());
    let got = reply(&state, &packet, v6, NOW);
    let peers = peers_of(&got, true);
    assert_eq!(peers.len(), MAX_PEERS_V6);
    assert!(peers.iter().all(SocketAddr::is_ipv6));
    assert!(got.len() <= 14 * ANNOUNCE_LEN && got.len() <= 1500 - 48);

    // An IPv4 client on a dual-stack socket is an IPv4 client.
    let mut packet = announce_from(mapped, 251, 100);
    packet[92..96].copy_from_slice(&500i32.to_be_bytes());
    let got = reply(&state, &packet, mapped, NOW);
    let peers = peers_of(&got, false);
    assert_eq!(peers.len(), 120);
    assert!(peers.iter().all(SocketAddr::is_ipv4));
    assert!(got.len() <= 14 * ANNOUNCE_LEN);
}

#[test]
fn the_whitelist_and_the_ip_field_apply_as_over_http() {
    let client = addr("127.0.0.2:6881");
    let whitelisted = state(Config {
        catalog: Some(Catalog::new()),
        ..Config::default()
    });
    let got = reply(&whitelisted, &announce_from(client, 1, 100), client, NOW);
    assert_eq!(error_of(&got), "unregistered torrent");

    let with_ip = |allow: bool| {
        let state = state(Config {
            allow_ip_param: allow,
            ..Config::default()
        });
        let mut packet = announce_from(client, 1, 100);
        packet[84..88].copy_from_slice(&[127, 0, 0, 77]);
        reply(&state, &packet, client, NOW);
        let other = addr("127.0.0.3:1");
        peers_of(
            &reply(&state, &announce_from(other, 2, 100), other, NOW),
            false,
        )
    };
    assert_eq!(with_ip(false), vec![client]);
    assert_eq!(with_ip(true), vec![addr("127.0.0.77:6881")]);
}

proptest! {
    /// Whatever arrives from a source that never connected, the reply is
    /// no larger than the request.
    #[test]
    fn no_unvalidated_reply_is_larger_than_its_request(
        packet in proptest::collection::vec(any::<u8>(), 0..300),
        magic: bool,
    ) {
        let state = state(Config::default());
        let mut packet = packet;
        if magic && packet.len() >= 16 {
            packet[..8].copy_from_slice(&common::tracker_proto::udp::PROTOCOL_ID.to_be_bytes());
            packet[8..12].copy_from_slice(&0u32.to_be_bytes());
        }
        let got = reply(&state, &packet, addr("127.0.0.2:1"), NOW);
        prop_assert!(got.len() <= packet.len());
    }
}
