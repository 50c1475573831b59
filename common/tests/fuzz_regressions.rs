//! Inputs from the fuzz targets in `fuzz/`, kept in the normal test suite.
//!
//! The first tests are the bugs the fuzzers found (their inputs in
//! `fuzz_cases/`, as libFuzzer wrote them), each asserting the fixed
//! behaviour. The rest are the inputs that reach the deepest refusals of each
//! parser (nesting bombs, huge length prefixes, oversized frames and queries),
//! each asserting the specific error, so that a change to a limit is seen here.

use std::net::SocketAddr;

use common::tracker_proto::{response::decode_compact, AnnounceResponse, PeerEntry};

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
