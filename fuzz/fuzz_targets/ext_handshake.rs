//! `extension::handshake::ExtHandshake::decode` (BEP 10) on arbitrary bytes.
//!
//! Holds: what decodes was a well-formed bencoded dictionary; the fields kept
//! are within their limits (at most `MAX_NAMED_EXTENSIONS` names, none empty
//! or longer than `MAX_NAME_LEN`, a client name of at most `MAX_CLIENT_LEN`
//! bytes before lossy UTF-8 repair, no port 0); and the handshake re-encodes
//! to canonical bencode that decodes to the same value.
#![no_main]

use common::{
    bencode,
    extension::handshake::{ExtHandshake, MAX_CLIENT_LEN, MAX_NAMED_EXTENSIONS, MAX_NAME_LEN},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(handshake) = ExtHandshake::decode(data) else {
        return;
    };
    assert!(bencode::check(data).is_ok());
    assert!(handshake.extensions.len() <= MAX_NAMED_EXTENSIONS);
    for (name, _) in &handshake.extensions {
        assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN);
    }
    if let Some(client) = &handshake.client {
        // Lossy repair turns each bad byte into a 3-byte replacement character.
        assert!(client.len() <= 3 * MAX_CLIENT_LEN);
    }
    assert_ne!(handshake.listen_port, Some(0));
    let encoded = handshake.encode();
    assert!(bencode::check(&encoded).is_ok());
    let mut again = ExtHandshake::decode(&encoded).expect("our own encoding decodes");
    // Names keep their first id; the encoding is sorted.
    let mut sorted = handshake.extensions.clone();
    sorted.sort();
    again.extensions.sort();
    assert_eq!(again.extensions, sorted);
    assert_eq!(again.metadata_size, handshake.metadata_size);
    assert_eq!(again.listen_port, handshake.listen_port);
    assert_eq!(again.reqq, handshake.reqq);
    assert_eq!(again.your_ip, handshake.your_ip);
});
