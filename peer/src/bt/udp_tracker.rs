//! Announces to UDP trackers (BEP 15), with BEP 41's URL data.
//!
//! A connect exchange gets a connection id, kept for one minute per tracker
//! and reused by the announces that follow; every request carries a fresh
//! random transaction id, and a reply with another id (a late answer to an
//! earlier try) is ignored. A request unanswered is sent again after 15 s,
//! then 30 s (BEP 15's 15·2^n schedule, cut at n = 1): a tracker that never
//! answers costs at most [`GIVE_UP_AFTER`] per step (connect, then announce)
//! before the client moves on to the next tracker. A tracker that is not
//! listening is usually known at once, from the ICMP error the kernel turns
//! into a refused receive.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::{Duration, Instant},
};

use common::tracker_proto::{
    udp::{Announce, Request, Response},
    AnnounceEvent, AnnounceResponse, PeerEntry,
};
use tokio::{net::UdpSocket, time::timeout};

use super::tracker_client::Progress;

/// How long a connection id is reused (BEP 15: one minute at the client).
pub const ID_LIFETIME: Duration = Duration::from_secs(60);
/// First wait for a reply; each try waits twice the one before.
pub const FIRST_WAIT: Duration = Duration::from_secs(15);
/// Tries per request: 15 s, then 30 s.
pub const TRIES: u32 = 2;
/// The most one step (connect or announce) waits on a silent tracker.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(45);
/// Largest reply read: a whole UDP datagram.
const MAX_REPLY: usize = 65_536;

/// A `udp://host:port[/path?query]` tracker and its connection id.
pub struct UdpTracker {
    host: String,
    port: u16,
    /// BEP 41: the URL's path and query, sent as URL data.
    url_data: Vec<u8>,
    connection: Option<(u64, Instant)>,
    /// Shortened in tests, so a silent tracker is not waited on for 45 s.
    first_wait: Duration,
}

impl UdpTracker {
    /// Reads a `udp://` URL; `None` if it is not one or names no port.
    pub fn parse(url: &str) -> Option<UdpTracker> {
        let rest = url.strip_prefix("udp://")?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']')?;
            (host, after.strip_prefix(':')?)
        } else {
            authority.rsplit_once(':')?
        };
        let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
        if host.is_empty() {
            return None;
        }
        Some(UdpTracker {
            host: host.to_string(),
            port,
            url_data: path.as_bytes().to_vec(),
            connection: None,
            first_wait: FIRST_WAIT,
        })
    }

    #[cfg(test)]
    fn with_first_wait(mut self, wait: Duration) -> Self {
        self.first_wait = wait;
        self
    }

    /// One announce; the error says why it failed, for the log.
    pub async fn announce(
        &mut self,
        info_hash: common::InfoHash,
        peer_id: common::PeerId,
        port: u16,
        key: u32,
        event: AnnounceEvent,
        progress: Progress,
    ) -> Result<AnnounceResponse, String> {
        let target = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", self.host))?;
        let local: SocketAddr = match target.ip() {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
        socket.connect(target).await.map_err(|e| e.to_string())?;
        let connection_id = match self.connection {
            Some((id, at)) if at.elapsed() < ID_LIFETIME => id,
            _ => {
                let id = match self
                    .exchange(
                        &socket,
                        |tid| Request::Connect {
                            transaction_id: tid,
                        },
                        false,
                    )
                    .await?
                {
                    Response::Connect { connection_id, .. } => connection_id,
                    other => return Err(format!("unexpected reply to connect: {other:?}")),
                };
                self.connection = Some((id, Instant::now()));
                id
            }
        };
        let request = |transaction_id| {
            Request::Announce(Announce {
                connection_id,
                transaction_id,
                info_hash,
                peer_id,
                downloaded: progress.downloaded,
                left: progress.left,
                uploaded: progress.uploaded,
                event,
                ip: None,
                key,
                num_want: Some(if event == AnnounceEvent::Stopped {
                    0
                } else {
                    80
                }),
                port,
                url_data: self.url_data.clone(),
            })
        };
        let v6 = target.is_ipv6();
        match self.exchange(&socket, request, v6).await {
            Ok(Response::Announce {
                interval,
                leechers,
                seeders,
                peers,
                ..
            }) => Ok(AnnounceResponse {
                interval,
                min_interval: None,
                complete: seeders,
                incomplete: leechers,
                peers: peers
                    .into_iter()
                    .map(|addr| PeerEntry {
                        addr,
                        peer_id: None,
                    })
                    .collect(),
                warning: None,
            }),
            Ok(other) => Err(format!("unexpected reply to announce: {other:?}")),
            Err(e) => {
                // The id may have been refused: connect afresh next time.
                self.connection = None;
                Err(e)
            }
        }
    }

    /// Sends the request `make(transaction_id)` and waits for its reply,
    /// trying again on BEP 15's schedule. An error reply is an error.
    async fn exchange(
        &self,
        socket: &UdpSocket,
        make: impl Fn(u32) -> Request,
        v6: bool,
    ) -> Result<Response, String> {
        let mut packet = Vec::with_capacity(256);
        let mut buffer = vec![0u8; MAX_REPLY];
        let mut wait = self.first_wait;
        for _ in 0..TRIES {
            let transaction_id = rand::random::<u32>();
            packet.clear();
            make(transaction_id).encode(&mut packet);
            socket.send(&packet).await.map_err(|e| e.to_string())?;
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let received = match timeout(left, socket.recv(&mut buffer)).await {
                    Err(_) => break, // this try timed out
                    Ok(received) => received.map_err(|e| e.to_string())?,
                };
                match Response::parse(&buffer[..received], v6) {
                    Ok(reply) if reply.transaction_id() == transaction_id => {
                        return match reply {
                            Response::Error { message, .. } => {
                                Err(format!("tracker says: {message}"))
                            }
                            reply => Ok(reply),
                        };
                    }
                    // A late reply to an earlier try, or garbage: keep waiting.
                    _ => continue,
                }
            }
            wait *= 2;
        }
        Err("no reply".to_string())
    }
}

#[cfg(test)]
mod tests;
