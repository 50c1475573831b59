//! `krpc::state::State::decode` (the DHT node's state file) on arbitrary
//! bytes.
//!
//! Holds: at most `MAX_SAVED_NODES` nodes, none with port 0, and whatever is
//! accepted re-encodes to a file that decodes to the same state.
#![no_main]

use common::krpc::state::{State, MAX_SAVED_NODES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(state) = State::decode(data) else {
        return;
    };
    assert!(state.nodes.len() <= MAX_SAVED_NODES);
    assert!(state.nodes.iter().all(|n| n.addr.port() != 0));
    let again = State::decode(&state.encode()).expect("our own encoding decodes");
    // Encoding writes IPv4 nodes first, then IPv6.
    let mut expected = state.nodes.clone();
    expected.sort_by_key(|n| n.addr.is_ipv6());
    assert_eq!(again.id, state.id);
    assert_eq!(again.nodes, expected);
});
