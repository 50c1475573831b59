//! The handler called directly with built requests: no sockets.

use std::sync::atomic::Ordering::Relaxed;

use http_body_util::BodyExt;
use hyper::{header, Method, Request, Response, StatusCode};

use super::*;
use crate::rate::RateLimiter;

const DATA: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

struct Fixture {
    _root: tempfile::TempDir,
    shared: Arc<Shared>,
}

fn fixture(list: bool) -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let path = std::fs::canonicalize(root.path()).unwrap();
    std::fs::write(path.join("data.bin"), DATA).unwrap();
    std::fs::create_dir(path.join("sub")).unwrap();
    std::fs::write(path.join("sub/a&b.txt"), b"x").unwrap();
    Fixture {
        _root: root,
        shared: Arc::new(Shared {
            root: path,
            list,
            limiter: RateLimiter::unlimited(),
            // Small chunks, so that bodies take several frames.
            chunk: 7,
            buffers: crate::baseline::pool::BufferPool::new(7, 4),
            stats: Stats::default(),
        }),
    }
}

async fn ask(
    fixture: &Fixture,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (Response<()>, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let client = "127.0.0.1:9".parse().unwrap();
    let response = respond(
        Arc::clone(&fixture.shared),
        client,
        request.body(()).unwrap(),
    )
    .await
    .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (Response::from_parts(parts, ()), bytes)
}

fn header_of(response: &Response<()>, name: header::HeaderName) -> &str {
    response.headers().get(name).unwrap().to_str().unwrap()
}

#[tokio::test]
async fn a_whole_file_comes_with_length_etag_and_accept_ranges() {
    let fixture = fixture(false);
    let (response, body) = ask(&fixture, Method::GET, "/data.bin", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, DATA);
    assert_eq!(
        header_of(&response, header::CONTENT_LENGTH),
        DATA.len().to_string()
    );
    assert_eq!(header_of(&response, header::ACCEPT_RANGES), "bytes");
    assert!(header_of(&response, header::ETAG).starts_with('"'));
    let stats = &fixture.shared.stats;
    assert_eq!(stats.bytes_sent.load(Relaxed), DATA.len() as u64);
    assert_eq!(stats.transfers.load(Relaxed), 1);
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let fixture = fixture(false);
    let (response, body) = ask(&fixture, Method::HEAD, "/data.bin", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(
        header_of(&response, header::CONTENT_LENGTH),
        DATA.len().to_string()
    );
    assert_eq!(fixture.shared.stats.transfers.load(Relaxed), 0);
}

#[tokio::test]
async fn ranges_give_206_with_content_range_or_416() {
    let fixture = fixture(false);
    let (response, body) = ask(
        &fixture,
        Method::GET,
        "/data.bin",
        &[("range", "bytes=10-19")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &DATA[10..20]);
    assert_eq!(
        header_of(&response, header::CONTENT_RANGE),
        "bytes 10-19/36"
    );
    assert_eq!(header_of(&response, header::CONTENT_LENGTH), "10");

    let (response, body) = ask(&fixture, Method::GET, "/data.bin", &[("range", "bytes=-5")]).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &DATA[31..]);

    let (response, body) = ask(
        &fixture,
        Method::GET,
        "/data.bin",
        &[("range", "bytes=36-")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header_of(&response, header::CONTENT_RANGE), "bytes */36");
    assert!(body.is_empty());
}

#[tokio::test]
async fn if_range_keeps_the_range_only_for_the_same_etag() {
    let fixture = fixture(false);
    let (whole, _) = ask(&fixture, Method::HEAD, "/data.bin", &[]).await;
    let etag = header_of(&whole, header::ETAG).to_owned();
    let range = ("range", "bytes=30-");
    let (response, body) = ask(
        &fixture,
        Method::GET,
        "/data.bin",
        &[range, ("if-range", &etag)],
    )
    .await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &DATA[30..]);
    let (response, body) = ask(
        &fixture,
        Method::GET,
        "/data.bin",
        &[range, ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body, DATA);
}

#[tokio::test]
async fn refusals_are_status_codes() {
    let fixture = fixture(false);
    for (method, path, status) in [
        (Method::GET, "/missing", StatusCode::NOT_FOUND),
        (Method::GET, "/..%2fdata.bin", StatusCode::FORBIDDEN),
        (Method::GET, "/sub/%2e%2e/data.bin", StatusCode::FORBIDDEN),
        (Method::GET, "/", StatusCode::FORBIDDEN),
        (Method::GET, "/sub/", StatusCode::FORBIDDEN),
        (Method::POST, "/data.bin", StatusCode::METHOD_NOT_ALLOWED),
        (Method::PUT, "/data.bin", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let (response, _) = ask(&fixture, method.clone(), path, &[]).await;
        assert_eq!(response.status(), status, "{method} {path}");
    }
    assert_eq!(fixture.shared.stats.bytes_sent.load(Relaxed), 0);
}

#[tokio::test]
async fn listing_is_served_only_when_asked_for() {
    let fixture = fixture(true);
    let (response, body) = ask(&fixture, Method::GET, "/sub/", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header_of(&response, header::CONTENT_TYPE).starts_with("text/html"));
    let page = String::from_utf8(body).unwrap();
    assert!(
        page.contains("<a href=\"/sub/a%26b.txt\">a&amp;b.txt</a>"),
        "{page}"
    );
    let (response, _) = ask(&fixture, Method::GET, "/", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_dropped_early_counts_as_aborted() {
    let fixture = fixture(false);
    let client = "127.0.0.1:9".parse().unwrap();
    let request = Request::get("/data.bin").body(()).unwrap();
    let response = respond(Arc::clone(&fixture.shared), client, request)
        .await
        .unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first.len(), 7);
    drop(body);
    let stats = &fixture.shared.stats;
    assert_eq!(stats.bytes_sent.load(Relaxed), 7);
    assert_eq!(stats.aborted.load(Relaxed), 1);
    assert_eq!(stats.transfers.load(Relaxed), 0);
}
