//! `tracker_proto::udp::Request::parse` (BEP 15, BEP 41) on arbitrary bytes,
//! as the UDP tracker reads every packet.
//!
//! Holds: a scrape names 1 to 74 hashes, an announce never has port 0 and
//! keeps at most `MAX_URL_DATA` bytes of URL data, and whatever parses
//! re-encodes to a packet that parses to the same request.
#![no_main]

use common::tracker_proto::udp::{Request, MAX_SCRAPE_HASHES, MAX_URL_DATA};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = Request::parse(data) else {
        return;
    };
    match &request {
        Request::Scrape { info_hashes, .. } => {
            assert!((1..=MAX_SCRAPE_HASHES).contains(&info_hashes.len()))
        }
        Request::Announce(a) => {
            assert_ne!(a.port, 0);
            assert!(a.url_data.len() <= MAX_URL_DATA);
        }
        Request::Connect { .. } => {}
    }
    let mut again = Vec::new();
    request.encode(&mut again);
    assert_eq!(Request::parse(&again), Ok(request));
});
