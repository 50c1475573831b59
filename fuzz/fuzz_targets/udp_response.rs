//! `tracker_proto::udp::Response::parse` (BEP 15) on arbitrary bytes, as the
//! peer's UDP tracker client reads every reply. The first byte chooses the
//! family (odd: IPv6, 18-byte peers), the rest is the packet.
//!
//! Holds: announce peers are all of the chosen family, an error message is
//! bounded, and every reply but an error (whose text is read lossily)
//! re-encodes to a packet that parses to the same reply.
#![no_main]

use common::tracker_proto::udp::{Response, MAX_ERROR_LEN, MAX_SCRAPE_HASHES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, packet)) = data.split_first() else {
        return;
    };
    let v6 = first % 2 == 1;
    let Ok(reply) = Response::parse(packet, v6) else {
        return;
    };
    match &reply {
        Response::Announce { peers, .. } => assert!(peers.iter().all(|p| p.is_ipv6() == v6)),
        // At most MAX_ERROR_LEN bytes read, each at worst a 3-byte U+FFFD.
        Response::Error { message, .. } => {
            assert!(message.len() <= 3 * MAX_ERROR_LEN);
            return;
        }
        Response::Scrape { stats, .. } if stats.len() > MAX_SCRAPE_HASHES => return,
        _ => {}
    }
    let mut again = Vec::new();
    reply.encode(&mut again);
    assert_eq!(Response::parse(&again, v6), Ok(reply));
});
