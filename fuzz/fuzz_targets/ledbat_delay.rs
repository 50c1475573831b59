//! `extension::delay::DelayMessage::decode` (`ledbat_delay`) on arbitrary
//! bytes.
//!
//! Holds: nothing longer than `MAX_DELAY_LEN` is accepted, and what decodes
//! re-encodes to a message that decodes the same and is no longer.
#![no_main]

use common::extension::delay::{DelayMessage, MAX_DELAY_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = DelayMessage::decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_DELAY_LEN);
    let encoded = message.encode();
    assert!(encoded.len() <= MAX_DELAY_LEN);
    assert_eq!(DelayMessage::decode(&encoded), Ok(message));
});
