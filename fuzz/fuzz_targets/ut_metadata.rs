//! `extension::metadata::MetadataMessage::decode` (BEP 9) on arbitrary
//! bytes, and `MetadataGeometry` on the sizes it states.
//!
//! Holds: a decoded message re-encodes to bytes that decode to the same
//! message; a data message's piece is the bytes after the dictionary; and
//! for any stated `total_size` the geometry either refuses it (0, or over
//! `MAX_METADATA_SIZE`) or splits it into pieces that add up to it exactly.
#![no_main]

use common::extension::metadata::{
    MetadataGeometry, MetadataMessage, MAX_METADATA_SIZE, PIECE_LEN,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = MetadataMessage::decode(data) else {
        return;
    };
    let encoded = message.encode();
    assert_eq!(MetadataMessage::decode(&encoded).as_ref(), Ok(&message));
    if let MetadataMessage::Data {
        total_size,
        data: piece,
        ..
    } = &message
    {
        assert!(data.ends_with(piece));
        match MetadataGeometry::new(*total_size) {
            None => assert!(*total_size == 0 || *total_size > MAX_METADATA_SIZE),
            Some(g) => {
                let count = g.piece_count();
                assert!(count >= 1);
                let last = g.piece_len(count - 1).unwrap();
                assert!(last >= 1 && last <= PIECE_LEN);
                assert_eq!(
                    (count as u64 - 1) * PIECE_LEN as u64 + last as u64,
                    *total_size
                );
                assert_eq!(g.piece_len(count), None);
            }
        }
    }
});
