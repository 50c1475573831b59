//! Fetching a torrent's info dictionary from peers (BEP 9), pure: which
//! piece to ask whom, what each answer means, and when the dictionary is
//! whole and verified. Time is passed in; the connections are in `magnet`.
//!
//! Invariants:
//! - Every metadata piece is in exactly one state: missing, asked of one
//!   peer (since a given instant), or held (with the peer that sent it).
//! - The size comes from the first peer that states one within
//!   [`MAX_METADATA_SIZE`]; nothing is allocated before a piece arrives, and
//!   at most the stated size is ever held.
//! - A peer that states another size than the one in force, or sends a piece
//!   we did not ask it for or of the wrong length, is dropped; the pieces
//!   other peers sent stay.
//! - When the whole dictionary fails its SHA-1: if one peer sent every
//!   piece, it is banned and its pieces discarded. If several did, nobody
//!   can be blamed yet: every piece is discarded and the next attempt takes
//!   all pieces from one peer at a time, so the next failure names its
//!   culprit. The size in force is dropped too, so an honest peer's stated
//!   size can take over from a liar's.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::{
    extension::metadata::{MetadataGeometry, MAX_METADATA_SIZE},
    InfoHash,
};

use super::picker::PeerKey;

/// A piece asked of a peer that has not come in this long is asked again,
/// of whoever asks next.
pub const PIECE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pieces asked of one peer at a time.
pub const PER_PEER: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    Missing,
    Asked { peer: PeerKey, at: Instant },
    Held { data: Bytes, from: PeerKey },
}

/// Why a peer is dropped, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Misbehaviour {
    #[error("stated a metadata size of {0} bytes, over the limit of {MAX_METADATA_SIZE} or zero")]
    SizeOutOfBounds(u64),
    #[error("stated a metadata size of {stated} bytes where {expected} is in force")]
    SizeChanged { stated: u64, expected: u64 },
    #[error("sent metadata piece {0}, which it was not asked for")]
    Unasked(u32),
    #[error("sent metadata piece {piece} of {len} bytes, expected {expected}")]
    WrongLength {
        piece: u32,
        len: usize,
        expected: usize,
    },
    #[error("sent metadata that fails the info-hash")]
    FailedHash,
}

/// What one answer led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Keep going.
    More,
    /// The whole dictionary, verified against the info-hash.
    Done(Vec<u8>),
    /// The dictionary failed its hash; these peers are banned (none when
    /// the culprit cannot be told yet; see the module docs).
    HashFailed { banned: Vec<PeerKey> },
}

/// The fetch of one torrent's metadata.
#[derive(Debug)]
pub struct MetadataFetch {
    info_hash: InfoHash,
    geometry: Option<MetadataGeometry>,
    slots: Vec<Slot>,
    /// Peers that can serve metadata, with the size they stated.
    peers: HashMap<PeerKey, u64>,
    /// Peers that rejected a request: asked nothing more.
    refusing: HashSet<PeerKey>,
    banned: HashSet<PeerKey>,
    /// After a failure with several senders: the one peer all pieces are
    /// asked of now.
    one_source: bool,
    source: Option<PeerKey>,
}

impl MetadataFetch {
    pub fn new(info_hash: InfoHash) -> Self {
        MetadataFetch {
            info_hash,
            geometry: None,
            slots: Vec::new(),
            peers: HashMap::new(),
            refusing: HashSet::new(),
            banned: HashSet::new(),
            one_source: false,
            source: None,
        }
    }

    /// The size in force, once a peer stated one.
    #[cfg(test)]
    pub fn size(&self) -> Option<usize> {
        self.geometry.map(|g| g.size())
    }

    pub fn is_banned(&self, peer: PeerKey) -> bool {
        self.banned.contains(&peer)
    }

    /// A peer's extension handshake said `metadata_size` (or a later one
    /// said it again).
    pub fn peer_states_size(&mut self, peer: PeerKey, size: u64) -> Result<(), Misbehaviour> {
        if self.banned.contains(&peer) {
            return Err(Misbehaviour::FailedHash);
        }
        if MetadataGeometry::new(size).is_none() {
            return Err(Misbehaviour::SizeOutOfBounds(size));
        }
        if let Some(&before) = self.peers.get(&peer) {
            if before != size {
                self.peer_left(peer);
                return Err(Misbehaviour::SizeChanged {
                    stated: size,
                    expected: before,
                });
            }
        }
        match self.geometry {
            None => {
                let geometry = MetadataGeometry::new(size).expect("checked above");
                self.geometry = Some(geometry);
                self.slots = vec![Slot::Missing; geometry.piece_count() as usize];
            }
            Some(g) if g.size() as u64 != size => {
                return Err(Misbehaviour::SizeChanged {
                    stated: size,
                    expected: g.size() as u64,
                })
            }
            Some(_) => {}
        }
        self.peers.insert(peer, size);
        Ok(())
    }

    /// Pieces to ask `peer` for now (at most [`PER_PEER`] outstanding),
    /// marked as asked.
    pub fn requests(&mut self, peer: PeerKey, now: Instant) -> Vec<u32> {
        if !self.peers.contains_key(&peer) || self.refusing.contains(&peer) {
            return Vec::new();
        }
        if self.one_source {
            match self.source {
                Some(source) if source != peer => return Vec::new(),
                None => self.source = Some(peer),
                Some(_) => {}
            }
        }
        let outstanding = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Asked { peer: p, .. } if *p == peer))
            .count();
        let mut asked = Vec::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if outstanding + asked.len() >= PER_PEER {
                break;
            }
            let free = match slot {
                Slot::Missing => true,
                Slot::Asked { at, .. } => now.duration_since(*at) >= PIECE_TIMEOUT,
                Slot::Held { .. } => false,
            };
            if free {
                *slot = Slot::Asked { peer, at: now };
                asked.push(index as u32);
            }
        }
        asked
    }

    /// `peer` sent piece `piece` of a dictionary it says is `total_size`
    /// bytes.
    pub fn on_data(
        &mut self,
        peer: PeerKey,
        piece: u32,
        total_size: u64,
        data: Bytes,
    ) -> Result<Progress, Misbehaviour> {
        let geometry = self.geometry.ok_or(Misbehaviour::Unasked(piece))?;
        if total_size != geometry.size() as u64 {
            self.peer_left(peer);
            return Err(Misbehaviour::SizeChanged {
                stated: total_size,
                expected: geometry.size() as u64,
            });
        }
        let asked_of_it = matches!(
            self.slots.get(piece as usize),
            Some(Slot::Asked { peer: p, .. }) if *p == peer
        );
        if !asked_of_it {
            self.peer_left(peer);
            return Err(Misbehaviour::Unasked(piece));
        }
        let expected = geometry.piece_len(piece).expect("asked pieces exist");
        if data.len() != expected {
            self.peer_left(peer);
            return Err(Misbehaviour::WrongLength {
                piece,
                len: data.len(),
                expected,
            });
        }
        self.slots[piece as usize] = Slot::Held { data, from: peer };
        if !self.slots.iter().all(|s| matches!(s, Slot::Held { .. })) {
            return Ok(Progress::More);
        }
        let mut whole = Vec::with_capacity(geometry.size());
        let mut senders = HashSet::new();
        for slot in &self.slots {
            if let Slot::Held { data, from } = slot {
                whole.extend_from_slice(data);
                senders.insert(*from);
            }
        }
        if InfoHash::of_info_bytes(&whole) == self.info_hash {
            return Ok(Progress::Done(whole));
        }
        // Start over, with no size in force: see the module docs.
        let banned: Vec<PeerKey> = if senders.len() == 1 {
            senders.into_iter().collect()
        } else {
            self.one_source = true;
            Vec::new()
        };
        for &peer in &banned {
            self.banned.insert(peer);
            self.peers.remove(&peer);
        }
        self.source = None;
        self.geometry = None;
        self.slots.clear();
        // Peers keep their stated sizes; the next one asked sets the size.
        let peers: Vec<(PeerKey, u64)> = self.peers.drain().collect();
        for (peer, size) in peers {
            let _ = self.peer_states_size(peer, size);
        }
        Ok(Progress::HashFailed { banned })
    }

    /// `peer` will not send `piece` (it may not have the metadata, or
    /// limits what it serves): it is asked nothing more.
    pub fn on_reject(&mut self, peer: PeerKey, piece: u32) {
        if let Some(slot @ Slot::Asked { .. }) = self.slots.get_mut(piece as usize) {
            if matches!(slot, Slot::Asked { peer: p, .. } if *p == peer) {
                *slot = Slot::Missing;
            }
        }
        self.refusing.insert(peer);
        if self.source == Some(peer) {
            self.source = None;
        }
    }

    /// `peer` disconnected or was dropped: what it was asked is free again.
    pub fn peer_left(&mut self, peer: PeerKey) {
        for slot in &mut self.slots {
            if matches!(slot, Slot::Asked { peer: p, .. } if *p == peer) {
                *slot = Slot::Missing;
            }
        }
        self.peers.remove(&peer);
        if self.source == Some(peer) {
            self.source = None;
            // The source's pieces cannot be told from others' any more.
            for slot in &mut self.slots {
                if matches!(slot, Slot::Held { from, .. } if *from == peer) {
                    *slot = Slot::Missing;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::extension::metadata::PIECE_LEN;

    /// An info dictionary of `len` bytes (not a valid torrent: only its
    /// hash matters here) and its hash.
    fn metadata(len: usize) -> (Vec<u8>, InfoHash) {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let hash = InfoHash::of_info_bytes(&bytes);
        (bytes, hash)
    }

    fn piece(bytes: &[u8], index: u32) -> Bytes {
        let start = index as usize * PIECE_LEN;
        Bytes::copy_from_slice(&bytes[start..(start + PIECE_LEN).min(bytes.len())])
    }

    #[test]
    fn pieces_from_two_peers_make_the_verified_dictionary() {
        let (bytes, hash) = metadata(3 * PIECE_LEN + 100);
        let size = bytes.len() as u64;
        let now = Instant::now();
        let mut fetch = MetadataFetch::new(hash);
        fetch.peer_states_size(1, size).unwrap();
        fetch.peer_states_size(2, size).unwrap();
        assert_eq!(fetch.requests(1, now), [0, 1]);
        assert_eq!(fetch.requests(2, now), [2, 3]);
        assert_eq!(
            fetch.requests(1, now),
            Vec::<u32>::new(),
            "two outstanding at most"
        );
        for (peer, index) in [(2, 3), (1, 0), (2, 2)] {
            assert_eq!(
                fetch.on_data(peer, index, size, piece(&bytes, index)),
                Ok(Progress::More)
            );
        }
        assert_eq!(
            fetch.on_data(1, 1, size, piece(&bytes, 1)),
            Ok(Progress::Done(bytes))
        );
    }

    #[test]
    fn a_slow_peer_s_piece_is_asked_again_and_a_leaver_s_at_once() {
        let (bytes, hash) = metadata(2 * PIECE_LEN);
        let size = bytes.len() as u64;
        let now = Instant::now();
        let mut fetch = MetadataFetch::new(hash);
        fetch.peer_states_size(1, size).unwrap();
        fetch.peer_states_size(2, size).unwrap();
        assert_eq!(fetch.requests(1, now), [0, 1]);
        assert!(fetch.requests(2, now + PIECE_TIMEOUT / 2).is_empty());
        assert_eq!(fetch.requests(2, now + PIECE_TIMEOUT), [0, 1]);
        // Peer 1's late piece is no longer its to send.
        assert_eq!(
            fetch.on_data(1, 0, size, piece(&bytes, 0)),
            Err(Misbehaviour::Unasked(0))
        );
        fetch.peer_left(2);
        fetch.peer_states_size(3, size).unwrap();
        assert_eq!(fetch.requests(3, now), [0, 1]);
    }

    #[test]
    fn liars_about_size_and_length_are_dropped_and_honest_work_stays() {
        let (bytes, hash) = metadata(2 * PIECE_LEN + 5);
        let size = bytes.len() as u64;
        let now = Instant::now();
        let mut fetch = MetadataFetch::new(hash);
        assert_eq!(
            fetch.peer_states_size(9, 1 << 30),
            Err(Misbehaviour::SizeOutOfBounds(1 << 30))
        );
        assert_eq!(
            fetch.peer_states_size(9, 0),
            Err(Misbehaviour::SizeOutOfBounds(0))
        );
        assert_eq!(fetch.size(), None, "a refused size is not taken");
        fetch.peer_states_size(1, size).unwrap();
        assert_eq!(
            fetch.peer_states_size(8, size + 1),
            Err(Misbehaviour::SizeChanged {
                stated: size + 1,
                expected: size
            })
        );
        fetch.peer_states_size(2, size).unwrap();
        assert_eq!(fetch.requests(1, now), [0, 1]);
        assert_eq!(
            fetch.on_data(1, 0, size, piece(&bytes, 0)),
            Ok(Progress::More)
        );
        assert_eq!(fetch.requests(2, now), [2]);
        assert_eq!(
            fetch.on_data(2, 2, size, Bytes::from_static(b"short")),
            Ok(Progress::More),
            "5 bytes is the right length for the last piece"
        );
        // A wrong length is refused, and a size that changes mid-way too.
        let mut fetch = MetadataFetch::new(hash);
        fetch.peer_states_size(1, size).unwrap();
        fetch.peer_states_size(2, size).unwrap();
        assert_eq!(fetch.requests(1, now), [0, 1]);
        assert_eq!(
            fetch.on_data(1, 0, size, piece(&bytes, 0)),
            Ok(Progress::More)
        );
        assert_eq!(fetch.requests(2, now), [2]);
        assert_eq!(
            fetch.on_data(2, 2, size, Bytes::from_static(b"toolong")),
            Err(Misbehaviour::WrongLength {
                piece: 2,
                len: 7,
                expected: 5
            })
        );
        assert_eq!(
            fetch.on_data(1, 1, size + 7, piece(&bytes, 1)),
            Err(Misbehaviour::SizeChanged {
                stated: size + 7,
                expected: size
            })
        );
        // Piece 0 from peer 1 stayed held; an honest newcomer finishes.
        fetch.peer_states_size(3, size).unwrap();
        assert_eq!(fetch.requests(3, now), [1, 2]);
        assert_eq!(
            fetch.on_data(3, 1, size, piece(&bytes, 1)),
            Ok(Progress::More)
        );
        assert_eq!(
            fetch.on_data(3, 2, size, piece(&bytes, 2)),
            Ok(Progress::Done(bytes))
        );
    }

    #[test]
    fn a_lone_liar_is_banned_and_the_honest_peer_then_completes() {
        let (bytes, hash) = metadata(PIECE_LEN + 10);
        let size = bytes.len() as u64;
        let now = Instant::now();
        let mut fetch = MetadataFetch::new(hash);
        fetch.peer_states_size(1, size).unwrap();
        assert_eq!(fetch.requests(1, now), [0, 1]);
        let garbage = |i| Bytes::from(vec![0x5a; if i == 0 { PIECE_LEN } else { 10 }]);
        assert_eq!(fetch.on_data(1, 0, size, garbage(0)), Ok(Progress::More));
        assert_eq!(
            fetch.on_data(1, 1, size, garbage(1)),
            Ok(Progress::HashFailed { banned: vec![1] })
        );
        assert!(fetch.is_banned(1));
        assert!(fetch.requests(1, now).is_empty());
        assert_eq!(
            fetch.peer_states_size(1, size),
            Err(Misbehaviour::FailedHash)
        );
        fetch.peer_states_size(2, size).unwrap();
        assert_eq!(fetch.requests(2, now), [0, 1]);
        fetch.on_data(2, 0, size, piece(&bytes, 0)).unwrap();
        assert_eq!(
            fetch.on_data(2, 1, size, piece(&bytes, 1)),
            Ok(Progress::Done(bytes))
        );
    }

    #[test]
    fn a_mixed_failure_is_retried_from_one_peer_at_a_time_until_the_liar_is_named() {
        let (bytes, hash) = metadata(2 * PIECE_LEN);
        let size = bytes.len() as u64;
        let now = Instant::now();
        let mut fetch = MetadataFetch::new(hash);
        fetch.peer_states_size(1, size).unwrap(); // honest
        fetch.peer_states_size(2, size).unwrap(); // liar
        assert_eq!(fetch.requests(2, now), [0, 1]);
        fetch.on_data(2, 0, size, piece(&bytes, 0)).unwrap();
        fetch
            .on_data(2, 1, size, Bytes::from(vec![0; PIECE_LEN]))
            .ok();
        // That was all from the liar: banned at once.
        assert!(fetch.is_banned(2));

        let mut fetch = MetadataFetch::new(hash);
        fetch.peer_states_size(1, size).unwrap();
        fetch.peer_states_size(2, size).unwrap();
        assert_eq!(fetch.requests(1, now), [0, 1]);
        fetch.on_data(1, 0, size, piece(&bytes, 0)).unwrap();
        // Peer 1 is slow with piece 1: the liar is asked for it.
        assert_eq!(fetch.requests(2, now + PIECE_TIMEOUT), [1]);
        assert_eq!(
            fetch.on_data(2, 1, size, Bytes::from(vec![0; PIECE_LEN])),
            Ok(Progress::HashFailed { banned: vec![] }),
            "two senders: nobody can be blamed yet"
        );
        // Now one source at a time: the liar is asked everything, fails
        // alone, and is banned; the honest peer then completes.
        assert_eq!(fetch.requests(2, now), [0, 1]);
        assert!(fetch.requests(1, now).is_empty(), "one source at a time");
        fetch
            .on_data(2, 0, size, Bytes::from(vec![1; PIECE_LEN]))
            .unwrap();
        assert_eq!(
            fetch.on_data(2, 1, size, Bytes::from(vec![1; PIECE_LEN])),
            Ok(Progress::HashFailed { banned: vec![2] })
        );
        assert_eq!(fetch.requests(1, now), [0, 1]);
        fetch.on_data(1, 0, size, piece(&bytes, 0)).unwrap();
        assert_eq!(
            fetch.on_data(1, 1, size, piece(&bytes, 1)),
            Ok(Progress::Done(bytes))
        );
    }

    #[test]
    fn a_peer_that_rejects_is_asked_nothing_more() {
        let (bytes, hash) = metadata(PIECE_LEN);
        let size = bytes.len() as u64;
        let now = Instant::now();
        let mut fetch = MetadataFetch::new(hash);
        fetch.peer_states_size(1, size).unwrap();
        fetch.peer_states_size(2, size).unwrap();
        assert_eq!(fetch.requests(1, now), [0]);
        fetch.on_reject(1, 0);
        assert!(fetch.requests(1, now).is_empty());
        assert_eq!(fetch.requests(2, now), [0]);
        assert_eq!(
            fetch.on_data(2, 0, size, piece(&bytes, 0)),
            Ok(Progress::Done(bytes))
        );
    }
}
