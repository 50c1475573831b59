//! The client: one whole-file download over HTTP/1.1 into a directory.
//!
//! 1. The file name is the URL's last path segment, percent-decoded once and
//!    checked as a plain name ([`common::metainfo::check_component`]), so the
//!    download can only land directly in the output directory.
//! 2. With `resume`, an existing `.part` is continued with `Range: bytes=N-`
//!    and `If-Range: <saved ETag>`. The answer is used only if it is a 206
//!    starting at N for the same length and ETag; a 200 restarts from zero
//!    with that answer, anything else restarts with a fresh request.
//! 3. Each chunk of the body is written to the `.part` as it arrives
//!    ([`super::part`]), then paced by the optional download limiter; the
//!    `.part` is renamed to the name when complete, replacing any file of
//!    that name (as curl and wget do).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use percent_encoding::percent_decode_str;
use reqwest::{
    header::{CONTENT_RANGE, ETAG, IF_RANGE, RANGE},
    Response, StatusCode, Url,
};
use serde::Serialize;

use super::{
    http_range,
    part::{self, PartMeta, PartPaths, Writer},
};
use crate::rate::RateLimiter;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// By default, a download that receives nothing for this long fails (and
/// can be resumed).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub url: String,
    pub output: PathBuf,
    pub resume: bool,
    /// Download limit, bytes per second.
    pub rate: Option<u64>,
    /// Fail when nothing arrives for this long ([`STALL_TIMEOUT`] by default).
    pub stall_timeout: Duration,
}

/// What the command prints as its JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct FetchReport {
    pub file: PathBuf,
    /// Bytes received by this run.
    pub bytes: u64,
    /// The whole file's length.
    pub size: u64,
    /// Where this run started in the file (0 unless resumed).
    pub resumed_from: u64,
    /// Since the command started.
    pub seconds: f64,
    /// `bytes / seconds`.
    pub rate: f64,
}

/// Hooks for a progress display.
pub trait Progress {
    /// The file's length if known, and the bytes already on disk.
    fn start(&self, total: Option<u64>, done: u64);
    fn advance(&self, bytes: u64);
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    BadUrl(String),
    #[error("cannot connect to {url}: {cause}")]
    Connect { url: Url, cause: String },
    #[error("{url}: the server answered {status}")]
    Status { url: Url, status: StatusCode },
    #[error("{url}: {reason}")]
    Protocol { url: Url, reason: String },
    #[error("{url}: transfer interrupted after {bytes} bytes: {cause}")]
    Interrupted { url: Url, bytes: u64, cause: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What to do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Write the body from `offset`.
    WriteFrom(u64),
    /// The server would not continue this file: ask again for all of it.
    AskAgain,
}

pub async fn fetch(
    options: &FetchOptions,
    progress: &dyn Progress,
) -> Result<FetchReport, FetchError> {
    let started = Instant::now();
    let url = Url::parse(&options.url)
        .map_err(|e| FetchError::BadUrl(format!("{:?}: {e}", options.url)))?;
    if url.scheme() != "http" {
        return Err(FetchError::BadUrl(format!(
            "{url}: only http:// URLs are supported"
        )));
    }
    let name = file_name(&url)?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| FetchError::Io { path, source }
    };
    std::fs::create_dir_all(&options.output).map_err(io(&options.output))?;
    let paths = PartPaths::new(&options.output, &name);
    let client = reqwest::Client::builder()
        .no_proxy()
        .user_agent(concat!("peer/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(options.stall_timeout)
        .build()
        .map_err(|e| FetchError::Protocol {
            url: url.clone(),
            reason: cause(&e),
        })?;

    let mut offset = if options.resume {
        part::existing_len(&paths.part).map_err(io(&paths.part))?
    } else {
        0
    };
    let saved = if offset > 0 {
        part::read_meta(&paths.meta).unwrap_or_default()
    } else {
        PartMeta::default()
    };
    let (mut response, start) = loop {
        let response = request(&client, &url, offset, saved.etag.as_deref()).await?;
        match plan(&response, offset, &saved) {
            Plan::WriteFrom(start) => break (response, start),
            Plan::AskAgain if offset > 0 => offset = 0,
            Plan::AskAgain => {
                let reason = format!("unexpected answer {} to a plain GET", response.status());
                return Err(FetchError::Protocol { url, reason });
            }
        }
    };
    let total = match response.status() {
        StatusCode::PARTIAL_CONTENT => content_range(&response).and_then(|r| r.total),
        _ => response.content_length(),
    };
    let etag = header(&response, ETAG).filter(|tag| !tag.starts_with("W/"));
    part::write_meta(
        &paths.meta,
        &PartMeta {
            etag,
            length: total,
        },
    )
    .map_err(io(&paths.meta))?;

    let mut writer = Writer::open(&paths.part, start).map_err(io(&paths.part))?;
    progress.start(total, start);
    let limiter = RateLimiter::new(options.rate);
    let mut received = 0u64;
    // Every chunk is on disk as soon as it arrives, so an interrupted
    // download leaves all it got in the `.part` for --resume.
    let interrupted = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                writer.write(&chunk).map_err(io(&paths.part))?;
                let len = chunk.len() as u64;
                received += len;
                progress.advance(len);
                limiter.acquire(len).await;
            }
            Ok(None) => break None,
            Err(e) => break Some(cause(&e)),
        }
    };
    drop(writer);
    let cause = interrupted.or_else(|| match total {
        Some(total) if start + received != total => Some(format!(
            "the body ended at {} of {total} bytes",
            start + received
        )),
        _ => None,
    });
    if let Some(cause) = cause {
        return Err(FetchError::Interrupted {
            url,
            bytes: received,
            cause,
        });
    }
    std::fs::rename(&paths.part, &paths.done).map_err(io(&paths.done))?;
    let _ = std::fs::remove_file(&paths.meta);
    let seconds = started.elapsed().as_secs_f64();
    Ok(FetchReport {
        file: paths.done,
        bytes: received,
        size: start + received,
        resumed_from: start,
        seconds,
        rate: if seconds > 0.0 {
            received as f64 / seconds
        } else {
            0.0
        },
    })
}

/// The URL's last path segment, decoded once, if it is a plain file name.
fn file_name(url: &Url) -> Result<String, FetchError> {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    let name = percent_decode_str(last)
        .decode_utf8()
        .map_err(|_| FetchError::BadUrl(format!("{url}: the file name is not UTF-8")))?;
    common::metainfo::check_component("file name", &name)
        .map_err(|e| FetchError::BadUrl(format!("{url}: the URL names no plain file: {e}")))?;
    Ok(name.into_owned())
}

/// Sends the GET (with a range from `offset` if it is not 0) and fails on
/// error statuses, except 416, which [`plan`] handles.
async fn request(
    client: &reqwest::Client,
    url: &Url,
    offset: u64,
    etag: Option<&str>,
) -> Result<Response, FetchError> {
    let mut request = client.get(url.clone());
    if offset > 0 {
        request = request.header(RANGE, format!("bytes={offset}-"));
        if let Some(etag) = etag {
            request = request.header(IF_RANGE, etag);
        }
    }
    let response = request.send().await.map_err(|e| {
        if e.is_connect() {
            FetchError::Connect {
                url: url.clone(),
                cause: cause(&e),
            }
        } else {
            FetchError::Protocol {
                url: url.clone(),
                reason: cause(&e),
            }
        }
    })?;
    let status = response.status();
    if status.is_success() || status == StatusCode::RANGE_NOT_SATISFIABLE {
        Ok(response)
    } else {
        Err(FetchError::Status {
            url: url.clone(),
            status,
        })
    }
}

fn plan(response: &Response, offset: u64, saved: &PartMeta) -> Plan {
    decide(
        response.status(),
        content_range(response),
        header(response, ETAG).as_deref(),
        offset,
        saved,
    )
}

/// The resume rules of the module documentation, as a pure function.
fn decide(
    status: StatusCode,
    range: Option<http_range::ContentRange>,
    etag: Option<&str>,
    offset: u64,
    saved: &PartMeta,
) -> Plan {
    match status {
        StatusCode::OK => Plan::WriteFrom(0),
        StatusCode::PARTIAL_CONTENT if offset > 0 => {
            let same_start = range.is_some_and(|r| r.start == offset);
            let same_length = match (saved.length, range.and_then(|r| r.total)) {
                (Some(saved), Some(now)) => saved == now,
                _ => true,
            };
            let same_tag = match (&saved.etag, etag) {
                (Some(saved), now) => Some(saved.as_str()) == now,
                (None, _) => true,
            };
            if same_start && same_length && same_tag {
                Plan::WriteFrom(offset)
            } else {
                Plan::AskAgain
            }
        }
        _ => Plan::AskAgain,
    }
}

fn content_range(response: &Response) -> Option<http_range::ContentRange> {
    http_range::parse_content_range(&header(response, CONTENT_RANGE)?)
}

fn header(response: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    Some(response.headers().get(name)?.to_str().ok()?.to_owned())
}

/// The innermost cause of an error: "Connection refused (os error 111)"
/// rather than "error sending request".
fn cause(error: &dyn std::error::Error) -> String {
    let mut innermost = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

#[cfg(test)]
mod tests;
