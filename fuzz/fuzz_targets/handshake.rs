//! `wire::Handshake::decode` and `check_prefix` on arbitrary bytes.
//!
//! Holds: `check_prefix` accepts a prefix of any length exactly when it
//! agrees with `\x13BitTorrent protocol` as far as both go; `decode` accepts
//! exactly the 68-byte blocks whose first 20 bytes pass `check_prefix`, and
//! what it decodes encodes back to the same 68 bytes.
#![no_main]

use common::wire::{Handshake, HANDSHAKE_LEN, PROTOCOL};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let expected: Vec<u8> = [&[19u8][..], PROTOCOL].concat();
    for n in 0..=data.len().min(HANDSHAKE_LEN) {
        let prefix = &data[..n];
        let agrees = prefix.iter().zip(&expected).all(|(a, b)| a == b);
        assert_eq!(
            Handshake::check_prefix(prefix).is_ok(),
            agrees,
            "{prefix:?}"
        );
    }

    // The input as it stands, and with the protocol prefix forced, so that
    // the fields after the prefix are exercised on every run.
    if let Some(block) = data.get(..HANDSHAKE_LEN) {
        let block: [u8; HANDSHAKE_LEN] = block.try_into().unwrap();
        round_trip(&block);
        let mut forced = block;
        forced[..20].copy_from_slice(&expected);
        round_trip(&forced);
    }
});

fn round_trip(block: &[u8; HANDSHAKE_LEN]) {
    match Handshake::decode(block) {
        Ok(handshake) => {
            assert!(Handshake::check_prefix(&block[..20]).is_ok());
            assert_eq!(&handshake.encode(), block);
            assert_eq!(&handshake.reserved, &block[20..28]);
            assert_eq!(&handshake.info_hash.0, &block[28..48]);
            assert_eq!(&handshake.peer_id.0, &block[48..68]);
        }
        Err(_) => assert!(Handshake::check_prefix(&block[..20]).is_err()),
    }
}
