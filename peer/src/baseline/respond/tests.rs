//! Replies computed directly from request heads: no sockets.

use std::{io::Read, os::unix::fs::FileExt};

use super::*;
use crate::rate::RateLimiter;

const DATA: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

struct Fixture {
    _root: tempfile::TempDir,
    shared: Shared,
}

fn fixture(list: bool) -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let path = std::fs::canonicalize(root.path()).unwrap();
    std::fs::write(path.join("data.bin"), DATA).unwrap();
    std::fs::create_dir(path.join("sub")).unwrap();
    std::fs::write(path.join("sub/a&b.txt"), b"x").unwrap();
    Fixture {
        _root: root,
        shared: Shared {
            root: path,
            list,
            limiter: RateLimiter::unlimited(),
            chunk: 7,
            stats: Stats::default(),
        },
    }
}

fn ask(
    fixture: &Fixture,
    method: &str,
    target: &str,
    range: Option<&str>,
    if_range: Option<&str>,
) -> Reply {
    let head = RequestHead {
        method: method.into(),
        target: target.into(),
        range: range.map(Into::into),
        if_range: if_range.map(|v| v.as_bytes().to_vec()),
        keep_alive: true,
    };
    reply(&fixture.shared, &head)
}

/// The bytes a reply's body would carry.
fn body(reply: &Reply) -> Vec<u8> {
    match &reply.body {
        Body::None => Vec::new(),
        Body::Page(page) => page.clone(),
        Body::File { file, start, .. } => {
            let mut bytes = vec![0; reply.length as usize];
            file.read_exact_at(&mut bytes, *start).unwrap();
            bytes
        }
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn a_whole_file_comes_with_length_etag_and_accept_ranges() {
    let fixture = fixture(false);
    let reply = ask(&fixture, "GET", "/data.bin", None, None);
    assert_eq!((reply.status, reply.length), (200, DATA.len() as u64));
    assert_eq!(body(&reply), DATA);
    assert_eq!(header(&reply, "accept-ranges"), Some("bytes"));
    assert!(header(&reply, "etag").unwrap().starts_with('"'));
    assert!(matches!(&reply.body, Body::File { name, .. } if name == "data.bin"));
}

#[test]
fn head_has_the_length_and_no_body() {
    let fixture = fixture(false);
    let reply = ask(&fixture, "HEAD", "/data.bin", None, None);
    assert_eq!((reply.status, reply.length), (200, DATA.len() as u64));
    assert!(matches!(reply.body, Body::None));
    let missing = ask(&fixture, "HEAD", "/missing", None, None);
    assert_eq!(missing.status, 404);
    assert!(matches!(missing.body, Body::None));
}

#[test]
fn ranges_give_206_with_content_range_or_416() {
    let fixture = fixture(false);
    let reply = ask(&fixture, "GET", "/data.bin", Some("bytes=10-19"), None);
    assert_eq!((reply.status, reply.length), (206, 10));
    assert_eq!(body(&reply), &DATA[10..20]);
    assert_eq!(header(&reply, "content-range"), Some("bytes 10-19/36"));

    let reply = ask(&fixture, "GET", "/data.bin", Some("bytes=-5"), None);
    assert_eq!(body(&reply), &DATA[31..]);

    let reply = ask(&fixture, "GET", "/data.bin", Some("bytes=36-"), None);
    assert_eq!((reply.status, reply.length), (416, 0));
    assert_eq!(header(&reply, "content-range"), Some("bytes */36"));
    assert!(matches!(reply.body, Body::None));
}

#[test]
fn if_range_keeps_the_range_only_for_the_same_etag() {
    let fixture = fixture(false);
    let whole = ask(&fixture, "HEAD", "/data.bin", None, None);
    let etag = header(&whole, "etag").unwrap().to_owned();
    let reply = ask(&fixture, "GET", "/data.bin", Some("bytes=30-"), Some(&etag));
    assert_eq!(reply.status, 206);
    assert_eq!(body(&reply), &DATA[30..]);
    let reply = ask(
        &fixture,
        "GET",
        "/data.bin",
        Some("bytes=30-"),
        Some("\"other\""),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(body(&reply), DATA);
}

#[test]
fn refusals_are_status_codes_with_a_line_of_text() {
    let fixture = fixture(false);
    for (method, target, status) in [
        ("GET", "/missing", 404),
        ("GET", "/..%2fdata.bin", 403),
        ("GET", "/sub/%2e%2e/data.bin", 403),
        ("GET", "http://h/../data.bin", 403),
        ("GET", "*", 403),
        ("GET", "/", 403),
        ("GET", "/sub/", 403),
        ("POST", "/data.bin", 405),
        ("DELETE", "/data.bin", 405),
    ] {
        let reply = ask(&fixture, method, target, None, None);
        assert_eq!(reply.status, status, "{method} {target}");
        let text = String::from_utf8(body(&reply)).unwrap();
        assert!(text.starts_with(&status.to_string()), "{text}");
    }
    let post = ask(&fixture, "POST", "/data.bin", None, None);
    assert_eq!(header(&post, "allow"), Some("GET, HEAD"));
    let absolute = ask(&fixture, "GET", "http://h/data.bin?x=1", None, None);
    assert_eq!(absolute.status, 200);
}

#[test]
fn listing_is_served_only_when_asked_for() {
    let fixture = fixture(true);
    let reply = ask(&fixture, "GET", "/sub/", None, None);
    assert_eq!(reply.status, 200);
    assert!(header(&reply, "content-type")
        .unwrap()
        .starts_with("text/html"));
    let page = String::from_utf8(body(&reply)).unwrap();
    assert!(
        page.contains("<a href=\"/sub/a%26b.txt\">a&amp;b.txt</a>"),
        "{page}"
    );
    assert_eq!(ask(&fixture, "GET", "/", None, None).status, 200);
}

#[test]
fn a_file_body_is_the_open_file_itself() {
    let fixture = fixture(false);
    let reply = ask(&fixture, "GET", "/data.bin", None, None);
    let Body::File { mut file, .. } = reply.body else {
        panic!("a file body");
    };
    // Putting another file in its place afterwards does not change what is sent.
    let root = &fixture.shared.root;
    std::fs::write(root.join("data.new"), b"new").unwrap();
    std::fs::rename(root.join("data.new"), root.join("data.bin")).unwrap();
    let mut sent = Vec::new();
    file.read_to_end(&mut sent).unwrap();
    assert_eq!(sent, DATA);
}
