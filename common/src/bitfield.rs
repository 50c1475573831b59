//! A fixed-length bit vector in the wire layout of BEP 3: bit 7 of byte 0 is
//! piece 0. Spare bits at the end are always clear.

/// Which pieces a peer (or we) have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: usize,
    ones: usize,
}

impl Bitfield {
    pub fn new(len: usize) -> Self {
        Bitfield {
            bytes: vec![0; len.div_ceil(8)],
            len,
            ones: 0,
        }
    }

    pub fn full(len: usize) -> Self {
        let mut field = Bitfield::new(len);
        for index in 0..len {
            field.set(index);
        }
        field
    }

    /// From wire bytes: exactly `ceil(len / 8)` bytes with the spare bits clear.
    pub fn from_bytes(bytes: &[u8], len: usize) -> Option<Self> {
        if bytes.len() != len.div_ceil(8) {
            return None;
        }
        if !len.is_multiple_of(8)
            && bytes
                .last()
                .is_some_and(|last| last & (0xff >> (len % 8)) != 0)
        {
            return None;
        }
        let ones = bytes.iter().map(|b| b.count_ones() as usize).sum();
        Some(Bitfield {
            bytes: bytes.to_vec(),
            len,
            ones,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bits set.
    pub fn count(&self) -> usize {
        self.ones
    }

    pub fn is_complete(&self) -> bool {
        self.ones == self.len
    }

    /// False for an index out of range.
    pub fn get(&self, index: usize) -> bool {
        index < self.len && self.bytes[index / 8] & (0x80 >> (index % 8)) != 0
    }

    /// Sets a bit; returns whether it was newly set. Out of range: no change.
    pub fn set(&mut self, index: usize) -> bool {
        if index >= self.len || self.get(index) {
            return false;
        }
        self.bytes[index / 8] |= 0x80 >> (index % 8);
        self.ones += 1;
        true
    }

    /// Indexes of the set bits.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_msb_first_and_spare_bits_must_be_clear() {
        let mut field = Bitfield::new(10);
        assert!(field.set(0) && field.set(9) && !field.set(9) && !field.set(10));
        assert_eq!(field.as_bytes(), [0x80, 0x40]);
        assert_eq!(field.count(), 2);
        assert_eq!(Bitfield::from_bytes(&[0x80, 0x40], 10), Some(field));
        assert_eq!(
            Bitfield::from_bytes(&[0x80, 0x20], 10),
            None,
            "spare bit set"
        );
        assert_eq!(Bitfield::from_bytes(&[0x80], 10), None, "too short");
        assert_eq!(Bitfield::from_bytes(&[0, 0, 0], 10), None, "too long");
        assert!(Bitfield::full(10).is_complete());
        assert_eq!(Bitfield::full(10).ones().count(), 10);
    }
}
