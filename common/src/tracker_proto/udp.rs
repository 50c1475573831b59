//! The UDP tracker protocol (BEP 15, with BEP 41's options), both ways, with
//! no I/O: the tracker parses [`Request`]s and encodes [`Response`]s; the
//! peer's tracker client does the opposite with the same types.
//!
//! Parsing is by prefix, as BEP 15 and BEP 41 ask: an announce is its first
//! 98 bytes; what follows is BEP 41 options, read for URL data and otherwise
//! skipped, and a malformed or truncated option list never makes a valid
//! announce fail. Nothing here allocates more than the packet's own size.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

use super::{AnnounceEvent, ScrapeStats};
use crate::types::{InfoHash, PeerId};

/// The magic number that opens a connect request.
pub const PROTOCOL_ID: u64 = 0x417_2710_1980;
/// Bytes of a connect request, and of its reply.
pub const CONNECT_LEN: usize = 16;
/// Bytes of an announce request before BEP 41's options.
pub const ANNOUNCE_LEN: usize = 98;
/// Most info-hashes in one scrape: what fits in a 1500-byte packet's reply.
pub const MAX_SCRAPE_HASHES: usize = 74;
/// Most bytes of BEP 41 URL data kept from one announce (each option holds
/// at most 255; a tracker needs the path and query, not a novel).
pub const MAX_URL_DATA: usize = 1024;
/// Most bytes of an error message read or written.
pub const MAX_ERROR_LEN: usize = 512;
/// Bytes of one peer in an announce reply: 6 for IPv4, 18 for IPv6.
pub const PEER_V4_LEN: usize = 6;
pub const PEER_V6_LEN: usize = 18;

pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_SCRAPE: u32 = 2;
pub const ACTION_ERROR: u32 = 3;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UdpError {
    #[error("packet of {0} bytes is too short")]
    TooShort(usize),
    #[error("not a BEP 15 connect request (wrong protocol id)")]
    NotBep15,
    #[error("unknown action {0}")]
    UnknownAction(u32),
    #[error("scrape of {0} info-hashes (0 or more than 74, or a partial hash)")]
    BadScrape(usize),
    #[error("unknown event {0}")]
    BadEvent(u32),
    #[error("announce with port 0")]
    PortZero,
    #[error("announce reply's peer list is not a whole number of entries")]
    BadPeers,
}

/// A request, as the client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Connect {
        transaction_id: u32,
    },
    Announce(Announce),
    Scrape {
        connection_id: u64,
        transaction_id: u32,
        info_hashes: Vec<InfoHash>,
    },
}

/// An announce request (BEP 15's 98 bytes, plus BEP 41's URL data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub connection_id: u64,
    pub transaction_id: u32,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: AnnounceEvent,
    /// The `ip` field; `None` when 0 (the packet's source is the address).
    pub ip: Option<Ipv4Addr>,
    pub key: u32,
    /// `None` for -1 or 0: the tracker's default.
    pub num_want: Option<u32>,
    pub port: u16,
    /// BEP 41: the tracker URL's path and query, concatenated from every
    /// URL-data option (at most [`MAX_URL_DATA`] bytes).
    pub url_data: Vec<u8>,
}

impl Request {
    /// Reads a request packet. The connection id is returned unchecked:
    /// validating it is the tracker's business.
    pub fn parse(packet: &[u8]) -> Result<Request, UdpError> {
        if packet.len() < CONNECT_LEN {
            return Err(UdpError::TooShort(packet.len()));
        }
        let connection_id = u64_at(packet, 0);
        let action = u32_at(packet, 8);
        let transaction_id = u32_at(packet, 12);
        match action {
            ACTION_CONNECT => {
                if connection_id != PROTOCOL_ID {
                    return Err(UdpError::NotBep15);
                }
                Ok(Request::Connect { transaction_id })
            }
            ACTION_ANNOUNCE => {
                if packet.len() < ANNOUNCE_LEN {
                    return Err(UdpError::TooShort(packet.len()));
                }
                let event = match u32_at(packet, 80) {
                    0 => AnnounceEvent::None,
                    1 => AnnounceEvent::Completed,
                    2 => AnnounceEvent::Started,
                    3 => AnnounceEvent::Stopped,
                    other => return Err(UdpError::BadEvent(other)),
                };
                let port = u16::from_be_bytes([packet[96], packet[97]]);
                if port == 0 {
                    return Err(UdpError::PortZero);
                }
                let ip = Ipv4Addr::from(u32_at(packet, 84));
                let num_want = u32_at(packet, 92) as i32;
                Ok(Request::Announce(Announce {
                    connection_id,
                    transaction_id,
                    info_hash: InfoHash(bytes_at(packet, 16)),
                    peer_id: PeerId(bytes_at(packet, 36)),
                    downloaded: u64_at(packet, 56),
                    left: u64_at(packet, 64),
                    uploaded: u64_at(packet, 72),
                    event,
                    ip: (!ip.is_unspecified()).then_some(ip),
                    key: u32_at(packet, 88),
                    num_want: (num_want > 0).then_some(num_want as u32),
                    port,
                    url_data: url_data(&packet[ANNOUNCE_LEN..]),
                }))
            }
            ACTION_SCRAPE => {
                let hashes = &packet[CONNECT_LEN..];
                let count = hashes.len() / 20;
                if count == 0 || count > MAX_SCRAPE_HASHES || !hashes.len().is_multiple_of(20) {
                    return Err(UdpError::BadScrape(count));
                }
                Ok(Request::Scrape {
                    connection_id,
                    transaction_id,
                    info_hashes: hashes
                        .chunks_exact(20)
                        .map(|h| InfoHash(h.try_into().expect("20 bytes")))
                        .collect(),
                })
            }
            other => Err(UdpError::UnknownAction(other)),
        }
    }

    /// Appends the request's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Request::Connect { transaction_id } => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&ACTION_CONNECT.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
            }
            Request::Announce(a) => {
                out.extend_from_slice(&a.connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
                out.extend_from_slice(&a.transaction_id.to_be_bytes());
                out.extend_from_slice(&a.info_hash.0);
                out.extend_from_slice(&a.peer_id.0);
                out.extend_from_slice(&a.downloaded.to_be_bytes());
                out.extend_from_slice(&a.left.to_be_bytes());
                out.extend_from_slice(&a.uploaded.to_be_bytes());
                let event: u32 = match a.event {
                    AnnounceEvent::None => 0,
                    AnnounceEvent::Completed => 1,
                    AnnounceEvent::Started => 2,
                    AnnounceEvent::Stopped => 3,
                };
                out.extend_from_slice(&event.to_be_bytes());
                let ip = a.ip.map_or(0, u32::from);
                out.extend_from_slice(&ip.to_be_bytes());
                out.extend_from_slice(&a.key.to_be_bytes());
                let num_want = a.num_want.map_or(-1, |n| n.min(i32::MAX as u32) as i32);
                out.extend_from_slice(&num_want.to_be_bytes());
                out.extend_from_slice(&a.port.to_be_bytes());
                // BEP 41: URL data in options of at most 255 bytes each.
                let data = &a.url_data[..a.url_data.len().min(MAX_URL_DATA)];
                for chunk in data.chunks(255) {
                    out.push(OPTION_URL_DATA);
                    out.push(chunk.len() as u8);
                    out.extend_from_slice(chunk);
                }
                if !data.is_empty() {
                    out.push(OPTION_END);
                }
            }
            Request::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for hash in info_hashes.iter().take(MAX_SCRAPE_HASHES) {
                    out.extend_from_slice(&hash.0);
                }
            }
        }
    }
}

const OPTION_END: u8 = 0;
const OPTION_NOP: u8 = 1;
const OPTION_URL_DATA: u8 = 2;

/// BEP 41's options after an announce: the URL data they carry. Stops at
/// the end option, an unknown option or a truncated one.
fn url_data(mut options: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    while let Some((&kind, rest)) = options.split_first() {
        match kind {
            OPTION_NOP => options = rest,
            OPTION_URL_DATA => {
                let Some((&len, rest)) = rest.split_first() else {
                    break;
                };
                let Some(chunk) = rest.get(..len as usize) else {
                    break;
                };
                let room = MAX_URL_DATA - data.len();
                data.extend_from_slice(&chunk[..chunk.len().min(room)]);
                options = &rest[len as usize..];
            }
            _ => break, // the end option, or one we do not know
        }
    }
    data
}

/// A reply, as the tracker sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Connect {
        transaction_id: u32,
        connection_id: u64,
    },
    Announce {
        transaction_id: u32,
        interval: u32,
        leechers: u32,
        seeders: u32,
        /// All IPv4 or all IPv6, as the request came (BEP 15).
        peers: Vec<SocketAddr>,
    },
    Scrape {
        transaction_id: u32,
        stats: Vec<ScrapeStats>,
    },
    Error {
        transaction_id: u32,
        message: String,
    },
}

impl Response {
    pub fn transaction_id(&self) -> u32 {
        match self {
            Response::Connect { transaction_id, .. }
            | Response::Announce { transaction_id, .. }
            | Response::Scrape { transaction_id, .. }
            | Response::Error { transaction_id, .. } => *transaction_id,
        }
    }

    /// Appends the reply's bytes to `out`. Announce peers of the other
    /// family than the first are left out: a reply is one family.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let head = |out: &mut Vec<u8>, action: u32, transaction_id: u32| {
            out.extend_from_slice(&action.to_be_bytes());
            out.extend_from_slice(&transaction_id.to_be_bytes());
        };
        match self {
            Response::Connect {
                transaction_id,
                connection_id,
            } => {
                head(out, ACTION_CONNECT, *transaction_id);
                out.extend_from_slice(&connection_id.to_be_bytes());
            }
            Response::Announce {
                transaction_id,
                interval,
                leechers,
                seeders,
                peers,
            } => {
                head(out, ACTION_ANNOUNCE, *transaction_id);
                for n in [interval, leechers, seeders] {
                    out.extend_from_slice(&n.to_be_bytes());
                }
                let v6 = peers.first().is_some_and(SocketAddr::is_ipv6);
                for peer in peers {
                    match peer.ip() {
                        IpAddr::V4(ip) if !v6 => out.extend_from_slice(&ip.octets()),
                        IpAddr::V6(ip) if v6 => out.extend_from_slice(&ip.octets()),
                        _ => continue,
                    }
                    out.extend_from_slice(&peer.port().to_be_bytes());
                }
            }
            Response::Scrape {
                transaction_id,
                stats,
            } => {
                head(out, ACTION_SCRAPE, *transaction_id);
                for s in stats.iter().take(MAX_SCRAPE_HASHES) {
                    for n in [s.complete, s.downloaded, s.incomplete] {
                        out.extend_from_slice(&n.to_be_bytes());
                    }
                }
            }
            Response::Error {
                transaction_id,
                message,
            } => {
                head(out, ACTION_ERROR, *transaction_id);
                let bytes = message.as_bytes();
                out.extend_from_slice(&bytes[..bytes.len().min(MAX_ERROR_LEN)]);
            }
        }
    }

    /// Reads a reply packet. `v6` says whether the request went over IPv6,
    /// so announce peers are 18-byte entries.
    pub fn parse(packet: &[u8], v6: bool) -> Result<Response, UdpError> {
        if packet.len() < 8 {
            return Err(UdpError::TooShort(packet.len()));
        }
        let action = u32_at(packet, 0);
        let transaction_id = u32_at(packet, 4);
        match action {
            ACTION_CONNECT => {
                if packet.len() < CONNECT_LEN {
                    return Err(UdpError::TooShort(packet.len()));
                }
                Ok(Response::Connect {
                    transaction_id,
                    connection_id: u64_at(packet, 8),
                })
            }
            ACTION_ANNOUNCE => {
                if packet.len() < 20 {
                    return Err(UdpError::TooShort(packet.len()));
                }
                let entry = if v6 { PEER_V6_LEN } else { PEER_V4_LEN };
                let list = &packet[20..];
                if !list.len().is_multiple_of(entry) {
                    return Err(UdpError::BadPeers);
                }
                let peers = list
                    .chunks_exact(entry)
                    .map(|e| {
                        let (ip, port) = e.split_at(entry - 2);
                        let ip = if v6 {
                            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).expect("16")))
                        } else {
                            IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip).expect("4")))
                        };
                        SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]]))
                    })
                    .collect();
                Ok(Response::Announce {
                    transaction_id,
                    interval: u32_at(packet, 8),
                    leechers: u32_at(packet, 12),
                    seeders: u32_at(packet, 16),
                    peers,
                })
            }
            ACTION_SCRAPE => Ok(Response::Scrape {
                transaction_id,
                stats: packet[8..]
                    .chunks_exact(12)
                    .map(|s| ScrapeStats {
                        complete: u32_at(s, 0),
                        downloaded: u32_at(s, 4),
                        incomplete: u32_at(s, 8),
                    })
                    .collect(),
            }),
            ACTION_ERROR => {
                let text = &packet[8..];
                let text = &text[..text.len().min(MAX_ERROR_LEN)];
                Ok(Response::Error {
                    transaction_id,
                    message: String::from_utf8_lossy(text).into_owned(),
                })
            }
            other => Err(UdpError::UnknownAction(other)),
        }
    }
}

fn bytes_at<const N: usize>(packet: &[u8], at: usize) -> [u8; N] {
    packet[at..at + N].try_into().expect("length checked")
}

fn u32_at(packet: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes_at(packet, at))
}

fn u64_at(packet: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes_at(packet, at))
}

#[cfg(test)]
mod tests;
