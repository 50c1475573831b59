//! HTTP handlers. Every refusal is HTTP 200 with a bencoded `failure reason`,
//! as BitTorrent clients expect; nothing a client sends can panic a handler.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, RawQuery, State},
    http::{header, HeaderValue},
    response::{Html, IntoResponse, Response},
    routing::get,
    Json, Router,
};
use common::tracker_proto::{
    encode_failure, parse_scrape, query::MAX_QUERY_BYTES, AnnounceRequest, AnnounceResponse,
    QueryError, ScrapeStats,
};
use thiserror::Error;

use crate::{
    dashboard,
    stats::snapshot,
    swarm::{Announce, SwarmError},
    AppState,
};

/// Why a request was refused; the text is the `failure reason`.
#[derive(Debug, Error)]
pub enum TrackerError {
    #[error("{0}")]
    BadRequest(#[from] QueryError),
    #[error("unregistered torrent")]
    Unregistered,
    #[error("full scrape is disabled")]
    FullScrapeDisabled,
    #[error("tracker is full")]
    Full,
}

impl IntoResponse for TrackerError {
    fn into_response(self) -> Response {
        bencoded(encode_failure(&self.to_string()))
    }
}

fn bencoded(body: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        body,
    )
        .into_response()
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/announce", get(announce))
        .route("/scrape", get(scrape))
        .route("/stats", get(stats))
        .route("/", get(|| async { Html(dashboard::PAGE) }))
        .with_state(state)
}

/// The query, refusing an oversized one before any parsing.
fn query_of(raw: Option<String>) -> Result<String, TrackerError> {
    let query = raw.unwrap_or_default();
    if query.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong.into());
    }
    Ok(query)
}

/// The peer's address: the connection's source, or X-Forwarded-For's last
/// hop when the connection comes from the trusted proxy, or the `ip`
/// parameter when the operator allows it. `forwarded_for` yields the values
/// of every X-Forwarded-For header, in order; it is read only for the proxy.
fn peer_ip<'h>(
    state: &AppState,
    remote: SocketAddr,
    forwarded_for: impl Iterator<Item = &'h [u8]>,
    param: Option<IpAddr>,
) -> IpAddr {
    if let (true, Some(ip)) = (state.config.allow_ip_param, param) {
        return ip;
    }
    let source = remote.ip().to_canonical();
    if state.config.trusted_proxy == Some(source) {
        let forwarded = forwarded_for
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .last();
        if let Some(ip) = forwarded {
            return ip.to_canonical();
        }
    }
    source
}

async fn announce(
    State(state): State<Arc<AppState>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    http: axum::extract::Request,
) -> Response {
    // The query and headers are read in place: no copy per announce.
    let query = http.uri().query().unwrap_or("");
    let forwarded_for = http
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .map(HeaderValue::as_bytes);
    let mut body = Vec::new();
    announce_reply(&state, remote, forwarded_for, query, &mut body);
    bencoded(body)
}

/// Answers one announce: appends to `out` the bencoded reply, or the
/// bencoded failure. The one implementation behind both the axum route and
/// the accept loop's fast path ([`crate::fast`]).
pub fn announce_reply<'h>(
    state: &AppState,
    remote: SocketAddr,
    forwarded_for: impl Iterator<Item = &'h [u8]>,
    query: &str,
    out: &mut Vec<u8>,
) {
    if let Err(refusal) = record_announce(state, remote, forwarded_for, query, out) {
        out.extend_from_slice(&encode_failure(&refusal.to_string()));
    }
}

fn record_announce<'h>(
    state: &AppState,
    remote: SocketAddr,
    forwarded_for: impl Iterator<Item = &'h [u8]>,
    query: &str,
    out: &mut Vec<u8>,
) -> Result<(), TrackerError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong.into());
    }
    let request = AnnounceRequest::parse(query)?;
    if state.config.catalog.is_some() && !state.catalog().contains_key(&request.info_hash) {
        return Err(TrackerError::Unregistered);
    }
    let ip = peer_ip(state, remote, forwarded_for, request.ip);
    tracing::debug!(info_hash = %request.info_hash, peer = %SocketAddr::new(ip, request.port), event = request.event.as_str(), left = request.left, "announce");
    let numwant = state.numwant(request.numwant);
    let now = state.now();
    state.rate.record(now);
    let announce = Announce {
        info_hash: request.info_hash,
        peer_id: request.peer_id,
        addr: SocketAddr::new(ip, request.port),
        uploaded: request.uploaded,
        downloaded: request.downloaded,
        left: request.left,
        event: request.event,
        numwant,
    };
    let outcome = state
        .swarms
        .announce(&announce, now, &mut rand::rng())
        .map_err(|SwarmError::Full| TrackerError::Full)?;
    let response = AnnounceResponse {
        interval: state.config.interval,
        min_interval: Some((state.config.interval / 2).max(1)),
        complete: outcome.stats.complete,
        incomplete: outcome.stats.incomplete,
        peers: outcome.peers,
        warning: None,
    };
    response.encode_into(out, request.compact, request.no_peer_id);
    Ok(())
}

async fn scrape(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, TrackerError> {
    let hashes = parse_scrape(&query_of(raw)?)?;
    let mut files: Vec<_> = if hashes.is_empty() {
        if !state.config.allow_full_scrape {
            return Err(TrackerError::FullScrapeDisabled);
        }
        let mut all = Vec::new();
        state
            .swarms
            .for_each(|hash, swarm| all.push((*hash, swarm.stats())));
        all
    } else {
        // BEP 48: every asked hash gets an entry; unknown swarms count zero.
        hashes
            .into_iter()
            .map(|hash| {
                (
                    hash,
                    state.swarms.scrape(&hash).unwrap_or(ScrapeStats::default()),
                )
            })
            .collect()
    };
    Ok(bencoded(common::tracker_proto::response::encode_scrape(
        &mut files,
    )))
}

async fn stats(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    Json(snapshot(
        &state.swarms,
        state.catalog(),
        &state.rate,
        &state.udp_announces,
        state.now(),
    ))
}
