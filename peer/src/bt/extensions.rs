//! The extension protocol (BEP 10) inside a download or a seed, pure: what
//! our extension handshake says, and what each extended message a peer sends
//! calls for. The session only sends what this returns.
//!
//! We speak `ut_metadata` (BEP 9) here to serve the info dictionary to peers
//! that came with a magnet link, seeders and leechers alike; a private
//! torrent (BEP 27) offers no extension. A peer may fetch the dictionary
//! [`METADATA_BUDGET`] times over per connection; past that every request is
//! rejected, so a 30-byte request cannot make us send 16 KiB without end.

use std::{net::IpAddr, sync::Arc};

use bytes::Bytes;
use common::{
    extension::{
        handshake::{ExtHandshake, ExtensionIds, UT_METADATA},
        metadata::{MetadataGeometry, MetadataMessage},
        ExtensionError, HANDSHAKE_ID,
    },
    wire::Message,
};

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
}

impl Offered {
    /// Our extension handshake to a peer at `peer_ip`.
    pub fn handshake(&self, peer_ip: IpAddr) -> Message {
        let mut extensions = Vec::new();
        if self.metadata.is_some() {
            extensions.push((UT_METADATA.to_owned(), ExtensionIds::OUR_METADATA));
        }
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

/// One peer's side of the extension protocol.
#[derive(Debug, Default)]
pub struct PeerExtensions {
    ids: ExtensionIds,
    /// Metadata pieces sent to this peer.
    served: u32,
    /// The peer's `v`, for the log.
    pub client: Option<String>,
}

impl PeerExtensions {
    /// An extended message from the peer: what to answer, if anything. An
    /// error (a malformed message) ends the connection.
    pub fn on_message(
        &mut self,
        offered: &Offered,
        id: u8,
        payload: &[u8],
    ) -> Result<Option<Message>, ExtensionError> {
        if id == HANDSHAKE_ID {
            let handshake = ExtHandshake::decode(payload)?;
            self.ids = ExtensionIds::from_theirs(&handshake);
            self.client = handshake.client;
            return Ok(None);
        }
        if id != ExtensionIds::OUR_METADATA {
            // An extension we never offered: ignored, as BEP 10 allows.
            return Ok(None);
        }
        let MetadataMessage::Request { piece } = MetadataMessage::decode(payload)? else {
            // Data or rejects for a fetch we never made: ignored.
            return Ok(None);
        };
        let Some(their_id) = self.ids.their_metadata else {
            return Ok(None);
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
        Ok(Some(Message::Extended {
            id: their_id,
            payload: Bytes::from(answer.encode()),
        }))
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
        }
    }

    fn their_handshake(ut_metadata: u8) -> Vec<u8> {
        ExtHandshake {
            extensions: vec![(UT_METADATA.to_owned(), ut_metadata)],
            ..ExtHandshake::default()
        }
        .encode()
    }

    fn request(piece: u32) -> Vec<u8> {
        MetadataMessage::Request { piece }.encode()
    }

    fn answer(message: Option<Message>) -> (u8, MetadataMessage) {
        match message {
            Some(Message::Extended { id, payload }) => {
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
            ..offered(1)
        };
        let Message::Extended { payload, .. } = private.handshake(ip) else {
            panic!()
        };
        let h = ExtHandshake::decode(&payload).unwrap();
        assert!(h.extensions.is_empty() && h.metadata_size.is_none());
    }

    #[test]
    fn pieces_are_served_with_the_peer_s_id_within_the_budget() {
        let offered = offered(PIECE_LEN + 100);
        let mut peer = PeerExtensions::default();
        // Before the peer's handshake there is no id to answer with.
        assert_eq!(peer.on_message(&offered, 1, &request(0)).unwrap(), None);
        assert_eq!(
            peer.on_message(&offered, 0, &their_handshake(7)).unwrap(),
            None
        );
        let (id, first) = answer(peer.on_message(&offered, 1, &request(0)).unwrap());
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
        let (_, last) = answer(peer.on_message(&offered, 1, &request(1)).unwrap());
        assert!(
            matches!(last, MetadataMessage::Data { piece: 1, ref data, .. } if data.len() == 100)
        );
        assert_eq!(
            answer(peer.on_message(&offered, 1, &request(2)).unwrap()).1,
            MetadataMessage::Reject { piece: 2 },
            "no such piece"
        );
        // Two pieces, three times over: six served, then rejects.
        for _ in 0..4 {
            peer.on_message(&offered, 1, &request(0)).unwrap();
        }
        assert_eq!(
            answer(peer.on_message(&offered, 1, &request(0)).unwrap()).1,
            MetadataMessage::Reject { piece: 0 }
        );
    }

    #[test]
    fn a_private_torrent_rejects_and_odd_messages_are_ignored_or_refused() {
        let private = Offered {
            metadata: None,
            ..offered(100)
        };
        let mut peer = PeerExtensions::default();
        peer.on_message(&private, 0, &their_handshake(3)).unwrap();
        assert_eq!(
            answer(peer.on_message(&private, 1, &request(0)).unwrap()).1,
            MetadataMessage::Reject { piece: 0 }
        );
        assert_eq!(peer.on_message(&private, 9, b"garbage").unwrap(), None);
        let data = MetadataMessage::Reject { piece: 0 }.encode();
        assert_eq!(peer.on_message(&private, 1, &data).unwrap(), None);
        assert!(peer.on_message(&private, 0, b"d1:m").is_err());
        assert!(peer.on_message(&private, 1, b"garbage").is_err());
    }
}
