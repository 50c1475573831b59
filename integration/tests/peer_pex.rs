//! Peer exchange (BEP 11) on loopback: a leecher told about one peer only
//! (a magnet link with one `x.pe`, no tracker) learns the seeder through
//! peer exchange, from our peer and from python3-libtorrent, and completes;
//! a peer that sends an oversized PEX message or floods loses its
//! connection, while one well-formed message does not. Copies SHA-1 checked.

use std::{net::SocketAddr, path::Path, time::Duration};

use bytes::Bytes;
use common::{
    extension::{
        handshake::{ExtHandshake, ExtensionIds, UT_PEX},
        pex::PexMessage,
        HANDSHAKE_ID,
    },
    wire::{Geometry, Message},
};
use integration::{
    clients::libtorrent,
    peers::{download, Fixture, PeerProcess},
    raw::{metainfo, seeder_addr, RawPeer},
    sha1_file,
};

fn magnet_download(fixture: &Fixture, only_peer: SocketAddr, out: &Path) -> PeerProcess {
    let link = format!("magnet:?xt=urn:btih:{}&x.pe={only_peer}", fixture.info_hash);
    download(link, out, &[])
}

/// The leecher completes, and its log shows that `told_by` named `learned`
/// through peer exchange.
fn completes_through_pex(
    fixture: &Fixture,
    leecher: &mut PeerProcess,
    out: &Path,
    told_by: SocketAddr,
    learned: SocketAddr,
) {
    let summary = leecher.json_line(Duration::from_secs(60));
    assert_eq!(summary["hash_failures"], 0);
    assert_eq!(
        sha1_file(&out.join("payload.bin")),
        sha1_file(&fixture.payload)
    );
    let log = leecher.log();
    let told = log.lines().any(|l| {
        l.contains("peers from peer exchange")
            && l.contains(&format!("from={told_by}"))
            && l.contains(&learned.to_string())
    });
    assert!(told, "{told_by} never named {learned} by PEX; log:\n{log}");
}

#[test]
fn a_leecher_told_of_one_of_our_peers_learns_the_seeder_through_it() {
    let fixture = Fixture::new("16M", 256 * 1024, &[]);
    let _seeder = fixture.seed(&[]);
    let seeder = seeder_addr(&fixture);
    // A slow leecher, connected to the seeder, that stays a leecher.
    let middle = fixture.download(
        &fixture.out("middle"),
        &["--max-download-rate", "256K", "--peer", &seeder.to_string()],
    );
    let middle_addr = {
        let swarm = integration::net::wait_for(
            "the middle peer to announce",
            Duration::from_secs(20),
            || {
                let swarm = fixture.tracker.swarm(&fixture.info_hash)?;
                let peers = swarm["peers"].as_array()?.clone();
                (peers.len() == 2).then_some(peers)
            },
        );
        swarm
            .iter()
            .filter_map(|p| p["address"].as_str()?.parse::<SocketAddr>().ok())
            .find(|a| *a != seeder)
            .unwrap()
    };
    let out = fixture.out("leecher");
    let mut leecher = magnet_download(&fixture, middle_addr, &out);
    completes_through_pex(&fixture, &mut leecher, &out, middle_addr, seeder);
    drop(middle);
}

#[test]
fn a_leecher_told_of_libtorrent_only_learns_the_seeder_through_its_pex() {
    let fixture = Fixture::new("16M", 256 * 1024, &[]);
    let _seeder = fixture.seed(&[]);
    let seeder = seeder_addr(&fixture);
    let dir = fixture.out("libtorrent");
    std::fs::create_dir_all(&dir).unwrap();
    // libtorrent downloads from our seeder slowly, so it stays connected to
    // it as a leecher, and names it in its peer exchange (its default).
    let (_lt, port) = libtorrent(
        &[
            "download".as_ref(),
            fixture.torrent.as_os_str(),
            dir.as_os_str(),
            seeder.to_string().as_ref(),
        ],
        &[("LT_DOWNLOAD_RATE", "262144")],
    );
    let lt_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let out = fixture.out("leecher");
    let mut leecher = magnet_download(&fixture, lt_addr, &out);
    completes_through_pex(&fixture, &mut leecher, &out, lt_addr, seeder);
}

#[test]
fn oversized_and_flooding_pex_close_only_their_own_connection() {
    let fixture = Fixture::new("1M", 64 * 1024, &[]);
    let _seeder = fixture.seed(&[]);
    let addr = seeder_addr(&fixture);
    let meta = metainfo(&fixture);
    let geometry = Geometry::of(&meta.info);
    let handshake = ExtHandshake {
        extensions: vec![(UT_PEX.to_owned(), 5)],
        ..ExtHandshake::default()
    };
    let pex = |n: u8| Message::Extended {
        id: ExtensionIds::OUR_PEX,
        payload: Bytes::from(
            PexMessage {
                added: vec![(SocketAddr::new([127, 0, 9, n].into(), 6881), 0)],
                dropped: vec![],
            }
            .encode(),
        ),
    };
    let connect = |id: u8| {
        let mut peer = RawPeer::connect_extended(addr, meta.info_hash, id).with_geometry(geometry);
        peer.send(Message::Extended {
            id: HANDSHAKE_ID,
            payload: Bytes::from(handshake.encode()),
        });
        peer
    };

    // One well-formed message: the connection stays and is served.
    let mut calm = connect(1);
    calm.send(pex(1));
    calm.send(Message::Interested);
    calm.expect("an unchoke after one PEX message", |m| {
        *m == Message::Unchoke
    });

    // 10,000 entries: far over the extended message limit.
    let mut huge = connect(2);
    let mut body = vec![ExtensionIds::OUR_PEX];
    body.extend_from_slice(b"d5:added60000:");
    body.extend(std::iter::repeat_n(1u8, 60_000));
    body.push(b'e');
    let mut frame = ((1 + body.len()) as u32).to_be_bytes().to_vec();
    frame.push(20);
    frame.extend_from_slice(&body);
    huge.send_raw(&frame);
    huge.expect_closed("a PEX message with 10,000 entries");

    // A flood: four messages at once, where one a minute is allowed.
    let mut flood = connect(3);
    for n in 0..4 {
        flood.send(pex(n));
    }
    flood.expect_closed("a PEX flood");

    // The calm peer is still served.
    calm.send(pex(9));
    calm.send(Message::NotInterested);
    calm.send(Message::Interested);
    assert!(
        calm.receive_within(Duration::from_millis(500)) != integration::raw::Received::Closed,
        "the calm peer lost its connection"
    );
}
