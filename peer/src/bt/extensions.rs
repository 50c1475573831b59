//! The extension protocol (BEP 10) inside a download or a seed, pure: what
//! our extension handshake says, and what each extended message a peer sends
//! calls for. The session only sends what this returns.
//!
//! We speak `ut_metadata` (BEP 9) here to serve the info dictionary to peers
//! that came with a magnet link, seeders and leechers alike, and `ut_pex`
//! (BEP 11, policy in [`super::pex`]) to trade peer addresses; a private
//! torrent (BEP 27) offers neither. Every torrent offers `ledbat_delay`
//! (one-way delay samples for our upload rate, [`super::delay`]). A peer may fetch the dictionary
//! [`METADATA_BUDGET`] times over per connection; past that every request is
//! rejected, so a 30-byte request cannot make us send 16 KiB without end.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use bytes::Bytes;
use common::{
    extension::{
        delay::{DelayMessage, LEDBAT_DELAY},
        handshake::{ExtHandshake, ExtensionIds, UT_METADATA, UT_PEX},
        metadata::{MetadataGeometry, MetadataMessage},
        pex::PexMessage,
        ExtensionError, HANDSHAKE_ID,
    },
    wire::Message,
};

use super::pex::{Flood, PexReceived, PexSent};

/// How many times over one connection may fetch the whole dictionary.
pub const METADATA_BUDGET: u32 = 3;

/// What this torrent offers through the extension protocol.
#[derive(Debug, Clone)]
pub struct Offered {
    /// The info dictionary, served with `ut_metadata`; `None` for a private
    /// torrent.
    pub metadata: Option<Arc<[u8]>>,
    /// Our listening port, said as `p`.
    pub listen_port: u16,
    /// How many requests we queue per peer, said as `reqq`.
    pub reqq: u32,
    /// Peer exchange is on (not for a private torrent, nor with `--no-pex`).
    pub pex: bool,
}

impl Offered {
    /// Our extension handshake to a peer at `peer_ip`.
    pub fn handshake(&self, peer_ip: IpAddr) -> Message {
        let mut extensions = Vec::new();
        if self.metadata.is_some() {
            extensions.push((UT_METADATA.to_owned(), ExtensionIds::OUR_METADATA));
        }
        if self.pex {
            extensions.push((UT_PEX.to_owned(), ExtensionIds::OUR_PEX));
        }
        extensions.push((LEDBAT_DELAY.to_owned(), ExtensionIds::OUR_DELAY));
        let handshake = ExtHandshake {
            extensions,
            client: Some(concat!("peer/", env!("CARGO_PKG_VERSION")).to_owned()),
            listen_port: (self.listen_port != 0).then_some(self.listen_port),
            reqq: Some(self.reqq),
            metadata_size: self.metadata.as_ref().map(|m| m.len() as u64),
            your_ip: Some(peer_ip),
        };
        Message::Extended {
            id: HANDSHAKE_ID,
            payload: Bytes::from(handshake.encode()),
        }
    }
}

/// What an extended message from the peer calls for.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    Nothing,
    /// Send this to the peer.
    Reply(Message),
    /// The peer's extension handshake, with the port it listens on if it
    /// said.
    Handshake(Option<u16>),
    /// Peer exchange named these peers.
    Peers(Vec<SocketAddr>),
    /// A one-way delay message, for [`super::delay`].
    Delay(DelayMessage),
}

/// Why the peer's connection ends.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionFault {
    #[error("{0}")]
    Malformed(#[from] ExtensionError),
    #[error("{0}")]
    Flood(#[from] Flood),
}

/// One peer's side of the extension protocol.
#[derive(Debug, Default)]
pub struct PeerExtensions {
    ids: ExtensionIds,
    /// Metadata pieces sent to this peer.
    served: u32,
    pex_sent: PexSent,
    pex_received: PexReceived,
    /// The peer's `v`, for the log.
    pub client: Option<String>,
}

impl PeerExtensions {
    /// An extended message from the peer at `now`: what it calls for. An
    /// error (a malformed message, a flood) ends the connection.
    pub fn on_message(
        &mut self,
        offered: &Offered,
        id: u8,
        payload: &[u8],
        now: Instant,
    ) -> Result<Handled, ExtensionFault> {
        if id == HANDSHAKE_ID {
            let handshake = ExtHandshake::decode(payload)?;
            self.ids = ExtensionIds::from_theirs(&handshake);
            self.client = handshake.client;
            return Ok(Handled::Handshake(handshake.listen_port));
        }
        if id == ExtensionIds::OUR_DELAY {
            return Ok(Handled::Delay(DelayMessage::decode(payload)?));
        }
        if id == ExtensionIds::OUR_PEX && offered.pex {
            let message = PexMessage::decode(payload)?;
            self.pex_received.arrived(now)?;
            return Ok(Handled::Peers(
                message.added.into_iter().map(|(addr, _)| addr).collect(),
            ));
        }
        if id != ExtensionIds::OUR_METADATA {
            // An extension we never offered: ignored, as BEP 10 allows.
            return Ok(Handled::Nothing);
        }
        let MetadataMessage::Request { piece } = MetadataMessage::decode(payload)? else {
            // Data or rejects for a fetch we never made: ignored.
            return Ok(Handled::Nothing);
        };
        let Some(their_id) = self.ids.their_metadata else {
            return Ok(Handled::Nothing);
        };
        let served = offered.metadata.as_ref().and_then(|metadata| {
            let geometry = MetadataGeometry::new(metadata.len() as u64)?;
            let budget = METADATA_BUDGET * geometry.piece_count();
            let start = geometry.offset(piece)?;
            let len = geometry.piece_len(piece)?;
            (self.served < budget).then(|| MetadataMessage::Data {
                piece,
                total_size: metadata.len() as u64,
                data: Bytes::copy_from_slice(&metadata[start..start + len]),
            })
        });
        let answer = match served {
            Some(data) => {
                self.served += 1;
                data
            }
            None => MetadataMessage::Reject { piece },
        };
        Ok(Handled::Reply(Message::Extended {
            id: their_id,
            payload: Bytes::from(answer.encode()),
        }))
    }

    /// The id the peer gave `ledbat_delay`, if it speaks it.
    pub fn delay_id(&self) -> Option<u8> {
        self.ids.their_delay
    }

    /// The peer exchange message due to this peer now, given the listening
    /// addresses of the other peers we are connected to.
    pub fn pex_due(
        &mut self,
        offered: &Offered,
        connected: &[(SocketAddr, u8)],
        now: Instant,
    ) -> Option<Message> {
        let id = self.ids.their_pex.filter(|_| offered.pex)?;
        let message = self.pex_sent.due(connected, now)?;
        Some(Message::Extended {
            id,
            payload: Bytes::from(message.encode()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::extension::metadata::PIECE_LEN;

    fn offered(len: usize) -> Offered {
        Offered {
            metadata: Some((0..len).map(|i| i as u8).collect::<Vec<u8>>().into()),
            listen_port: 6881,
            reqq: 1024,
            pex: true,
        }
    }

    fn their_handshake(ut_metadata: u8) -> Vec<u8> {
        ExtHandshake {
            extensions: vec![(UT_METADATA.to_owned(), ut_metadata)],
            ..ExtHandshake::default()
        }
        .encode()
    }

    fn now() -> Instant {
        Instant::now()
    }

    fn request(piece: u32) -> Vec<u8> {
        MetadataMessage::Request { piece }.encode()
    }

    fn answer(handled: Handled) -> (u8, MetadataMessage) {
        match handled {
            Handled::Reply(Message::Extended { id, payload }) => {
                (id, MetadataMessage::decode(&payload).unwrap())
            }
            other => panic!("expected an extended message, got {other:?}"),
        }
    }

    #[test]
    fn our_handshake_offers_metadata_unless_private() {
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let Message::Extended { id: 0, payload } = offered(40_000).handshake(ip) else {
            panic!("not an extension handshake")
        };
        let h = ExtHandshake::decode(&payload).unwrap();
        assert_eq!(h.id_of(UT_METADATA), Some(ExtensionIds::OUR_METADATA));
        assert_eq!(
            (h.metadata_size, h.listen_port, h.your_ip),
            (Some(40_000), Some(6881), Some(ip))
        );
        let private = Offered {
            metadata: None,
            pex: false,
            ..offered(1)
        };
        let Message::Extended { payload, .. } = private.handshake(ip) else {
            panic!()
        };
        let h = ExtHandshake::decode(&payload).unwrap();
        assert!(h.metadata_size.is_none());
        assert_eq!(
            h.extensions,
            [(LEDBAT_DELAY.to_owned(), ExtensionIds::OUR_DELAY)],
            "only the delay exchange, which names no one"
        );
    }

    #[test]
    fn pieces_are_served_with_the_peer_s_id_within_the_budget() {
        let offered = offered(PIECE_LEN + 100);
        let mut peer = PeerExtensions::default();
        // Before the peer's handshake there is no id to answer with.
        assert_eq!(
            peer.on_message(&offered, 1, &request(0), now()).unwrap(),
            Handled::Nothing
        );
        assert_eq!(
            peer.on_message(&offered, 0, &their_handshake(7), now())
                .unwrap(),
            Handled::Handshake(None)
        );
        let (id, first) = answer(peer.on_message(&offered, 1, &request(0), now()).unwrap());
        assert_eq!(id, 7);
        let MetadataMessage::Data {
            piece: 0,
            total_size,
            data,
        } = first
        else {
            panic!("{first:?}")
        };
        assert_eq!(
            (total_size, data.len()),
            (PIECE_LEN as u64 + 100, PIECE_LEN)
        );
        assert_eq!(&data[..], &offered.metadata.as_ref().unwrap()[..PIECE_LEN]);
        let (_, last) = answer(peer.on_message(&offered, 1, &request(1), now()).unwrap());
        assert!(
            matches!(last, MetadataMessage::Data { piece: 1, ref data, .. } if data.len() == 100)
        );
        assert_eq!(
            answer(peer.on_message(&offered, 1, &request(2), now()).unwrap()).1,
            MetadataMessage::Reject { piece: 2 },
            "no such piece"
        );
        // Two pieces, three times over: six served, then rejects.
        for _ in 0..4 {
            peer.on_message(&offered, 1, &request(0), now()).unwrap();
        }
        assert_eq!(
            answer(peer.on_message(&offered, 1, &request(0), now()).unwrap()).1,
            MetadataMessage::Reject { piece: 0 }
        );
    }

    #[test]
    fn a_private_torrent_rejects_and_odd_messages_are_ignored_or_refused() {
        let private = Offered {
            metadata: None,
            pex: false,
            ..offered(100)
        };
        let mut peer = PeerExtensions::default();
        peer.on_message(&private, 0, &their_handshake(3), now())
            .unwrap();
        assert_eq!(
            answer(peer.on_message(&private, 1, &request(0), now()).unwrap()).1,
            MetadataMessage::Reject { piece: 0 }
        );
        assert_eq!(
            peer.on_message(&private, 9, b"garbage", now()).unwrap(),
            Handled::Nothing
        );
        let data = MetadataMessage::Reject { piece: 0 }.encode();
        assert_eq!(
            peer.on_message(&private, 1, &data, now()).unwrap(),
            Handled::Nothing
        );
        assert!(peer.on_message(&private, 0, b"d1:m", now()).is_err());
        assert!(peer.on_message(&private, 1, b"garbage", now()).is_err());
    }

    #[test]
    fn delay_messages_are_passed_on_and_malformed_ones_refused() {
        let offered = offered(100);
        let mut peer = PeerExtensions::default();
        assert_eq!(peer.delay_id(), None);
        let theirs = ExtHandshake {
            extensions: vec![(LEDBAT_DELAY.to_owned(), 4)],
            ..ExtHandshake::default()
        };
        peer.on_message(&offered, 0, &theirs.encode(), now())
            .unwrap();
        assert_eq!(peer.delay_id(), Some(4));
        let message = DelayMessage {
            sent: 42,
            echo: None,
        };
        assert_eq!(
            peer.on_message(&offered, ExtensionIds::OUR_DELAY, &message.encode(), now())
                .unwrap(),
            Handled::Delay(message)
        );
        assert!(peer
            .on_message(&offered, ExtensionIds::OUR_DELAY, b"d1:ti-1ee", now())
            .is_err());
    }

    #[test]
    fn pex_is_offered_read_within_its_rate_and_sent_with_the_peer_s_id() {
        let offered = offered(100);
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let Message::Extended { payload, .. } = offered.handshake(ip) else {
            panic!()
        };
        let ours = ExtHandshake::decode(&payload).unwrap();
        assert_eq!(ours.id_of(UT_PEX), Some(ExtensionIds::OUR_PEX));

        let mut peer = PeerExtensions::default();
        let theirs = ExtHandshake {
            extensions: vec![(UT_PEX.to_owned(), 9)],
            listen_port: Some(51413),
            ..ExtHandshake::default()
        };
        assert_eq!(
            peer.on_message(&offered, 0, &theirs.encode(), now())
                .unwrap(),
            Handled::Handshake(Some(51413))
        );
        let other: SocketAddr = "127.0.0.3:6881".parse().unwrap();
        let start = now();
        let Some(Message::Extended { id: 9, payload }) =
            peer.pex_due(&offered, &[(other, 0x10)], start)
        else {
            panic!("a first message at once, with their id")
        };
        assert_eq!(PexMessage::decode(&payload).unwrap().added, [(other, 0x10)]);
        assert_eq!(peer.pex_due(&offered, &[(other, 0)], start), None);

        let theirs = PexMessage {
            added: vec![(other, 0)],
            dropped: vec![],
        }
        .encode();
        for _ in 0..3 {
            assert_eq!(
                peer.on_message(&offered, ExtensionIds::OUR_PEX, &theirs, start)
                    .unwrap(),
                Handled::Peers(vec![other])
            );
        }
        assert!(matches!(
            peer.on_message(&offered, ExtensionIds::OUR_PEX, &theirs, start),
            Err(ExtensionFault::Flood(_))
        ));
        let off = Offered {
            pex: false,
            ..offered
        };
        assert_eq!(
            PeerExtensions::default()
                .on_message(&off, ExtensionIds::OUR_PEX, b"garbage", start)
                .unwrap(),
            Handled::Nothing,
            "with PEX off, its messages are ignored unread"
        );
    }
}
