//! One request, one response: the method check, path resolution
//! ([`super::resolve`]), the optional listing, the ETag and range logic, and
//! the file body streamed from disk through the server's rate limiter.
//!
//! A body is read in chunks of [`Shared::chunk`] bytes by positional reads on
//! the blocking pool, with one chunk read ahead; each chunk then waits for the
//! rate limiter and is handed to hyper, which writes it without copying. Its
//! [`Transfer`] counts the bytes and logs one line when the body is dropped,
//! complete or not.

use std::{
    convert::Infallible,
    fs::File,
    io,
    net::SocketAddr,
    os::unix::fs::{FileExt, MetadataExt},
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::Instant,
};

use bytes::Bytes;
use futures::{Future, StreamExt};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::{
    body::Frame,
    header::{self, HeaderValue},
    Method, Request, Response, StatusCode,
};
use tracing::info;

use super::{
    http_range::{self, RangeRequest},
    listing,
    pool::BufferPool,
    resolve::{self, Refusal},
};
use crate::rate::RateLimiter;

/// A response body: a file streamed from disk, or a small page.
pub type Body = BoxBody<Bytes, io::Error>;

/// Chunks read from disk ahead of the one being sent.
const READ_AHEAD: usize = 2;

/// What every connection of one server shares.
#[derive(Debug)]
pub struct Shared {
    /// The served directory, canonical.
    pub root: std::path::PathBuf,
    pub list: bool,
    /// One bucket for the whole server.
    pub limiter: RateLimiter,
    /// Bytes per read and per frame.
    pub chunk: u64,
    /// Buffers of `chunk` bytes.
    pub buffers: Arc<BufferPool>,
    pub stats: Stats,
}

/// Counters for the summary line printed at exit.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    /// Body bytes handed to connections.
    pub bytes_sent: AtomicU64,
    /// Bodies sent to the end.
    pub transfers: AtomicU64,
    /// Bodies dropped before the end (the client went away, or shutdown).
    pub aborted: AtomicU64,
}

/// What a request path leads to.
enum Target {
    File {
        file: File,
        length: u64,
        etag: String,
        name: String,
    },
    Listing(String),
}

/// Answers one request. Never fails: every problem is a status code.
pub async fn respond<B>(
    shared: Arc<Shared>,
    client: SocketAddr,
    request: Request<B>,
) -> Result<Response<Body>, Infallible> {
    shared.stats.requests.fetch_add(1, Relaxed);
    let head = request.method() == Method::HEAD;
    if request.method() != Method::GET && !head {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, false);
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    let raw_path = request.uri().path().to_owned();
    let located = {
        let shared = Arc::clone(&shared);
        tokio::task::spawn_blocking(move || locate(&shared, &raw_path)).await
    };
    let (file, length, etag, name) = match located {
        Ok(Ok(Target::File {
            file,
            length,
            etag,
            name,
        })) => (file, length, etag, name),
        Ok(Ok(Target::Listing(page))) => return Ok(page_response(page, head)),
        Ok(Err(Refusal::NotFound)) => return Ok(text(StatusCode::NOT_FOUND, head)),
        Ok(Err(Refusal::Forbidden)) => return Ok(text(StatusCode::FORBIDDEN, head)),
        Err(_) => return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, head)),
    };

    let headers = request.headers();
    // If-Range: the range holds only for the representation the client has.
    let validated = headers
        .get(header::IF_RANGE)
        .is_none_or(|value| value.as_bytes() == etag.as_bytes());
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) if validated => http_range::parse_range(value, length),
        _ => RangeRequest::Full,
    };
    let (status, start, count) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, length),
        RangeRequest::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => (StatusCode::RANGE_NOT_SATISFIABLE, 0, 0),
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, &etag)
        .header(header::CONTENT_LENGTH, count);
    builder = match range {
        RangeRequest::Partial { start, end } => builder.header(
            header::CONTENT_RANGE,
            http_range::content_range(start, end, length),
        ),
        RangeRequest::Unsatisfiable => {
            builder.header(header::CONTENT_RANGE, http_range::unsatisfied_range(length))
        }
        RangeRequest::Full => builder,
    };
    let body = if head || status == StatusCode::RANGE_NOT_SATISFIABLE {
        empty()
    } else {
        let transfer = Transfer {
            started: Instant::now(),
            shared: Arc::clone(&shared),
            client,
            name,
            expected: count,
            sent: 0,
        };
        file_body(shared, file, start, count, transfer)
    };
    Ok(builder
        .body(body)
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, head)))
}

/// Resolves, checks and opens what `raw_path` names (blocking file system calls).
fn locate(shared: &Shared, raw_path: &str) -> Result<Target, Refusal> {
    let segments = resolve::segments(raw_path)?;
    let path = resolve::resolve(&shared.root, &segments)?;
    let meta = std::fs::metadata(&path).map_err(|_| Refusal::NotFound)?;
    if meta.is_dir() {
        if !shared.list {
            return Err(Refusal::Forbidden);
        }
        return listing::render(&segments, &path)
            .map(Target::Listing)
            .map_err(|_| Refusal::Forbidden);
    }
    // Checked before opening, so that a FIFO or a device is never opened.
    if !meta.is_file() {
        return Err(Refusal::Forbidden);
    }
    let file = File::open(&path).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => Refusal::Forbidden,
        _ => Refusal::NotFound,
    })?;
    let meta = file.metadata().map_err(|_| Refusal::NotFound)?;
    if !meta.is_file() {
        return Err(Refusal::Forbidden);
    }
    // Like nginx: modification time and length, so a changed file gets a new tag.
    let etag = format!(
        "\"{:x}.{:x}-{:x}\"",
        meta.mtime(),
        meta.mtime_nsec(),
        meta.len()
    );
    Ok(Target::File {
        file,
        length: meta.len(),
        etag,
        name: segments.join("/"),
    })
}

/// `count` bytes of `file` from `start`, read ahead, paced, and counted.
fn file_body(
    shared: Arc<Shared>,
    file: File,
    start: u64,
    count: u64,
    mut transfer: Transfer,
) -> Body {
    let file = Arc::new(file);
    let chunk = shared.chunk.max(1);
    let pieces = (0..count.div_ceil(chunk)).map(move |i| {
        let offset = start + i * chunk;
        (offset, chunk.min(start + count - offset))
    });
    let buffers = Arc::clone(&shared.buffers);
    let frames = futures::stream::iter(pieces)
        .map(move |(offset, len)| read_at(Arc::clone(&file), Arc::clone(&buffers), offset, len))
        .buffered(READ_AHEAD)
        .then(move |read| {
            let shared = Arc::clone(&shared);
            async move {
                let bytes = read?;
                shared.limiter.acquire(bytes.len() as u64).await;
                Ok(bytes)
            }
        })
        .map(move |sent: io::Result<Bytes>| {
            sent.map(|bytes| {
                transfer.add(bytes.len() as u64);
                Frame::data(bytes)
            })
        });
    BodyExt::boxed(StreamBody::new(frames))
}

/// Reads `len` bytes at `offset` on the blocking pool. The read starts at
/// once, not when the future is first polled, so chunks are read ahead.
fn read_at(
    file: Arc<File>,
    buffers: Arc<BufferPool>,
    offset: u64,
    len: u64,
) -> impl Future<Output = io::Result<Bytes>> {
    let task = tokio::task::spawn_blocking(move || {
        let mut buffer = buffers.take();
        let len = (len as usize).min(buffer.len());
        // A file that shrank since it was opened ends the body with an error,
        // and hyper then closes the connection rather than send short data.
        file.read_exact_at(&mut buffer[..len], offset)?;
        Ok(buffers.lend(buffer, len))
    });
    async move { task.await.map_err(io::Error::other)? }
}

/// One body on its way: counts bytes and logs one line when dropped.
struct Transfer {
    shared: Arc<Shared>,
    client: SocketAddr,
    name: String,
    expected: u64,
    sent: u64,
    started: Instant,
}

impl Transfer {
    fn add(&mut self, bytes: u64) {
        self.sent += bytes;
        self.shared.stats.bytes_sent.fetch_add(bytes, Relaxed);
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        let complete = self.sent == self.expected;
        let counter = if complete {
            &self.shared.stats.transfers
        } else {
            &self.shared.stats.aborted
        };
        counter.fetch_add(1, Relaxed);
        info!(
            client = %self.client,
            file = %self.name,
            bytes = self.sent,
            seconds = format_args!("{:.3}", self.started.elapsed().as_secs_f64()),
            "{}",
            if complete { "transfer complete" } else { "transfer aborted" }
        );
    }
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A status with its reason as a one-line plain-text body.
fn text(status: StatusCode, head: bool) -> Response<Body> {
    let line = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let length = line.len();
    let body = if head {
        empty()
    } else {
        Full::new(Bytes::from(line))
            .map_err(|never| match never {})
            .boxed()
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

fn page_response(page: String, head: bool) -> Response<Body> {
    let length = page.len();
    let body = if head {
        empty()
    } else {
        Full::new(Bytes::from(page))
            .map_err(|never| match never {})
            .boxed()
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

#[cfg(test)]
mod tests;
