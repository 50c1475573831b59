//! The tracker client's reply parsers, `AnnounceResponse::decode` and
//! `response::decode_scrape`, on arbitrary bytes.
//!
//! Holds: a decoded announce reply, re-encoded compact and as a list of
//! dictionaries (with and without peer ids), decodes to the same counters,
//! warning and peers (compact: IPv4 then IPv6, without ids); a `failure
//! reason` survives `encode_failure`; a decoded scrape is sorted by hash with
//! no hash twice, and re-encoded decodes to the same list.
#![no_main]

use common::bencode;
use common::tracker_proto::{
    encode_failure,
    response::{decode_scrape, encode_scrape},
    AnnounceResponse, PeerEntry, ResponseError,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match AnnounceResponse::decode(data) {
        Ok(response) => announce_round_trips(&response),
        Err(ResponseError::Failure(reason)) => assert_eq!(
            AnnounceResponse::decode(&encode_failure(&reason)),
            Err(ResponseError::Failure(reason))
        ),
        Err(_) => {}
    }
    match decode_scrape(data) {
        Ok(files) => {
            assert!(files.windows(2).all(|w| w[0].0 < w[1].0), "sorted, unique");
            let mut copy = files.clone();
            let bytes = encode_scrape(&mut copy);
            bencode::check(&bytes).unwrap();
            assert_eq!(decode_scrape(&bytes), Ok(files));
        }
        Err(ResponseError::Failure(reason)) => assert_eq!(
            decode_scrape(&encode_failure(&reason)),
            Err(ResponseError::Failure(reason))
        ),
        Err(_) => {}
    }
});

fn announce_round_trips(response: &AnnounceResponse) {
    for (compact, no_peer_id) in [(true, false), (false, false), (false, true)] {
        let bytes = response.encode(compact, no_peer_id);
        bencode::check(&bytes).expect("our encoding is well-formed");
        let back = AnnounceResponse::decode(&bytes)
            .unwrap_or_else(|e| panic!("compact={compact}: {e}: {response:?}"));
        let expected_peers: Vec<PeerEntry> = if compact {
            let (v4, v6): (Vec<&PeerEntry>, Vec<&PeerEntry>) =
                response.peers.iter().partition(|p| p.addr.is_ipv4());
            v4.into_iter()
                .chain(v6)
                .map(|p| PeerEntry {
                    addr: p.addr,
                    peer_id: None,
                })
                .collect()
        } else {
            response
                .peers
                .iter()
                .map(|p| PeerEntry {
                    addr: p.addr,
                    peer_id: if no_peer_id { None } else { p.peer_id },
                })
                .collect()
        };
        assert_eq!(
            back,
            AnnounceResponse {
                peers: expected_peers,
                ..response.clone()
            },
            "compact={compact} no_peer_id={no_peer_id}"
        );
    }
}
