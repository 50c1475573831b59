//! The fast extension (BEP 6) on loopback: with a peer that sets its bit our
//! seeder says `have_all` (a super-seeder `have_none`), names the
//! allowed-fast pieces (a super-seeder `suggest`s what it offers), serves
//! those while choking, and rejects every other
//! request it drops; a peer without the bit gets none of these messages,
//! and one that sends them anyway is closed. python3-libtorrent negotiates
//! the extension with us and completes.

use std::time::Duration;

use common::wire::{
    fast::{allowed_fast_set, ALLOWED_FAST_COUNT},
    BlockRef, Geometry, Message,
};
use integration::{
    clients::libtorrent,
    peers::Fixture,
    raw::{metainfo, seeder_addr, RawPeer, Received},
    sha1_file,
};

const PIECE: u64 = 64 * 1024;

fn block(index: u32) -> BlockRef {
    BlockRef {
        index,
        begin: 0,
        length: 16384,
    }
}

/// Collects what the seeder sends first, until `silence` passes with none.
fn opening(peer: &mut RawPeer, silence: Duration) -> Vec<Message> {
    let mut got = Vec::new();
    while let Received::Message(message) = peer.receive_within(silence) {
        got.push(message);
    }
    got
}

#[test]
fn a_fast_peer_gets_have_all_allowed_fast_and_rejects_a_plain_one_none_of_these() {
    let fixture = Fixture::new("2M", PIECE, &[]);
    let _seeder = fixture.seed(&[]);
    let addr = seeder_addr(&fixture);
    let meta = metainfo(&fixture);
    let geometry = Geometry::of(&meta.info);
    let payload = std::fs::read(&fixture.payload).unwrap();
    let allowed = allowed_fast_set(
        std::net::Ipv4Addr::LOCALHOST,
        &meta.info_hash,
        geometry.piece_count,
        ALLOWED_FAST_COUNT,
    );
    let not_allowed = (0..geometry.piece_count)
        .find(|i| !allowed.contains(i))
        .unwrap();

    let mut fast = RawPeer::connect_fast(addr, meta.info_hash, 1).with_geometry(geometry);
    let first = opening(&mut fast, Duration::from_millis(500));
    assert_eq!(first.first(), Some(&Message::HaveAll), "{first:?}");
    let named: Vec<u32> = first
        .iter()
        .filter_map(|m| match m {
            Message::AllowedFast(i) => Some(*i),
            _ => None,
        })
        .collect();
    assert_eq!(named, allowed, "BEP 6's set for 127.0.0.1, in its order");
    // Choked (we never said `interested`): an allowed-fast piece is served,
    // any other request is rejected, not ignored.
    fast.fetch_block(
        "an allowed-fast block while choked",
        block(allowed[0]),
        PIECE,
        &payload,
    );
    fast.send(Message::Request(block(not_allowed)));
    assert_eq!(
        fast.expect("a reject", |m| matches!(m, Message::Reject(_))),
        Message::Reject(block(not_allowed))
    );

    // A peer without the bit: a bitfield, no fast message, and a request
    // while choked is ignored (BEP 3), not rejected.
    let mut plain = RawPeer::connect(addr, meta.info_hash, 2).with_geometry(geometry);
    let first = opening(&mut plain, Duration::from_millis(500));
    assert!(
        matches!(first.as_slice(), [Message::Bitfield(b)] if b.is_complete()),
        "{first:?}"
    );
    plain.send(Message::Request(block(not_allowed)));
    assert_eq!(
        plain.receive_within(Duration::from_millis(500)),
        Received::Silent,
        "a request while choked is ignored for a plain peer"
    );
    // ... and a fast-extension message from it closes its connection.
    plain.send(Message::HaveNone);
    plain.expect_closed("have_none from a peer without the bit");

    // The fast peer was served all along.
    fast.send(Message::Interested);
    fast.expect("an unchoke", |m| *m == Message::Unchoke);
    fast.fetch_block("a block once unchoked", block(not_allowed), PIECE, &payload);
}

/// The pieces named by `have` and by `suggest` in `messages`.
fn haves_and_suggests(messages: &[Message]) -> (Vec<u32>, Vec<u32>) {
    let pick = |f: fn(&Message) -> Option<u32>| messages.iter().filter_map(f).collect();
    (
        pick(|m| match m {
            Message::Have(i) => Some(*i),
            _ => None,
        }),
        pick(|m| match m {
            Message::Suggest(i) => Some(*i),
            _ => None,
        }),
    )
}

#[test]
fn a_super_seeder_says_have_none_to_a_fast_peer_then_offers_and_suggests() {
    let fixture = Fixture::new("2M", PIECE, &[]);
    let _seeder = fixture.seed(&["--super-seed"]);
    let addr = seeder_addr(&fixture);
    let meta = metainfo(&fixture);
    let mut fast =
        RawPeer::connect_fast(addr, meta.info_hash, 1).with_geometry(Geometry::of(&meta.info));
    let first = opening(&mut fast, Duration::from_millis(500));
    assert_eq!(first.first(), Some(&Message::HaveNone), "{first:?}");
    assert!(
        first.iter().any(|m| matches!(m, Message::Have(_))),
        "an offer follows: {first:?}"
    );
    assert!(!first
        .iter()
        .any(|m| matches!(m, Message::Bitfield(_) | Message::HaveAll)));
    // Each offered piece is also suggested (BEP 6), to a fast peer only.
    let (haves, suggests) = haves_and_suggests(&first);
    assert_eq!(haves, suggests, "{first:?}");
    let mut plain =
        RawPeer::connect(addr, meta.info_hash, 2).with_geometry(Geometry::of(&meta.info));
    let first = opening(&mut plain, Duration::from_millis(500));
    let (haves, suggests) = haves_and_suggests(&first);
    assert!(!haves.is_empty() && suggests.is_empty(), "{first:?}");
}

#[test]
fn libtorrent_and_our_seeder_negotiate_the_fast_extension() {
    let fixture = Fixture::new("8M", 256 * 1024, &[]);
    let seeder = fixture.seed_logging(&[], "peer=debug");
    let addr = seeder_addr(&fixture);
    let dir = fixture.out("libtorrent");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut leecher, _) = libtorrent(
        &[
            "download".as_ref(),
            fixture.torrent.as_os_str(),
            dir.as_os_str(),
            addr.to_string().as_ref(),
        ],
        &[],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let line = leecher.json_line(deadline.saturating_duration_since(std::time::Instant::now()));
        if line["event"] == "complete" {
            break;
        }
    }
    assert_eq!(
        sha1_file(&dir.join("payload.bin")),
        sha1_file(&fixture.payload)
    );
    let log = seeder.log();
    assert!(
        log.lines().any(|l| l.contains("handshake complete")
            && l.contains("PeerId(-LT")
            && l.contains("fast=true")),
        "libtorrent's handshake did not show the fast extension; log:\n{log}"
    );
}
