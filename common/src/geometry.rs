//! Piece and block arithmetic, in one place.
//!
//! A torrent's content is cut into pieces of `piece_length` bytes (the last
//! one shorter), and every piece into blocks of [`MAX_BLOCK_LEN`] (the last
//! one shorter): this module owns that arithmetic. The wire codec checks
//! messages against a [`Geometry`], the picker walks its blocks, storage turns
//! pieces into file offsets, and `.torrent` building hashes its pieces; none
//! of them multiplies or divides by a piece length on its own.

use crate::metainfo::Info;

/// The block size everyone uses, and the largest request served.
pub const MAX_BLOCK_LEN: u32 = 16 * 1024;

/// A block's address: piece, offset in the piece, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    pub index: u32,
    pub begin: u32,
    pub length: u32,
}

/// Number of pieces of `piece_length` (not 0) needed for `total_length` bytes.
pub fn piece_count_for(total_length: u64, piece_length: u64) -> u64 {
    total_length.div_ceil(piece_length)
}

/// A torrent's sizes: how long each piece is, and each of its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub piece_length: u64,
    pub total_length: u64,
    pub piece_count: u32,
}

impl Geometry {
    pub fn of(info: &Info) -> Self {
        Geometry {
            piece_length: info.piece_length,
            total_length: info.total_length,
            piece_count: info.piece_count() as u32,
        }
    }

    /// The geometry of `total_length` bytes in pieces of `piece_length`;
    /// `None` for a zero piece length or more than `u32::MAX` pieces.
    pub fn new(piece_length: u64, total_length: u64) -> Option<Self> {
        if piece_length == 0 {
            return None;
        }
        let piece_count = u32::try_from(piece_count_for(total_length, piece_length)).ok()?;
        Some(Geometry {
            piece_length,
            total_length,
            piece_count,
        })
    }

    /// Length of piece `index`, `None` if there is no such piece.
    pub fn piece_size(&self, index: u32) -> Option<u64> {
        let start = self.piece_offset(index)?;
        Some(
            self.total_length
                .saturating_sub(start)
                .min(self.piece_length),
        )
    }

    /// Where piece `index` starts in the torrent's content, `None` if there
    /// is no such piece.
    pub fn piece_offset(&self, index: u32) -> Option<u64> {
        (index < self.piece_count).then(|| u64::from(index) * self.piece_length)
    }

    /// Bytes of a bitfield for this many pieces.
    pub fn bitfield_len(&self) -> usize {
        (self.piece_count as usize).div_ceil(8)
    }

    /// Number of blocks in piece `index` (0 if there is no such piece).
    pub fn block_count(&self, index: u32) -> usize {
        self.piece_size(index)
            .unwrap_or(0)
            .div_ceil(u64::from(MAX_BLOCK_LEN)) as usize
    }

    /// Block number `block` of piece `index`, `None` past the piece's end.
    pub fn block(&self, index: u32, block: usize) -> Option<BlockRef> {
        let size = self.piece_size(index)?;
        let begin = (block as u64).checked_mul(u64::from(MAX_BLOCK_LEN))?;
        (begin < size).then(|| BlockRef {
            index,
            begin: begin as u32,
            length: (size - begin).min(u64::from(MAX_BLOCK_LEN)) as u32,
        })
    }

    /// Whether a block at `begin` of `length` bytes lies inside piece `index`.
    pub fn block_fits(&self, index: u32, begin: u32, length: u32) -> bool {
        self.piece_size(index).is_some_and(|size| {
            length > 0 && length <= MAX_BLOCK_LEN && u64::from(begin) + u64::from(length) <= size
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 40 KiB + 1 byte in 32 KiB pieces: a full piece, then a piece of
    // 8 KiB + 1 whose last block is one byte.
    const G: Geometry = Geometry {
        piece_length: 32 * 1024,
        total_length: 40 * 1024 + 1,
        piece_count: 2,
    };

    #[test]
    fn pieces_have_their_sizes_and_offsets() {
        assert_eq!(G.piece_size(0), Some(32 * 1024));
        assert_eq!(G.piece_size(1), Some(8 * 1024 + 1));
        assert_eq!(G.piece_size(2), None);
        assert_eq!(G.piece_offset(1), Some(32 * 1024));
        assert_eq!(G.piece_offset(2), None);
        assert_eq!(G.bitfield_len(), 1);
    }

    #[test]
    fn blocks_cover_each_piece_exactly() {
        assert_eq!(G.block_count(0), 2);
        assert_eq!(G.block_count(1), 1);
        assert_eq!(G.block_count(9), 0);
        for index in 0..G.piece_count {
            let blocks: Vec<_> = (0..G.block_count(index))
                .map(|n| G.block(index, n).unwrap())
                .collect();
            let covered: u64 = blocks.iter().map(|b| u64::from(b.length)).sum();
            assert_eq!(Some(covered), G.piece_size(index));
            assert!(blocks
                .iter()
                .all(|b| G.block_fits(b.index, b.begin, b.length)));
            assert_eq!(G.block(index, blocks.len()), None, "nothing past the end");
        }
        assert_eq!(
            G.block(1, 0),
            Some(BlockRef {
                index: 1,
                begin: 0,
                length: 8 * 1024 + 1
            })
        );
    }

    #[test]
    fn new_counts_pieces_and_refuses_nonsense() {
        assert_eq!(Geometry::new(32 * 1024, 40 * 1024 + 1), Some(G));
        assert_eq!(Geometry::new(0, 10), None);
        assert_eq!(Geometry::new(1, u64::from(u32::MAX) + 1), None);
        assert_eq!(Geometry::new(16, 0).map(|g| g.piece_count), Some(0));
    }

    #[test]
    fn blocks_outside_a_piece_do_not_fit() {
        assert!(!G.block_fits(1, 8 * 1024, 2), "past the short piece's end");
        assert!(!G.block_fits(0, 0, 0), "empty");
        assert!(!G.block_fits(0, 0, MAX_BLOCK_LEN + 1), "over 16 KiB");
        assert!(!G.block_fits(2, 0, 1), "no such piece");
        assert!(!G.block_fits(0, u32::MAX, 1), "no overflow");
    }
}
