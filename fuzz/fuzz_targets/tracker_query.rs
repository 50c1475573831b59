//! The tracker's query parsers, `AnnounceRequest::parse` and `parse_scrape`,
//! on the input as a string (when it is UTF-8) and on its lossy UTF-8 form
//! (as a server that decodes the request line lossily would pass it).
//!
//! Holds: a query over `MAX_QUERY_BYTES` is refused as such; a parsed
//! announce has a port and a key of at most 128 bytes, and its `to_query()`
//! is within the limit and parses back to an equal request; a parsed scrape holds at most `MAX_SCRAPE_HASHES` hashes, and the
//! query that names them parses back to the same list whenever it fits in
//! `MAX_QUERY_BYTES` (escaped hashes are longer than unescaped ones).
#![no_main]

use common::tracker_proto::{
    escape, parse_scrape,
    query::{MAX_QUERY_BYTES, MAX_SCRAPE_HASHES},
    AnnounceRequest, QueryError,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        check(text);
    }
    let lossy = String::from_utf8_lossy(data);
    if std::str::from_utf8(data).is_err() {
        check(&lossy);
    }
});

fn check(query: &str) {
    let announce = AnnounceRequest::parse(query);
    let scrape = parse_scrape(query);
    if query.len() > MAX_QUERY_BYTES {
        assert_eq!(announce, Err(QueryError::TooLong));
        assert_eq!(scrape, Err(QueryError::TooLong));
        return;
    }
    if let Ok(request) = announce {
        assert_ne!(request.port, 0);
        assert!(
            request.key.as_ref().is_none_or(|k| k.len() <= 128),
            "key kept whole"
        );
        let written = request.to_query();
        assert!(written.len() <= MAX_QUERY_BYTES, "{written}");
        assert_eq!(
            AnnounceRequest::parse(&written),
            Ok(request),
            "query {query:?} rewritten as {written:?}"
        );
    }
    if let Ok(hashes) = scrape {
        assert!(hashes.len() <= MAX_SCRAPE_HASHES);
        let written = hashes
            .iter()
            .map(|h| format!("info_hash={}", escape(&h.0)))
            .collect::<Vec<_>>()
            .join("&");
        if written.len() <= MAX_QUERY_BYTES {
            assert_eq!(parse_scrape(&written), Ok(hashes));
        } else {
            // A hash escaped byte for byte takes 71 bytes of query (with its
            // `&`), so a query holds at most 115 of them: more than that, all
            // sent unescaped, read fine but cannot be written back in one.
            assert!(hashes.len() > MAX_QUERY_BYTES / 71, "{written}");
        }
    }
}
