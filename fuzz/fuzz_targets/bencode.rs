//! `bencode::check`, `bencode::decode` and `bencode::dict_value_spans` on
//! arbitrary bytes.
//!
//! Holds: `check` and `decode::<Value>` agree (whatever passes the check
//! decodes: the check is the only gate in front of `serde_bencode`); a value
//! that decodes re-encodes to bytes that check and decode to the same value
//! (compared by re-encoding, since encoding sorts keys); the spans of a
//! checked dictionary are each one checked value and tile the input.
#![no_main]

use common::bencode::{self, MAX_DEPTH};
use libfuzzer_sys::fuzz_target;
use serde_bencode::value::Value;

fuzz_target!(|data: &[u8]| {
    let checked = bencode::check(data);
    let decoded = bencode::decode::<Value>(data);
    match (&checked, &decoded) {
        (Ok(()), Ok(value)) => round_trip(value),
        (Err(e), Err(d)) => assert_eq!(e, d, "decode reports the check's error"),
        _ => panic!("check {checked:?} but decode {decoded:?}"),
    }
    if checked.is_ok() && data.first() == Some(&b'd') {
        spans_tile_the_dictionary(data);
    }
});

fn round_trip(value: &Value) {
    let bytes = bencode::encode(value).expect("a decoded value encodes");
    bencode::check(&bytes).expect("an encoding passes the check");
    assert!(depth(value) <= MAX_DEPTH);
    let again: Value = bencode::decode(&bytes).expect("an encoding decodes");
    assert_eq!(
        bencode::encode(&again).unwrap(),
        bytes,
        "re-encoding is stable"
    );
}

fn depth(value: &Value) -> usize {
    // Values are at most MAX_DEPTH deep here, so this recursion is bounded.
    match value {
        Value::Int(_) | Value::Bytes(_) => 0,
        Value::List(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Dict(map) => 1 + map.values().map(depth).max().unwrap_or(0),
    }
}

fn spans_tile_the_dictionary(data: &[u8]) {
    let spans = bencode::dict_value_spans(data).expect("a checked dictionary has spans");
    let mut pos = 1;
    for (key, span) in spans {
        let key_prefix = format!("{}:", key.len());
        assert_eq!(&data[pos..pos + key_prefix.len()], key_prefix.as_bytes());
        pos += key_prefix.len();
        assert_eq!(&data[pos..pos + key.len()], key);
        pos += key.len();
        assert_eq!(span.start, pos, "a value starts right after its key");
        bencode::check(&data[span.clone()]).expect("each span is one value");
        pos = span.end;
    }
    assert_eq!(pos + 1, data.len(), "the spans end at the closing `e`");
}
