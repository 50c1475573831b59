//! One request head to one reply, without network I/O: the method check,
//! path resolution ([`super::resolve`]), the optional listing, and the ETag
//! and range logic. A file reply carries the open file and the byte range to
//! send; [`super::conn`] sends it. The file system calls here block, so the
//! connection calls [`reply`] on the blocking pool.

use std::{fs::File, io, os::unix::fs::MetadataExt, path::PathBuf, sync::atomic::AtomicU64};

use super::{
    http1::{self, RequestHead},
    http_range::{self, RangeRequest},
    listing,
    resolve::{self, Refusal},
};
use crate::rate::RateLimiter;

/// What every connection of one server shares.
#[derive(Debug)]
pub struct Shared {
    /// The served directory, canonical.
    pub root: PathBuf,
    pub list: bool,
    /// One bucket for the whole server.
    pub limiter: RateLimiter,
    /// Bytes per `sendfile` call (at most the limiter's burst).
    pub chunk: u64,
    pub stats: Stats,
}

/// Counters for the summary line printed at exit.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    /// Body bytes the kernel accepted for sending.
    pub bytes_sent: AtomicU64,
    /// Bodies sent to the end.
    pub transfers: AtomicU64,
    /// Bodies cut short (the client went away, a stall, or shutdown).
    pub aborted: AtomicU64,
}

/// A response: status, header fields (besides `Date`, `Content-Length` and
/// `Connection`, which the framing adds), the body length, and the body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// `Content-Length`; for HEAD, the length a GET would have.
    pub length: u64,
    pub body: Body,
}

#[derive(Debug)]
pub enum Body {
    /// No body (HEAD, 416).
    None,
    /// A small generated body: an error line or a listing.
    Page(Vec<u8>),
    /// `length` bytes of `file` from `start`; `name` is for the log.
    File {
        file: File,
        start: u64,
        name: String,
    },
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

/// Answers one request head. Never fails: every problem is a status code.
pub fn reply(shared: &Shared, head: &RequestHead) -> Reply {
    let is_head = head.method == "HEAD";
    if head.method != "GET" && !is_head {
        let mut reply = text(405, false);
        reply.headers.push(("allow", "GET, HEAD".into()));
        return reply;
    }
    let target = match http1::path_of(&head.target) {
        Some(path) => locate(shared, path),
        None => Err(Refusal::Forbidden),
    };
    let (file, length, etag, name) = match target {
        Ok(Target::File {
            file,
            length,
            etag,
            name,
        }) => (file, length, etag, name),
        Ok(Target::Listing(page)) => {
            let page = page.into_bytes();
            return Reply {
                status: 200,
                headers: vec![("content-type", "text/html; charset=utf-8".into())],
                length: page.len() as u64,
                body: if is_head {
                    Body::None
                } else {
                    Body::Page(page)
                },
            };
        }
        Err(Refusal::NotFound) => return text(404, is_head),
        Err(Refusal::Forbidden) => return text(403, is_head),
    };

    // If-Range: the range holds only for the representation the client has.
    let validated = head
        .if_range
        .as_deref()
        .is_none_or(|tag| tag == etag.as_bytes());
    let range = match &head.range {
        Some(value) if validated => http_range::parse_range(value, length),
        _ => RangeRequest::Full,
    };
    let mut headers = vec![
        ("content-type", "application/octet-stream".to_owned()),
        ("accept-ranges", "bytes".to_owned()),
        ("etag", etag),
    ];
    let (status, start, count) = match range {
        RangeRequest::Full => (200, 0, length),
        RangeRequest::Partial { start, end } => {
            let value = http_range::content_range(start, end, length);
            headers.push(("content-range", value));
            (206, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            headers.push(("content-range", http_range::unsatisfied_range(length)));
            (416, 0, 0)
        }
    };
    let body = if is_head || status == 416 {
        Body::None
    } else {
        Body::File { file, start, name }
    };
    Reply {
        status,
        headers,
        length: count,
        body,
    }
}

/// Resolves, checks and opens what `raw_path` names.
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

/// A status with its reason as a one-line plain-text body.
pub fn text(status: u16, is_head: bool) -> Reply {
    let line = format!("{status} {}\n", http1::reason(status)).into_bytes();
    Reply {
        status,
        headers: vec![("content-type", "text/plain; charset=utf-8".into())],
        length: line.len() as u64,
        body: if is_head {
            Body::None
        } else {
            Body::Page(line)
        },
    }
}

#[cfg(test)]
mod tests;
