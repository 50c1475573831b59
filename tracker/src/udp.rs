//! The UDP tracker (BEP 15): the same swarms as HTTP, over one UDP socket.
//!
//! [`answer`] is the whole protocol policy, with no socket: a packet and its
//! source in, at most one reply out. [`serve`] is the thin loop around it,
//! on a thread of its own with a blocking socket (a packet's work is a few
//! microseconds; an async runtime would only add to it).
//!
//! No amplification: a packet whose connection id does not validate for its
//! source gets no reply at all, whatever it is; the only reply to an
//! unvalidated source is the 16-byte connect reply to a 16-byte connect
//! request. An error reply goes only to a validated source. Peers per
//! announce reply are capped ([`MAX_PEERS_V4`], [`MAX_PEERS_V6`]) so a reply
//! stays within one 1500-byte frame and at most 14 times its 98-byte request.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use common::tracker_proto::udp::{Request, Response, UdpError};
use rand::Rng;
use tracing::{debug, warn};

use crate::{
    connection_id::ConnectionIds,
    swarm::{Announce, Family, SwarmError},
    udp::batch::Batch,
    AppState,
};

/// Most IPv4 peers in one reply: 20 + 200 × 6 = 1,220 bytes.
pub const MAX_PEERS_V4: usize = 200;
/// Most IPv6 peers in one reply: 20 + 74 × 18 = 1,352 bytes.
pub const MAX_PEERS_V6: usize = 74;
/// Largest datagram read; longer ones are truncated by the kernel, which
/// parsing by prefix tolerates (BEP 41 options past this are lost).
pub const MAX_PACKET: usize = 2048;

/// Answers one packet from `source` at `now`: the reply is appended to `out`,
/// which stays empty when nothing is to be sent.
pub fn answer<R: Rng>(
    state: &AppState,
    ids: &ConnectionIds,
    packet: &[u8],
    source: SocketAddr,
    now: u32,
    rng: &mut R,
    out: &mut Vec<u8>,
) {
    let ip = source.ip().to_canonical();
    let request = match Request::parse(packet) {
        Ok(request) => request,
        Err(error) => {
            // Only a source that proved its address hears why.
            if let (Some(id), Some(tid)) = (id_of(packet), transaction_of(packet)) {
                if ids.valid(id, ip, now) && error != UdpError::NotBep15 {
                    refuse(tid, &error.to_string(), out);
                }
            }
            return;
        }
    };
    match request {
        Request::Connect { transaction_id } => Response::Connect {
            transaction_id,
            connection_id: ids.issue(ip, now),
        }
        .encode(out),
        Request::Announce(a) => {
            if !ids.valid(a.connection_id, ip, now) {
                return;
            }
            let transaction_id = a.transaction_id;
            if state.config.catalog.is_some() && !state.catalog().contains_key(&a.info_hash) {
                return refuse(transaction_id, "unregistered torrent", out);
            }
            let peer_ip = match (state.config.allow_ip_param, a.ip) {
                (true, Some(v4)) => IpAddr::V4(v4),
                _ => ip,
            };
            let family = Family::of(ip);
            let cap = match family {
                Family::V4 => MAX_PEERS_V4,
                Family::V6 => MAX_PEERS_V6,
            };
            let numwant = state.numwant(a.num_want).min(cap);
            state.rate.record(now);
            state.udp_announces.record(now);
            let announce = Announce {
                info_hash: a.info_hash,
                peer_id: a.peer_id,
                addr: SocketAddr::new(peer_ip, a.port),
                uploaded: a.uploaded,
                downloaded: a.downloaded,
                left: a.left,
                event: a.event,
                numwant,
            };
            debug!(info_hash = %a.info_hash, peer = %announce.addr, event = a.event.as_str(), left = a.left, "udp announce");
            match state
                .swarms
                .announce_family(&announce, Some(family), now, rng)
            {
                Ok(outcome) => Response::Announce {
                    transaction_id,
                    interval: state.config.interval,
                    leechers: outcome.stats.incomplete,
                    seeders: outcome.stats.complete,
                    peers: outcome.peers.iter().map(|p| p.addr).collect(),
                }
                .encode(out),
                Err(SwarmError::Full) => refuse(transaction_id, "tracker is full", out),
            }
        }
        Request::Scrape {
            connection_id,
            transaction_id,
            info_hashes,
        } => {
            if !ids.valid(connection_id, ip, now) {
                return;
            }
            Response::Scrape {
                transaction_id,
                stats: info_hashes
                    .iter()
                    .map(|hash| state.swarms.scrape(hash).unwrap_or_default())
                    .collect(),
            }
            .encode(out)
        }
    }
}

fn refuse(transaction_id: u32, message: &str, out: &mut Vec<u8>) {
    Response::Error {
        transaction_id,
        message: message.to_string(),
    }
    .encode(out)
}

/// The connection id field of any request of at least 16 bytes.
fn id_of(packet: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(packet.get(..8)?.try_into().ok()?))
}

fn transaction_of(packet: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(packet.get(12..16)?.try_into().ok()?))
}

/// How often the loop looks at `stop` while no packet comes.
const POLL: Duration = Duration::from_millis(200);

/// Answers packets on `socket` until `stop` is set, a batch at a time
/// ([`batch`]). Blocking: run it on a thread of its own.
pub fn serve(socket: UdpSocket, state: Arc<AppState>, ids: ConnectionIds, stop: Arc<AtomicBool>) {
    if let Err(e) = socket.set_read_timeout(Some(POLL)) {
        warn!("udp: cannot set a read timeout ({e}); stopping may wait for a packet");
    }
    let mut batch = Batch::default();
    let mut rng = rand::rng();
    let mut send_errors = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match batch.receive(&socket) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                continue
            }
            Err(e) => {
                warn!("udp: receive failed: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        }
        let now = state.now();
        for i in 0..batch.len() {
            if let Some((packet, source, reply)) = batch.packet(i) {
                answer(&state, &ids, packet, source, now, &mut rng, reply);
            }
        }
        let failed = batch.send(&socket);
        if failed > 0 {
            // Say it once in a while, not once per packet.
            if send_errors.is_power_of_two() {
                debug!(failed, "udp: sends failed");
            }
            send_errors += failed as u64;
        }
    }
}

mod batch;

#[cfg(test)]
mod tests;
