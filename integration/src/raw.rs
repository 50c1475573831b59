//! A blocking wire-protocol client for tests that talk to our peer byte by
//! byte: it handshakes, sends well-formed or raw frames, and reads messages
//! with a deadline, telling "the peer closed" apart from "the peer went
//! silent". Also the few helpers such tests share (the seeder's address from
//! the tracker, frames built by hand).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use bytes::BytesMut;
use common::{
    wire::{BlockRef, Geometry, Handshake, Message, MessageCodec},
    InfoHash, Metainfo, PeerId,
};
use tokio_util::codec::{Decoder, Encoder};

use crate::{net::wait_for, peers::Fixture};

/// The fixture's torrent, parsed.
pub fn metainfo(fixture: &Fixture) -> Metainfo {
    Metainfo::from_bytes(&std::fs::read(&fixture.torrent).unwrap()).unwrap()
}

/// The first peer's listening address, from the tracker's view of the swarm.
pub fn seeder_addr(fixture: &Fixture) -> SocketAddr {
    wait_for("the seeder to announce", Duration::from_secs(20), || {
        let swarm = fixture.tracker.swarm(&fixture.info_hash)?;
        swarm["peers"].as_array()?.first()?["address"]
            .as_str()?
            .parse()
            .ok()
    })
}

/// A message frame: length prefix, id, body.
pub fn frame(id: u8, body: &[u8]) -> Vec<u8> {
    let mut out = ((1 + body.len()) as u32).to_be_bytes().to_vec();
    out.push(id);
    out.extend_from_slice(body);
    out
}

/// Big-endian 32-bit words, as message bodies hold them.
pub fn words(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// What a read with a deadline found.
#[derive(Debug, PartialEq)]
pub enum Received {
    Message(Message),
    /// The other side closed (EOF or reset).
    Closed,
    /// Nothing within the time allowed.
    Silent,
}

/// A blocking wire-protocol client for tests.
pub struct RawPeer {
    pub stream: TcpStream,
    codec: MessageCodec,
    buffer: BytesMut,
}

impl RawPeer {
    /// Connects and exchanges handshakes; fails the test if ours is not answered.
    pub fn connect(addr: SocketAddr, info_hash: InfoHash, id: u8) -> RawPeer {
        RawPeer::try_connect(addr, info_hash, id)
            .unwrap_or_else(|e| panic!("no handshake from {addr}: {e}"))
    }

    /// Connects and exchanges handshakes, or says why not.
    pub fn try_connect(addr: SocketAddr, info_hash: InfoHash, id: u8) -> std::io::Result<RawPeer> {
        RawPeer::open(addr, Handshake::new(info_hash, PeerId([id; 20])))
    }

    /// Like [`RawPeer::connect`], saying it speaks the extension protocol
    /// (BEP 10), so our peer sends and reads extended messages.
    pub fn connect_extended(addr: SocketAddr, info_hash: InfoHash, id: u8) -> RawPeer {
        let ours = Handshake::new(info_hash, PeerId([id; 20])).with_extensions(true);
        RawPeer::open(addr, ours).unwrap_or_else(|e| panic!("no handshake from {addr}: {e}"))
    }

    /// Like [`RawPeer::connect`], saying it speaks the fast extension (BEP 6).
    pub fn connect_fast(addr: SocketAddr, info_hash: InfoHash, id: u8) -> RawPeer {
        let ours = Handshake::new(info_hash, PeerId([id; 20])).with_fast(true);
        RawPeer::open(addr, ours).unwrap_or_else(|e| panic!("no handshake from {addr}: {e}"))
    }

    fn open(addr: SocketAddr, ours: Handshake) -> std::io::Result<RawPeer> {
        let info_hash = ours.info_hash;
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(&ours.encode())?;
        let mut theirs = [0u8; 68];
        stream.read_exact(&mut theirs)?;
        assert_eq!(Handshake::decode(&theirs).unwrap().info_hash, info_hash);
        Ok(RawPeer {
            stream,
            codec: MessageCodec::new(Geometry {
                piece_length: 0,
                total_length: 0,
                piece_count: 0,
            }),
            buffer: BytesMut::new(),
        })
    }

    /// Decodes messages by the torrent's geometry (needed for bitfields and blocks).
    pub fn with_geometry(mut self, geometry: Geometry) -> Self {
        self.codec = MessageCodec::new(geometry);
        self
    }

    pub fn send(&mut self, message: Message) {
        let mut out = BytesMut::new();
        self.codec.encode(message, &mut out).unwrap();
        self.stream.write_all(&out).unwrap();
    }

    /// Writes bytes as they are; a write error (the peer closed) is ignored.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// The next message, or `None` once the other side has closed; fails the
    /// test if nothing comes within 10 s.
    pub fn receive(&mut self) -> Option<Message> {
        match self.receive_within(Duration::from_secs(10)) {
            Received::Message(message) => Some(message),
            Received::Closed => None,
            Received::Silent => panic!("the peer neither answered nor closed within 10 s"),
        }
    }

    /// The next message, a close, or silence for `wait`.
    pub fn receive_within(&mut self, wait: Duration) -> Received {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(message) = self
                .codec
                .decode(&mut self.buffer)
                .expect("our peer sends valid messages")
            {
                return Received::Message(message);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Received::Silent;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Received::Closed,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Received::Closed
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Received::Silent
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Reads until the other side closes; fails the test if it does not
    /// within 10 s.
    pub fn expect_closed(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receive_within(left) {
                Received::Closed => return,
                Received::Message(_) => {}
                Received::Silent => panic!("{what}: the connection stayed open"),
            }
        }
    }

    /// Skips messages (`have`s, keep-alives, choke changes) until one
    /// matches `want`; fails the test on a close or after 10 s.
    pub fn expect(&mut self, what: &str, want: impl Fn(&Message) -> bool) -> Message {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.receive_within(left) {
                Received::Message(message) if want(&message) => return message,
                Received::Message(_) => {}
                Received::Closed => panic!("{what}: the connection was closed"),
                Received::Silent => panic!("{what}: nothing within 10 s"),
            }
        }
    }

    /// Asks for `block` (the peer must have unchoked us) and checks that the
    /// block comes back with `payload`'s bytes.
    pub fn fetch_block(&mut self, what: &str, block: BlockRef, piece_length: u64, payload: &[u8]) {
        self.send(Message::Request(block));
        let got = self.expect(what, |m| {
            matches!(m, Message::Piece { index, begin, .. } if (*index, *begin) == (block.index, block.begin))
        });
        let Message::Piece { index, begin, data } = got else {
            unreachable!()
        };
        let start = (u64::from(index) * piece_length + u64::from(begin)) as usize;
        assert!(
            data[..] == payload[start..start + block.length as usize],
            "{what}: the block's bytes differ from the payload"
        );
    }
}
