//! A session over a stream that is not TCP: an in-memory pipe
//! (`tokio::io::duplex`) carries the handshake, the bitfield, an unchoke and
//! a block served from disk, as any future transport (encryption, uTP) will.

use std::{net::SocketAddr, sync::Arc};

use common::{
    create::{create, scan, CreateOptions},
    wire::{BlockRef, Geometry, Handshake, Message, MessageCodec, HANDSHAKE_LEN},
    Metainfo, PeerId,
};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::{codec::Framed, sync::CancellationToken};

use super::over;
use crate::bt::{
    extensions::Offered,
    shared::{Command, Limits, Shared},
    storage::Storage,
    transport::Stream,
};

const PIECE: u64 = 32 * 1024;

/// A seeder's shared state for `payload`, written under `dir`.
fn seeder(dir: &std::path::Path, payload: &[u8]) -> (Metainfo, Arc<Shared>) {
    seeder_with(dir, payload, false)
}

fn seeder_with(dir: &std::path::Path, payload: &[u8], super_seed: bool) -> (Metainfo, Arc<Shared>) {
    let file = dir.join("payload.bin");
    std::fs::write(&file, payload).unwrap();
    let options = CreateOptions {
        announce_tiers: vec![vec!["http://127.0.0.1:1/announce".into()]],
        piece_length: Some(PIECE),
        private: false,
        comment: None,
        source: None,
        web_seeds: Vec::new(),
        created_by: None,
        creation_date: None,
    };
    let meta = create(&scan(&file, false).unwrap(), &options, &|_| {}).unwrap();
    let storage = Storage::open(dir, &meta.info, false).unwrap();
    let have = storage.verify_existing(&|_| {});
    assert!(have.is_complete());
    let (discovered, _) = tokio::sync::mpsc::channel(1);
    let limits = Limits {
        upload_rate: None,
        download_rate: None,
        max_peers: 8,
        unchoke_slots: super::super::choke::Slots::Fixed(4),
        super_seed,
        events: None,
    };
    let offered = Offered {
        metadata: None,
        listen_port: 1,
        reqq: 16,
        pex: false,
    };
    let shared = Shared::new(
        meta.info_hash,
        PeerId([9; 20]),
        Geometry::of(&meta.info),
        storage,
        have,
        limits,
        offered,
        discovered,
        CancellationToken::new(),
    )
    .unwrap();
    (meta, shared)
}

async fn next(peer: &mut Framed<DuplexStream, MessageCodec>) -> Message {
    peer.next()
        .await
        .expect("session open")
        .expect("well-formed")
}

type Session = tokio::task::JoinHandle<super::SessionEnd>;

/// A session over an in-memory pipe whose other end dials: its handshake
/// first, then ours (returned with the pipe's end).
async fn dial(meta: &Metainfo, shared: &Arc<Shared>) -> (Session, DuplexStream, Handshake) {
    dial_with(
        meta,
        shared,
        Handshake::new(meta.info_hash, PeerId([1; 20])),
    )
    .await
}

/// As [`dial`], with the dialling side's own handshake.
async fn dial_with(
    meta: &Metainfo,
    shared: &Arc<Shared>,
    hello: Handshake,
) -> (Session, DuplexStream, Handshake) {
    let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
    let addr: SocketAddr = "127.0.0.1:6881".parse().unwrap();
    let session = tokio::spawn(over(shared.clone(), Stream(ours), addr, false));
    assert_eq!(hello.info_hash, meta.info_hash);
    theirs.write_all(&hello.encode()).await.unwrap();
    let mut answer = [0u8; HANDSHAKE_LEN];
    theirs.read_exact(&mut answer).await.unwrap();
    (session, theirs, Handshake::decode(&answer).unwrap())
}

#[tokio::test]
async fn a_session_runs_over_an_in_memory_stream() {
    let dir = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (meta, shared) = seeder(dir.path(), &payload);
    let (session, theirs, answer) = dial(&meta, &shared).await;
    assert_eq!(
        (answer.info_hash, answer.peer_id),
        (meta.info_hash, PeerId([9; 20]))
    );

    let geometry = Geometry::of(&meta.info);
    let mut peer = Framed::new(theirs, MessageCodec::new(geometry));
    // No fast bit from this peer: a plain, full bitfield.
    match next(&mut peer).await {
        Message::Bitfield(field) => assert!(field.is_complete()),
        other => panic!("expected the bitfield, got {other:?}"),
    }
    peer.send(Message::Interested).await.unwrap();
    assert_eq!(next(&mut peer).await, Message::Unchoke, "a free slot");
    let block = BlockRef {
        index: 1,
        begin: 16 * 1024,
        length: 16 * 1024,
    };
    peer.send(Message::Request(block)).await.unwrap();
    let Message::Piece { index, begin, data } = next(&mut peer).await else {
        panic!("expected the block");
    };
    assert_eq!((index, begin), (1, 16 * 1024));
    let start = (PIECE + 16 * 1024) as usize;
    assert_eq!(&data[..], &payload[start..start + 16 * 1024]);

    drop(peer);
    let end = session.await.unwrap();
    assert!(end.dialed.is_none() && !end.was_ourselves);
    assert!(shared.state().peers.is_empty(), "the peer was unregistered");
}

/// Adds `index` to the pieces we have, as a verified piece does.
fn completed(shared: &Shared, index: u32) {
    let count = {
        let mut state = shared.state();
        state.have_log.push(index);
        state.have_log.len()
    };
    shared.have_count.send_replace(count);
}

#[tokio::test]
async fn haves_that_follow_within_the_batch_time_go_together() {
    use super::HAVE_BATCH;
    use std::time::Duration;
    use tokio::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 5 % 241) as u8).collect();
    let (meta, shared) = seeder(dir.path(), &payload);
    let (session, theirs, _) = dial(&meta, &shared).await;
    let mut peer = Framed::new(theirs, MessageCodec::new(Geometry::of(&meta.info)));
    assert!(matches!(next(&mut peer).await, Message::Bitfield(_)));

    // The first after a quiet spell at once...
    let start = Instant::now();
    completed(&shared, 0);
    assert_eq!(next(&mut peer).await, Message::Have(0));
    assert!(start.elapsed() < HAVE_BATCH / 2, "{:?}", start.elapsed());
    // ...the next two, a moment later, together when the batch time is up.
    tokio::time::sleep(Duration::from_millis(10)).await;
    completed(&shared, 1);
    completed(&shared, 2);
    assert_eq!(next(&mut peer).await, Message::Have(1));
    assert!(
        start.elapsed() >= HAVE_BATCH - Duration::from_millis(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(next(&mut peer).await, Message::Have(2));

    // A piece this peer sent us: it hears at once, inside the batch time
    // (as a super-seeder waits for it before offering the next piece).
    let sent = Instant::now();
    completed(&shared, 3);
    let slot_commands = shared
        .state()
        .peers
        .values()
        .next()
        .unwrap()
        .commands
        .clone();
    slot_commands.try_send(Command::SendHaves).unwrap();
    assert_eq!(next(&mut peer).await, Message::Have(3));
    assert!(sent.elapsed() < HAVE_BATCH / 2, "{:?}", sent.elapsed());

    drop(peer);
    session.await.unwrap();
}

/// `ledbat_delay` end to end on one connection: our clock goes out with the
/// block, the peer's echo of it becomes a sample of our queue for `uplink`.
#[tokio::test]
async fn blocks_carry_our_clock_and_the_echo_becomes_a_sample() {
    use common::extension::{
        delay::{DelayMessage, Echo, LEDBAT_DELAY},
        handshake::{ExtHandshake, ExtensionIds},
    };

    let dir = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 3 % 239) as u8).collect();
    let (meta, shared) = seeder(dir.path(), &payload);
    let hello = Handshake::new(meta.info_hash, PeerId([1; 20])).with_extensions(true);
    let (session, theirs, _) = dial_with(&meta, &shared, hello).await;
    let mut peer = Framed::new(theirs, MessageCodec::new(Geometry::of(&meta.info)));
    let Message::Extended {
        id: 0,
        payload: ours,
    } = next(&mut peer).await
    else {
        panic!("our extension handshake first");
    };
    let ours = ExtHandshake::decode(&ours).unwrap();
    assert_eq!(ours.id_of(LEDBAT_DELAY), Some(ExtensionIds::OUR_DELAY));
    let theirs = ExtHandshake {
        extensions: vec![(LEDBAT_DELAY.to_owned(), 5)],
        ..ExtHandshake::default()
    };
    peer.send(Message::Extended {
        id: 0,
        payload: theirs.encode().into(),
    })
    .await
    .unwrap();
    assert!(matches!(next(&mut peer).await, Message::Bitfield(_)));
    peer.send(Message::Interested).await.unwrap();
    assert_eq!(next(&mut peer).await, Message::Unchoke);
    let block = BlockRef {
        index: 0,
        begin: 0,
        length: 16 * 1024,
    };
    peer.send(Message::Request(block)).await.unwrap();
    let Message::Extended { id: 5, payload } = next(&mut peer).await else {
        panic!("our clock, with the id the peer gave, before the block");
    };
    let clock = DelayMessage::decode(&payload).unwrap();
    assert!(matches!(
        next(&mut peer).await,
        Message::Piece { index: 0, .. }
    ));
    let key = *shared.state().peers.keys().next().unwrap();
    assert_eq!(shared.state().peers[&key].delay, None);
    // The peer gives our clock back, measured 40 ms behind its own base.
    for difference in [1_000, 41_000] {
        let echo = DelayMessage {
            sent: 77,
            echo: Some(Echo {
                difference,
                of_sent: clock.sent,
            }),
        };
        peer.send(Message::Extended {
            id: ExtensionIds::OUR_DELAY,
            payload: echo.encode().into(),
        })
        .await
        .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let sample = loop {
        if let Some(sample) = shared.state().peers[&key]
            .delay
            .filter(|s| !s.queue.is_zero())
        {
            break sample;
        }
        assert!(std::time::Instant::now() < deadline, "no sample");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    assert_eq!(sample.queue, std::time::Duration::from_millis(40));
    assert_eq!(shared.uplink_samples(), [sample], "a peer we upload to");
    drop(peer);
    session.await.unwrap();
}

#[tokio::test]
async fn a_peer_that_loses_interest_gives_its_slot_to_one_that_waits() {
    let dir = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (meta, shared) = seeder(dir.path(), &payload);
    let geometry = Geometry::of(&meta.info);
    let quiet = std::time::Duration::from_millis(200);
    let soon = std::time::Duration::from_secs(5);
    // Five interested peers for the seeder's four slots.
    let mut peers = Vec::new();
    for id in 1..=5u8 {
        let hello = Handshake::new(meta.info_hash, PeerId([id; 20]));
        let (_session, theirs, _) = dial_with(&meta, &shared, hello).await;
        let mut peer = Framed::new(theirs, MessageCodec::new(geometry));
        assert!(matches!(next(&mut peer).await, Message::Bitfield(_)));
        peer.send(Message::Interested).await.unwrap();
        if id <= 4 {
            assert_eq!(next(&mut peer).await, Message::Unchoke, "a free slot");
        }
        if id == 4 {
            // Nobody waits yet: losing interest changes nothing.
            peer.send(Message::NotInterested).await.unwrap();
            let nothing = tokio::time::timeout(quiet, next(&mut peer)).await;
            assert!(nothing.is_err(), "no choke while nobody waits: {nothing:?}");
            peer.send(Message::Interested).await.unwrap();
        }
        peers.push(peer);
    }
    // The fifth waits for a slot.
    let waited = tokio::time::timeout(quiet, next(&mut peers[4])).await;
    assert!(waited.is_err(), "no slot for the fifth yet: {waited:?}");
    // The first loses interest: it is choked, and the fifth unchoked at
    // once, not at the next round.
    peers[0].send(Message::NotInterested).await.unwrap();
    let first = tokio::time::timeout(soon, next(&mut peers[0])).await;
    assert_eq!(first.ok(), Some(Message::Choke));
    let fifth = tokio::time::timeout(soon, next(&mut peers[4])).await;
    assert_eq!(fifth.ok(), Some(Message::Unchoke));
    let unchoked = shared.state().peers.values().filter(|p| p.unchoked).count();
    assert_eq!(unchoked, 4);
}

/// The first choke or unchoke the peer is sent within `wait`, skipping
/// other messages (a super-seeder's `have`s).
async fn choke_within(
    peer: &mut Framed<DuplexStream, MessageCodec>,
    wait: std::time::Duration,
) -> Option<Message> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, next(peer)).await {
            Err(_) => return None,
            Ok(m @ (Message::Choke | Message::Unchoke)) => return Some(m),
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn a_super_seeders_peer_keeps_its_slot_between_offers() {
    let dir = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (meta, shared) = seeder_with(dir.path(), &payload, true);
    let geometry = Geometry::of(&meta.info);
    let mut peers = Vec::new();
    for id in 1..=5u8 {
        let hello = Handshake::new(meta.info_hash, PeerId([id; 20]));
        let (_session, theirs, _) = dial_with(&meta, &shared, hello).await;
        let mut peer = Framed::new(theirs, MessageCodec::new(geometry));
        peer.send(Message::Interested).await.unwrap();
        let wait = std::time::Duration::from_secs(if id <= 4 { 5 } else { 0 });
        let got = choke_within(&mut peer, wait).await;
        assert_eq!(got, (id <= 4).then_some(Message::Unchoke), "peer {id}");
        peers.push(peer);
    }
    // The first has what it was offered and loses interest; the fifth
    // waits, but the first keeps its slot: no choke, no unchoke.
    peers[0].send(Message::NotInterested).await.unwrap();
    let quiet = std::time::Duration::from_millis(300);
    assert_eq!(choke_within(&mut peers[0], quiet).await, None);
    assert_eq!(choke_within(&mut peers[4], quiet).await, None);
}
