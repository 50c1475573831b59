//! Announces to trackers with the tiers of BEP 12: tiers are tried in order,
//! the URLs of a tier in order, and a URL that answers moves to the front of
//! its tier. A tier may mix HTTP trackers (BEP 3, over reqwest; replies read
//! up to [`MAX_REPLY_BYTES`] and decoded by `common::tracker_proto`, compact
//! or not, `peers6` too) and UDP trackers (BEP 15, [`super::udp_tracker`]).
//! Retrying while every tracker is down is the caller's policy (the
//! coordinator backs off and goes on with the peers it knows).

use std::time::Duration;

use common::{
    tracker_proto::{AnnounceEvent, AnnounceRequest, AnnounceResponse, ResponseError},
    InfoHash, PeerId,
};
use thiserror::Error;

use super::udp_tracker::UdpTracker;

/// Largest tracker reply read: 64 KiB holds over 10,000 compact peers.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;
const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Error)]
pub enum TrackerError {
    #[error("no tracker answered (last error: {0})")]
    Unreachable(String),
    #[error("the torrent names no HTTP or UDP tracker")]
    NoTracker,
}

/// Counters sent with an announce.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
}

/// One tracker of a tier.
enum Tracker {
    Http(String),
    Udp(String, Box<UdpTracker>),
}

impl Tracker {
    fn of(url: String) -> Option<Tracker> {
        if url.starts_with("http://") {
            return Some(Tracker::Http(url));
        }
        UdpTracker::parse(&url).map(|udp| Tracker::Udp(url, Box::new(udp)))
    }

    fn url(&self) -> &str {
        match self {
            Tracker::Http(url) | Tracker::Udp(url, _) => url,
        }
    }
}

pub struct TrackerClient {
    http: reqwest::Client,
    tiers: Vec<Vec<Tracker>>,
    info_hash: InfoHash,
    peer_id: PeerId,
    port: u16,
    key: u32,
}

impl TrackerClient {
    pub fn new(
        tiers: Vec<Vec<String>>,
        info_hash: InfoHash,
        peer_id: PeerId,
        port: u16,
    ) -> Result<Self, TrackerError> {
        // HTTP and UDP are built in; other schemes (https://, wss://) are skipped.
        let tiers: Vec<Vec<Tracker>> = tiers
            .into_iter()
            .map(|tier| tier.into_iter().filter_map(Tracker::of).collect::<Vec<_>>())
            .filter(|tier| !tier.is_empty())
            .collect();
        if tiers.is_empty() {
            return Err(TrackerError::NoTracker);
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("peer/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TrackerError::Unreachable(e.to_string()))?;
        let key = rand::random::<u32>();
        Ok(TrackerClient {
            http,
            tiers,
            info_hash,
            peer_id,
            port,
            key,
        })
    }

    /// One announce, trying every tracker in tier order until one answers.
    pub async fn announce(
        &mut self,
        event: AnnounceEvent,
        progress: Progress,
    ) -> Result<AnnounceResponse, TrackerError> {
        let request = AnnounceRequest {
            info_hash: self.info_hash,
            peer_id: self.peer_id,
            port: self.port,
            uploaded: progress.uploaded,
            downloaded: progress.downloaded,
            left: progress.left,
            event,
            compact: true,
            no_peer_id: true,
            numwant: Some(if event == AnnounceEvent::Stopped {
                0
            } else {
                80
            }),
            key: Some(format!("{:08x}", self.key)),
            ip: None,
        };
        let query = request.to_query();
        let mut last_error = String::from("no tracker tried");
        for tier in self.tiers.iter_mut() {
            for position in 0..tier.len() {
                let reply = match &mut tier[position] {
                    Tracker::Http(url) => {
                        let separator = if url.contains('?') { '&' } else { '?' };
                        fetch(&self.http, &format!("{url}{separator}{query}")).await
                    }
                    Tracker::Udp(_, udp) => {
                        udp.announce(
                            self.info_hash,
                            self.peer_id,
                            self.port,
                            self.key,
                            event,
                            progress,
                        )
                        .await
                    }
                };
                let url = tier[position].url();
                match reply {
                    Ok(response) => {
                        let working = tier.remove(position);
                        tier.insert(0, working);
                        return Ok(response);
                    }
                    Err(error) => {
                        tracing::debug!(%url, %error, "announce failed");
                        last_error = format!("{url}: {error}");
                    }
                }
            }
        }
        Err(TrackerError::Unreachable(last_error))
    }
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<AnnounceResponse, String> {
    let mut response = http.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(format!("reply over {MAX_REPLY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    AnnounceResponse::decode(&body).map_err(|e: ResponseError| e.to_string())
}
