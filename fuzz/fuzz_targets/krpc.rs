//! `krpc::Message::decode` (BEP 5) on arbitrary datagrams.
//!
//! Holds: nothing over `MAX_PACKET` bytes is accepted, no list over its
//! limit, no id-less query or reply, and whatever is accepted re-encodes to a
//! datagram that decodes to the same message.
#![no_main]

use common::krpc::{Body, Message, MAX_NODES, MAX_PACKET, MAX_VALUES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::decode(data) else {
        return;
    };
    assert!(data.len() <= MAX_PACKET);
    if let Body::Reply(reply) = &message.body {
        assert!(reply.nodes.len() <= MAX_NODES);
        assert!(reply.values.len() <= MAX_VALUES);
    }
    if !matches!(message.body, Body::Error { .. }) {
        assert!(message.id.is_some());
    }
    let again = Message::decode(&message.encode()).expect("our own encoding decodes");
    assert_eq!(again, message);
});
