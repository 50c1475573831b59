//! The announce fast path, with no I/O: from the bytes of a connection's
//! first read to the whole HTTP response, when those bytes are exactly one
//! complete `GET /announce` request whose client asks to close afterwards.
//!
//! That is what a BitTorrent client sends once per interval, and answering it
//! straight from the accept loop ([`crate::server`]) skips what a connection
//! costs in hyper and axum: a task, a registration with the reactor, buffers,
//! a header map, the router. Anything else (another route, keep-alive, a
//! body, a head cut short or malformed, an unusual target) is left to hyper,
//! which serves it as before; so this module only has to be right about what
//! it accepts, and the reply is byte for byte what hyper and axum would send
//! (`tracker/tests/http.rs` checks both paths against each other).

use std::{cell::RefCell, net::SocketAddr, time::SystemTime};

use common::bencode::push_decimal;

use crate::{routes, AppState};

/// Most header lines the fast path reads; a request with more goes to hyper.
const MAX_HEADERS: usize = 32;

/// If `request` is one whole `GET /announce` that asks to close, answers it:
/// writes the full response to `out` (cleared first) and returns true.
/// Otherwise returns false, and `out` means nothing. `body` is scratch space,
/// passed in so that a caller can reuse it.
pub fn announce(
    state: &AppState,
    remote: SocketAddr,
    request: &[u8],
    body: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut headers);
    // Nothing may follow the head: no body, no pipelined request.
    match head.parse(request) {
        Ok(httparse::Status::Complete(len)) if len == request.len() => {}
        _ => return false,
    }
    if head.method != Some("GET") {
        return false;
    }
    let Some(query) = head.path.and_then(announce_query) else {
        return false;
    };
    let http10 = match head.version {
        Some(0) => true,
        Some(1) => false,
        _ => return false,
    };
    // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes
    // unless told to keep it. A kept connection is hyper's.
    let (mut close, mut keep_alive) = (false, false);
    for header in head.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                close |= token.trim_ascii().eq_ignore_ascii_case(b"close");
                keep_alive |= token.trim_ascii().eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if header.value.trim_ascii() != b"0" {
                return false;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
        {
            return false;
        }
    }
    if !(close || (http10 && !keep_alive)) {
        return false;
    }

    body.clear();
    let forwarded_for = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|h| h.value);
    routes::announce_reply(state, remote, forwarded_for, query, body);

    out.clear();
    out.extend_from_slice(if http10 {
        b"HTTP/1.0 200 OK\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\n"
    });
    out.extend_from_slice(b"content-type: text/plain\r\ncontent-length: ");
    push_decimal(out, body.len() as u64);
    if !http10 {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    out.extend_from_slice(b"\r\ndate: ");
    push_http_date(out);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    true
}

/// The query of an `/announce` request target, `""` when there is none;
/// `None` for another path, or for a target with a byte outside RFC 3986's
/// path and query characters (hyper refuses some of those, and a fragment
/// would need its rules: leaving them all to hyper keeps the answer the
/// same).
fn announce_query(target: &str) -> Option<&str> {
    let query = match target.strip_prefix("/announce")? {
        "" => "",
        rest => rest.strip_prefix('?')?,
    };
    query.bytes().all(is_query_byte).then_some(query)
}

/// RFC 3986's unreserved, sub-delims, ':', '@', '/', '?' and '%'.
fn is_query_byte(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'%'
        | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
        | b':' | b'@' | b'/' | b'?')
}

/// The `date` header's value (IMF-fixdate, 29 bytes), formatted once a
/// second per thread.
fn push_http_date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            *text = httpdate::fmt_http_date(now);
            *cached = second;
        }
        out.extend_from_slice(text.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    const QUERY: &str =
        "info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=1234&left=0";

    fn answer(request: &str) -> Option<String> {
        let state = AppState::new(Config::default());
        let (mut body, mut out) = (Vec::new(), Vec::new());
        let remote = "127.0.0.1:5000".parse().unwrap();
        announce(&state, remote, request.as_bytes(), &mut body, &mut out)
            .then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_closing_announce_is_answered_in_the_version_asked() {
        let reply = answer(&format!(
            "GET /announce?{QUERY} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ))
        .unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"));
        assert!(head.contains("\r\nconnection: close\r\ndate: "), "{head}");
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        assert!(body.starts_with("d8:completei1e10:incompletei0e"), "{body}");

        let reply = answer(&format!("GET /announce?{QUERY} HTTP/1.0\r\n\r\n")).unwrap();
        assert!(reply.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(!reply.contains("connection:"));
        let reply = answer("GET /announce HTTP/1.0\r\nconnection: Close\r\n\r\n").unwrap();
        assert!(
            reply.ends_with("d14:failure reason12:missing porte"),
            "{reply}"
        );
    }

    #[test]
    fn anything_else_is_left_to_hyper() {
        for request in [
            format!("GET /announce?{QUERY} HTTP/1.1\r\n\r\n"), // keep-alive
            format!("GET /announce?{QUERY} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            format!("GET /announce?{QUERY} HTTP/1.1\r\nConnection: close\r\n"), // cut short
            format!("GET /announce?{QUERY} HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n"), // pipelined
            "POST /announce HTTP/1.0\r\n\r\n".into(),
            "GET /announce/ HTTP/1.0\r\n\r\n".into(),
            "GET /announcement HTTP/1.0\r\n\r\n".into(),
            "GET /scrape HTTP/1.0\r\n\r\n".into(),
            "GET http://x/announce HTTP/1.0\r\n\r\n".into(),
            format!("GET /announce?{QUERY}#f HTTP/1.0\r\n\r\n"),
            format!("GET /announce?{QUERY}&x=\" HTTP/1.0\r\n\r\n"),
            "GET /announce HTTP/1.0\r\nContent-Length: 3\r\n\r\n".into(),
            "GET /announce HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            "GET /announce HTTP/1.0\r\nExpect: 100-continue\r\n\r\n".into(),
            format!(
                "GET /announce HTTP/1.0\r\n{}\r\n",
                "a: b\r\n".repeat(MAX_HEADERS + 1)
            ),
            "GET /announce HTTP/2.0\r\n\r\n".into(),
            "\r\n\r\n".into(),
            String::new(),
        ] {
            assert_eq!(answer(&request), None, "{request:?}");
        }
    }

    #[test]
    fn the_date_is_an_imf_fixdate() {
        let mut out = Vec::new();
        push_http_date(&mut out);
        push_http_date(&mut out);
        assert_eq!(out.len(), 58);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with(" GMT"), "{text}");
        httpdate::parse_http_date(&text[29..]).unwrap();
    }
}
