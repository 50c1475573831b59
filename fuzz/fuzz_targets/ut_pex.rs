//! `extension::pex::PexMessage::decode` (BEP 11) on arbitrary bytes.
//!
//! Holds: no list longer than `MAX_RECEIVED_PER_LIST` is accepted, no peer
//! with port 0 is kept, and the first `MAX_SENT_PER_LIST` peers of each
//! family re-encode to a message that decodes to the same peers and flags.
#![no_main]

use common::extension::pex::{PexMessage, MAX_RECEIVED_PER_LIST, MAX_SENT_PER_LIST};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = PexMessage::decode(data) else {
        return;
    };
    assert!(message.added.len() <= 2 * MAX_RECEIVED_PER_LIST);
    assert!(message.dropped.len() <= 2 * MAX_RECEIVED_PER_LIST);
    assert!(message.added.iter().all(|(a, _)| a.port() != 0));
    assert!(message.dropped.iter().all(|a| a.port() != 0));
    let again = PexMessage::decode(&message.encode()).expect("our own encoding decodes");
    let first = |v4: bool| -> Vec<_> {
        message
            .added
            .iter()
            .filter(|(a, _)| a.is_ipv4() == v4)
            .take(MAX_SENT_PER_LIST)
            .copied()
            .collect()
    };
    let expected: Vec<_> = [first(true), first(false)].concat();
    assert_eq!(again.added, expected);
});
