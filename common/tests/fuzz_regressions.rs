//! Inputs from the fuzz targets in `fuzz/`, kept in the normal test suite.
//!
//! The first tests are the bugs the fuzzers found (their inputs in
//! `fuzz_cases/`, as libFuzzer wrote them), each asserting the fixed
//! behaviour. The rest are the inputs that reach the deepest refusals of each
//! parser (nesting bombs, huge length prefixes, oversized frames and queries),
//! each asserting the specific error, so that a change to a limit is seen here.

use std::net::SocketAddr;

use common::tracker_proto::{
    response::decode_compact, AnnounceRequest, AnnounceResponse, PeerEntry, QueryError,
};

// ---- Bugs found by the fuzzers ----

/// tracker_response: a compact peer with port 0 was kept, while the same peer
/// in a dictionary reply was dropped, so one reply decoded to different peers
/// depending on its form. Port 0 cannot be connected to: both forms skip it.
#[test]
fn compact_peer_with_port_zero_is_skipped_like_a_dictionary_peer() {
    let reply = include_bytes!("fuzz_cases/response-compact-port-zero");
    let decoded = AnnounceResponse::decode(reply).unwrap();
    let only: SocketAddr = "10.0.0.1:6881".parse().unwrap();
    assert_eq!(
        decoded.peers,
        [PeerEntry {
            addr: only,
            peer_id: None
        }],
        "the [2001:db8::100]:0 entry of peers6 is skipped"
    );
    for compact in [true, false] {
        assert_eq!(
            AnnounceResponse::decode(&decoded.encode(compact, false)).unwrap(),
            decoded
        );
    }
    assert_eq!(decode_compact(&[10, 0, 0, 1, 0, 0], false), Ok(vec![]));
    assert_eq!(decode_compact(&[0; 18], true), Ok(vec![]));
    assert_eq!(
        decode_compact(&[10, 0, 0, 1, 0, 1], false).unwrap().len(),
        1
    );
}

/// tracker_query: `key` was limited to 128 bytes before its lossy UTF-8
/// conversion, which turns each invalid byte into a 3-byte U+FFFD; a request
/// could then hold a key its own `to_query` wrote too long to parse again.
/// The limit now applies to the text kept.
#[test]
fn a_key_that_grows_past_the_limit_when_made_utf8_is_refused() {
    let query = include_bytes!("fuzz_cases/query-lossy-key-grows");
    assert_eq!(
        AnnounceRequest::parse(&String::from_utf8_lossy(query)),
        Err(QueryError::ValueTooLong("key"))
    );

    let base = "info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1&left=0";
    let with_key = |key: &str| AnnounceRequest::parse(&format!("{base}&key={key}"));
    assert_eq!(
        with_key(&"%FF".repeat(43)),
        Err(QueryError::ValueTooLong("key")),
        "43 invalid bytes are 129 bytes of text"
    );
    let request = with_key(&"%FF".repeat(42)).expect("42 invalid bytes are 126 bytes of text");
    assert_eq!(request.key.as_deref().map(str::len), Some(126));
    assert_eq!(AnnounceRequest::parse(&request.to_query()), Ok(request));
    assert!(with_key(&"k".repeat(128)).is_ok());
    assert_eq!(
        with_key(&"k".repeat(129)),
        Err(QueryError::ValueTooLong("key"))
    );
}
