//! Which blocks to ask which peer for: rarest first, partial pieces first,
//! endgame at the end. Pure: no I/O, no clock; randomness is passed in.
//!
//! Invariant: every piece is in exactly one state:
//! - `Missing`: nothing of it is held or asked for;
//! - `Active`: some of its blocks are asked for or held, in an
//!   [`ActivePiece`] that owns the piece's buffer;
//! - `Verifying`: all blocks arrived; the buffer was handed out for hashing;
//! - `Have`: verified and on disk.
//!
//! Within an active piece every block is `Open` (nobody asked), `Requested`
//! (by one peer, or by several in endgame) or `Received` (its bytes are in the
//! buffer). A peer's requests return to `Open` when it chokes us or leaves
//! ([`Picker::release`]).
//!
//! Choice of a new piece: among the `Missing` pieces the peer has, the first
//! [`RANDOM_FIRST`] are chosen at random (to have something to trade soon),
//! then the least available, random among equals. Partly downloaded pieces
//! are always continued before a new one starts. Once no piece is `Missing`
//! any more (every one is started somewhere), a peer with free request slots
//! joins requests already made to others (endgame), at most
//! [`ENDGAME_COPIES`] requesters a block; the first copy to arrive wins, and
//! the caller cancels the others.
//!
//! After a piece fails its hash, it is downloaded again from one peer only
//! (`exclusive`), so a second failure names the liar with certainty.

use std::collections::BTreeMap;

use common::{
    bitfield::Bitfield,
    wire::{BlockRef, Geometry, MAX_BLOCK_LEN},
};
use rand::Rng;

use super::buffers::PieceBuffers;

/// A connected peer, as the coordinator numbers them.
pub type PeerKey = u64;

/// Pieces chosen at random before rarest-first takes over.
pub const RANDOM_FIRST: usize = 4;
/// Most peers asked for the same block in endgame.
pub const ENDGAME_COPIES: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceState {
    Missing,
    Active,
    Verifying,
    Have,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BlockState {
    Open,
    Requested(Vec<PeerKey>),
    Received,
}

#[derive(Debug)]
struct ActivePiece {
    blocks: Vec<BlockState>,
    /// Allocated when the first block arrives.
    buffer: Vec<u8>,
    received: usize,
    contributors: Vec<PeerKey>,
    /// After a hash failure: only `owner` may download it.
    exclusive: bool,
    owner: Option<PeerKey>,
}

/// A piece whose blocks have all arrived, to be hashed and written.
#[derive(Debug)]
pub struct CompletePiece {
    pub index: u32,
    pub data: Vec<u8>,
    /// The peers that sent its blocks.
    pub contributors: Vec<PeerKey>,
}

/// What became of a block that arrived.
#[derive(Debug, Default)]
pub struct Received {
    /// False when the block was not wanted (a duplicate, or a piece we have).
    pub stored: bool,
    /// Other peers that were asked for the same block: cancel it there.
    pub cancel: Vec<PeerKey>,
    pub complete: Option<CompletePiece>,
}

pub struct Picker {
    geometry: Geometry,
    states: Vec<PieceState>,
    availability: Vec<u32>,
    active: BTreeMap<u32, ActivePiece>,
    have: Bitfield,
    /// Pieces that failed their hash at least once.
    suspect: Vec<bool>,
    /// Pieces in state `Missing`: endgame starts only when none is left.
    missing: usize,
    /// Buffers of verified pieces, for the next ones ([`Picker::recycle`]).
    buffers: PieceBuffers,
}

impl Picker {
    /// A picker for a torrent of which we already have `have`.
    pub fn new(geometry: Geometry, have: Bitfield) -> Self {
        let count = geometry.piece_count as usize;
        let states = (0..count)
            .map(|i| {
                if have.get(i) {
                    PieceState::Have
                } else {
                    PieceState::Missing
                }
            })
            .collect();
        let missing = count - have.count();
        Picker {
            geometry,
            states,
            availability: vec![0; count],
            active: BTreeMap::new(),
            have,
            suspect: vec![false; count],
            missing,
            buffers: PieceBuffers::default(),
        }
    }

    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    pub fn is_complete(&self) -> bool {
        self.have.is_complete()
    }

    /// Bytes we hold in verified pieces.
    pub fn bytes_have(&self) -> u64 {
        self.have
            .ones()
            .filter_map(|i| self.geometry.piece_size(i as u32))
            .sum()
    }

    /// Whether we still need piece `index`.
    pub fn wants(&self, index: u32) -> bool {
        self.states
            .get(index as usize)
            .is_some_and(|s| *s != PieceState::Have)
    }

    /// Whether a peer holding `has` has anything we need.
    pub fn wants_any(&self, has: &Bitfield) -> bool {
        has.ones().any(|i| self.states[i] != PieceState::Have)
    }

    pub fn add_availability(&mut self, has: &Bitfield) {
        for index in has.ones() {
            self.availability[index] += 1;
        }
    }

    pub fn remove_availability(&mut self, has: &Bitfield) {
        for index in has.ones() {
            self.availability[index] = self.availability[index].saturating_sub(1);
        }
    }

    /// Connected peers that have piece `index`.
    pub fn availability(&self, index: usize) -> u32 {
        self.availability.get(index).copied().unwrap_or(0)
    }

    pub fn add_have(&mut self, index: u32) {
        if let Some(count) = self.availability.get_mut(index as usize) {
            *count += 1;
        }
    }

    /// Up to `want` blocks to ask `peer` for, among the pieces in `has`.
    pub fn pick<R: Rng>(
        &mut self,
        peer: PeerKey,
        has: &Bitfield,
        want: usize,
        rng: &mut R,
    ) -> Vec<BlockRef> {
        let mut out = Vec::new();
        // 1. Continue the pieces already started.
        let started: Vec<u32> = self
            .active
            .keys()
            .copied()
            .filter(|&i| has.get(i as usize))
            .collect();
        for index in started {
            self.take_open(index, peer, want, &mut out);
            if out.len() >= want {
                return out;
            }
        }
        // 2. Start new pieces, rarest first.
        while out.len() < want {
            let Some(index) = self.choose_new(has, rng) else {
                break;
            };
            self.states[index as usize] = PieceState::Active;
            self.missing -= 1;
            let blocks = vec![BlockState::Open; self.geometry.block_count(index)];
            let exclusive = self.suspect[index as usize];
            self.active.insert(
                index,
                ActivePiece {
                    blocks,
                    buffer: Vec::new(),
                    received: 0,
                    contributors: Vec::new(),
                    exclusive,
                    owner: None,
                },
            );
            self.take_open(index, peer, want, &mut out);
        }
        // 3. Endgame: every piece is started somewhere (none `Missing`). A
        //    peer that merely has nothing new *for us* must not duplicate
        //    requests: that wasted a third of a seeder's upload in the study.
        if out.len() < want && self.missing == 0 {
            for (&index, piece) in self.active.iter_mut() {
                if !has.get(index as usize) || piece.exclusive {
                    continue;
                }
                for (block, state) in piece.blocks.iter_mut().enumerate() {
                    if let BlockState::Requested(peers) = state {
                        if peers.len() < ENDGAME_COPIES && !peers.contains(&peer) {
                            peers.push(peer);
                            out.extend(self.geometry.block(index, block));
                            if out.len() >= want {
                                return out;
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// Marks `peer` as asked for the open blocks of `index`, up to `want` in all.
    fn take_open(&mut self, index: u32, peer: PeerKey, want: usize, out: &mut Vec<BlockRef>) {
        let refs: Vec<BlockRef> = {
            let Some(piece) = self.active.get_mut(&index) else {
                return;
            };
            if piece.exclusive && piece.owner.is_some_and(|owner| owner != peer) {
                return;
            }
            let mut taken = Vec::new();
            for (block, state) in piece.blocks.iter_mut().enumerate() {
                if out.len() + taken.len() >= want {
                    break;
                }
                if *state == BlockState::Open {
                    *state = BlockState::Requested(vec![peer]);
                    taken.push(block);
                }
            }
            if piece.exclusive && !taken.is_empty() {
                piece.owner = Some(peer);
            }
            taken
                .into_iter()
                .filter_map(|block| self.geometry.block(index, block))
                .collect()
        };
        out.extend(refs);
    }

    fn choose_new<R: Rng>(&self, has: &Bitfield, rng: &mut R) -> Option<u32> {
        let candidates = has
            .ones()
            .filter(|&i| self.states[i] == PieceState::Missing);
        let random_phase = self.have.count() + self.active.len() < RANDOM_FIRST;
        // The least available; in the random phase every candidate is equal.
        let keyed = candidates.map(|index| {
            let rarity = if random_phase {
                0
            } else {
                self.availability[index]
            };
            (rarity, index)
        });
        least_at_random(keyed, rng).map(|index| index as u32)
    }

    /// Stores a block from `peer`. `data` must be the block `block` (the codec
    /// has checked it lies inside its piece).
    pub fn received(&mut self, peer: PeerKey, block: BlockRef, data: &[u8]) -> Received {
        let Some(piece) = self.active.get_mut(&block.index) else {
            return Received::default();
        };
        let slot = (block.begin / MAX_BLOCK_LEN) as usize;
        if self.geometry.block(block.index, slot) != Some(block)
            || data.len() != block.length as usize
        {
            return Received::default(); // not a block we would have asked for
        }
        let Some(state) = piece.blocks.get_mut(slot) else {
            return Received::default();
        };
        let cancel = match std::mem::replace(state, BlockState::Received) {
            BlockState::Received => {
                *state = BlockState::Received;
                return Received::default();
            }
            BlockState::Open => Vec::new(),
            BlockState::Requested(peers) => peers.into_iter().filter(|&p| p != peer).collect(),
        };
        if piece.buffer.is_empty() {
            let size = self.geometry.piece_size(block.index).unwrap_or(0) as usize;
            piece.buffer = self.buffers.take(size);
        }
        let begin = block.begin as usize;
        piece.buffer[begin..begin + data.len()].copy_from_slice(data);
        piece.received += 1;
        if !piece.contributors.contains(&peer) {
            piece.contributors.push(peer);
        }
        let complete = if piece.received == piece.blocks.len() {
            let piece = self
                .active
                .remove(&block.index)
                .expect("the piece is active");
            self.states[block.index as usize] = PieceState::Verifying;
            Some(CompletePiece {
                index: block.index,
                data: piece.buffer,
                contributors: piece.contributors,
            })
        } else {
            None
        };
        Received {
            stored: true,
            cancel,
            complete,
        }
    }

    /// Returns one block `peer` was asked for to the pool (it rejected the
    /// request, BEP 6).
    pub fn release_block(&mut self, peer: PeerKey, block: BlockRef) {
        let Some(piece) = self.active.get_mut(&block.index) else {
            return;
        };
        let slot = (block.begin / MAX_BLOCK_LEN) as usize;
        if let Some(state @ BlockState::Requested(_)) = piece.blocks.get_mut(slot) {
            if let BlockState::Requested(peers) = state {
                peers.retain(|&p| p != peer);
                if peers.is_empty() {
                    *state = BlockState::Open;
                }
            }
        }
    }

    /// Returns every block `peer` was asked for to the pool.
    pub fn release(&mut self, peer: PeerKey) {
        for piece in self.active.values_mut() {
            for state in piece.blocks.iter_mut() {
                if let BlockState::Requested(peers) = state {
                    peers.retain(|&p| p != peer);
                    if peers.is_empty() {
                        *state = BlockState::Open;
                    }
                }
            }
            if piece.owner == Some(peer) {
                piece.owner = None;
            }
        }
    }

    /// Takes back the buffer of a piece handed out by [`Picker::received`],
    /// once it is hashed and written, to assemble another piece in.
    pub fn recycle(&mut self, buffer: Vec<u8>) {
        self.buffers.give(buffer);
    }

    /// Records the hash check of a piece handed out by [`Picker::received`].
    pub fn verified(&mut self, index: u32, ok: bool) {
        let i = index as usize;
        if self.states.get(i) != Some(&PieceState::Verifying) {
            return;
        }
        if ok {
            self.states[i] = PieceState::Have;
            self.have.set(i);
        } else {
            self.states[i] = PieceState::Missing;
            self.suspect[i] = true;
            self.missing += 1;
        }
    }
}

/// The item with the least key, uniformly random among equals, in one pass
/// (reservoir sampling).
pub fn least_at_random<K: Ord, R: Rng>(
    items: impl Iterator<Item = (K, usize)>,
    rng: &mut R,
) -> Option<usize> {
    let mut best: Option<(K, usize)> = None;
    let mut ties = 0u32;
    for (key, item) in items {
        match &best {
            Some((least, _)) if key > *least => {}
            Some((least, _)) if key == *least => {
                ties += 1;
                if rng.random_range(0..ties) == 0 {
                    best = Some((key, item));
                }
            }
            _ => {
                best = Some((key, item));
                ties = 1;
            }
        }
    }
    best.map(|(_, item)| item)
}

#[cfg(test)]
mod tests;
