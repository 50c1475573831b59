//! Piece buffers kept for reuse.
//!
//! A downloading peer assembles every piece in a buffer of the piece's size,
//! hands it to a blocking job that hashes and writes it, and then needs a
//! new one for the next piece. Freshly allocated, each buffer costs a
//! zero-fill and a page fault per 4 KiB page (and the allocator gives the
//! memory back to the kernel between pieces, so the faults repeat): a
//! measurable share of a fast download's CPU. [`PieceBuffers`] keeps the
//! buffers that come back, up to [`SPARE_BYTES`] in all, and hands them out
//! again without clearing them.
//!
//! Stale bytes never escape: a piece is complete only when every one of its
//! blocks has been written into its buffer, and the blocks cover the piece.

/// Spare buffers kept, in bytes (at least one buffer is always kept).
pub const SPARE_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct PieceBuffers {
    spare: Vec<Vec<u8>>,
}

impl PieceBuffers {
    /// A buffer of exactly `len` bytes: a spare one if there is any (its
    /// contents are whatever it last held), else a new zeroed one.
    pub fn take(&mut self, len: usize) -> Vec<u8> {
        match self.spare.pop() {
            Some(mut buffer) => {
                buffer.resize(len, 0);
                buffer
            }
            None => vec![0; len],
        }
    }

    /// Returns a buffer for reuse; dropped when the spares are full.
    pub fn give(&mut self, buffer: Vec<u8>) {
        let held: usize = self.spare.iter().map(Vec::capacity).sum();
        if self.spare.is_empty() || held + buffer.capacity() <= SPARE_BYTES {
            self.spare.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_at_the_asked_size() {
        let mut pool = PieceBuffers::default();
        let first = pool.take(100);
        assert_eq!(first, vec![0; 100]);
        let pointer = first.as_ptr();
        pool.give(first);
        let again = pool.take(60);
        assert_eq!((again.len(), again.as_ptr()), (60, pointer), "reused");
        pool.give(again);
        assert_eq!(pool.take(100).len(), 100);
    }

    #[test]
    fn spares_are_bounded_in_bytes_but_one_is_always_kept() {
        let mut pool = PieceBuffers::default();
        pool.give(vec![0; SPARE_BYTES * 2]);
        assert_eq!(pool.spare.len(), 1, "a single huge piece is still kept");
        pool.give(vec![0; 1]);
        assert_eq!(pool.spare.len(), 1, "over the bound: dropped");

        let mut pool = PieceBuffers::default();
        for _ in 0..SPARE_BYTES / (1 << 20) + 5 {
            pool.give(vec![0; 1 << 20]);
        }
        assert_eq!(pool.spare.len(), SPARE_BYTES / (1 << 20));
    }
}
