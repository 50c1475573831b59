//! HTTP/1.1 framing for the server, without I/O: "is a whole request head
//! in this buffer? parse it", and the bytes of a response head.
//!
//! The syntax is checked by `httparse` (the parser hyper uses); this module
//! keeps what the server needs and refuses what it cannot handle safely. A
//! request that announces a body (`Content-Length` above 0, any
//! `Transfer-Encoding`) is answered and then the connection is closed, so a
//! body is never mistaken for the next request.

use std::fmt::Write;

/// The longest request head accepted; a longer one gets 431 and a close.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most header fields in one request.
const MAX_HEADERS: usize = 64;

/// What the server uses of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target exactly as sent (origin-form or absolute-form).
    pub target: String,
    /// `Range`, when sent exactly once.
    pub range: Option<String>,
    /// `If-Range`, as raw bytes.
    pub if_range: Option<Vec<u8>>,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
}

/// The outcome of looking at the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// A whole head, and how many bytes of the buffer it used.
    Complete(RequestHead, usize),
    /// Malformed: answer 400 and close.
    Invalid,
}

/// Parses the request head at the start of `buffer`.
pub fn parse(buffer: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let used = match request.parse(buffer) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Parsed::Invalid;
    };
    let mut ranges = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("range"));
    let range = match (ranges.next(), ranges.next()) {
        (Some(only), None) => std::str::from_utf8(only.value).ok().map(str::to_owned),
        _ => None,
    };
    let value = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let has_body = value("transfer-encoding").is_some()
        || value("content-length").is_some_and(|v| v.iter().any(|b| *b != b'0'));
    let connection = value("connection").map(|v| String::from_utf8_lossy(v).to_ascii_lowercase());
    let wants_close = connection
        .as_deref()
        .is_some_and(|c| c.split(',').any(|t| t.trim() == "close"));
    let wants_keep_alive = connection
        .as_deref()
        .is_some_and(|c| c.split(',').any(|t| t.trim() == "keep-alive"));
    // HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 only when asked.
    let keep_alive = !has_body && !wants_close && (minor == 1 || wants_keep_alive);
    Parsed::Complete(
        RequestHead {
            method: method.to_owned(),
            target: target.to_owned(),
            range,
            if_range: value("if-range").map(<[u8]>::to_vec),
            keep_alive,
        },
        used,
    )
}

/// The path of a request target, without the query: `/a/b?x` gives `/a/b`,
/// and the absolute form `http://host/a/b` gives `/a/b`. `None` for `*` and
/// other forms that name no path.
pub fn path_of(target: &str) -> Option<&str> {
    let without_query = target.split_once('?').map_or(target, |(path, _)| path);
    if without_query.starts_with('/') {
        return Some(without_query);
    }
    let lower = without_query
        .get(..8)
        .unwrap_or(without_query)
        .to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &without_query[7..]
    } else if lower.starts_with("https://") {
        &without_query[8..]
    } else {
        return None;
    };
    Some(rest.find('/').map_or("/", |slash| &rest[slash..]))
}

/// A response head: status line, `Date`, the given fields, `Content-Length`
/// and `Connection`.
pub fn response_head(
    status: u16,
    headers: &[(&str, String)],
    content_length: u64,
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = String::with_capacity(256);
    let _ = write!(head, "HTTP/1.1 {status} {}\r\n", reason(status));
    let _ = write!(
        head,
        "date: {}\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(head, "content-length: {content_length}\r\n");
    head.push_str(if keep_alive {
        "connection: keep-alive\r\n\r\n"
    } else {
        "connection: close\r\n\r\n"
    });
    head.into_bytes()
}

/// The reason phrases of the statuses this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(raw: &str) -> (RequestHead, usize) {
        match parse(raw.as_bytes()) {
            Parsed::Complete(head, used) => (head, used),
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn a_request_head_is_parsed_and_the_rest_left_alone() {
        let raw = "GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nRange: bytes=0-9\r\nIf-Range: \"t\"\r\n\r\nGET /next";
        let (head, used) = complete(raw);
        assert_eq!(&raw[used..], "GET /next");
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/a%20b?x=1");
        assert_eq!(head.range.as_deref(), Some("bytes=0-9"));
        assert_eq!(head.if_range.as_deref(), Some(&b"\"t\""[..]));
        assert!(head.keep_alive);
    }

    #[test]
    fn partial_and_malformed_heads_are_told_apart() {
        assert_eq!(parse(b""), Parsed::Partial);
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: h\r\n"), Parsed::Partial);
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHo st: h\r\n\r\n"),
            Parsed::Invalid
        );
        assert_eq!(parse(b"GET /\x01 HTTP/1.1\r\n\r\n"), Parsed::Invalid);
        assert_eq!(parse(b"\x16\x03\x01\x02\x00\x01\x00"), Parsed::Invalid);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Parsed::Invalid
        );
    }

    #[test]
    fn keep_alive_follows_the_version_connection_and_body() {
        let keep = |raw: &str| complete(raw).0.keep_alive;
        assert!(keep("GET / HTTP/1.1\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.0\r\n\r\n"));
        assert!(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        assert!(!keep("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"));
        assert!(keep("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
        assert!(!keep(
            "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
    }

    #[test]
    fn a_repeated_range_is_ignored() {
        let (head, _) = complete("GET / HTTP/1.1\r\nRange: bytes=0-1\r\nRange: bytes=5-6\r\n\r\n");
        assert_eq!(head.range, None);
    }

    #[test]
    fn paths_come_from_origin_and_absolute_forms() {
        assert_eq!(path_of("/a/b?q=1"), Some("/a/b"));
        assert_eq!(path_of("/"), Some("/"));
        assert_eq!(path_of("http://h:1/x/y?z"), Some("/x/y"));
        assert_eq!(path_of("HTTP://h"), Some("/"));
        assert_eq!(path_of("https://h/../x"), Some("/../x"));
        assert_eq!(path_of("*"), None);
        assert_eq!(path_of("h/x"), None);
        assert_eq!(path_of("ftp://h/x"), None);
    }

    #[test]
    fn a_response_head_ends_with_length_and_connection() {
        let head =
            String::from_utf8(response_head(206, &[("etag", "\"t\"".into())], 10, false)).unwrap();
        assert!(
            head.starts_with("HTTP/1.1 206 Partial Content\r\ndate: "),
            "{head}"
        );
        assert!(
            head.ends_with("etag: \"t\"\r\ncontent-length: 10\r\nconnection: close\r\n\r\n"),
            "{head}"
        );
    }
}
