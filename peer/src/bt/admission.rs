//! Which accepted connections the listener keeps (pure; time is passed in).
//!
//! An accepted connection is *handshaking* until the peer's handshake is in,
//! then *established* until it closes. Two limits apply, and neither touches
//! `--max-peers`, which counts only registered sessions (`shared::register`):
//! - at most [`Limits::handshakes`] connections handshaking at once. When a
//!   new one arrives at the cap, the **oldest** handshaking connection is
//!   closed to make room, and the new one is taken. Refusing the newcomer
//!   instead would let a flood that keeps the slots full lock every honest
//!   peer out until the flood's connections time out; closing the oldest
//!   costs an honest peer nothing, because its handshake comes right behind
//!   its connect and is in long before `handshakes` newer arrivals push it
//!   out, while an attacker's stalled connection is the oldest soon enough.
//! - at most [`Limits::per_ip`] connections, handshaking or established,
//!   from one address (an IPv6 address counts by its /64, which one host
//!   usually holds whole). A connection over it is refused at once: it
//!   would only take room from other addresses.
//!
//! Invariants: every open [`Ticket`] is counted once in `per_ip` under its
//! address; `handshaking` holds exactly the open tickets still in their
//! handshake, and never more than the cap.

use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, Ipv6Addr},
    time::{Duration, Instant},
};

/// Handshakes in progress at once, by default. An honest handshake is in
/// within a round trip of the connect, so even all 50 default peers arriving
/// together fit; under a flood the cap bounds the descriptors spent on
/// strangers (64 handshakes and 50 peers stay far below the usual limit of
/// 1,024), and 64 newer arrivals must come in before an honest peer that
/// connected first, and has sent its handshake, is pushed out.
pub const MAX_HANDSHAKES: usize = 64;
/// Connections from one address, by default (`--max-per-ip`). libtorrent
/// and Transmission allow one per torrent; three leave room for two or three
/// clients behind one NAT, or a reconnect racing the close of the connection
/// it replaces, while one host still holds at most 3 of the 64 handshake
/// slots and 3 of the peer slots.
pub const MAX_PER_IP: usize = 3;
/// How often, at most, the listener summarises what it shed while a limit
/// keeps biting; after a quiet period this long the next bite warns again.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub handshakes: usize,
    pub per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshakes: MAX_HANDSHAKES,
            per_ip: MAX_PER_IP,
        }
    }
}

/// One admitted connection; tickets grow in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

/// What to do with a new connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Take it; first close `evict`, the oldest handshaking connection.
    Admit {
        ticket: Ticket,
        evict: Option<Ticket>,
    },
    /// Close it at once: its address has `per_ip` connections already.
    TooManyFromAddress,
}

/// What the listener should say about shedding connections (rate-limited).
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// The handshake cap began to bite: warn once.
    HandshakesFull { cap: usize },
    /// The per-address limit began to bite, first for `ip`: warn once.
    PerIpFull { ip: IpAddr, limit: usize },
    /// Still shedding: what since the last report (at most once a period).
    Shed { evicted: u64, refused: u64 },
}

/// The key an address is counted under: IPv4 as it is (also when mapped
/// into IPv6), IPv6 by its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

#[derive(Debug)]
struct Open {
    key: IpAddr,
    handshaking: bool,
}

/// Counts of shedding for the rate-limited log.
#[derive(Debug, Default)]
struct Pressure {
    evicted: u64,
    refused: u64,
    /// A limit bit and was said; when the last report went out.
    since: Option<Instant>,
    said_full: bool,
    said_per_ip: bool,
    first_refused: Option<IpAddr>,
}

/// The listener's admission state.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    next: u64,
    open: HashMap<Ticket, Open>,
    /// Handshaking tickets, oldest first.
    handshaking: BTreeSet<Ticket>,
    per_ip: HashMap<IpAddr, usize>,
    pressure: Pressure,
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Admission {
            limits: Limits {
                handshakes: limits.handshakes.max(1),
                per_ip: limits.per_ip.max(1),
            },
            next: 0,
            open: HashMap::new(),
            handshaking: BTreeSet::new(),
            per_ip: HashMap::new(),
            pressure: Pressure::default(),
        }
    }

    /// A connection from `ip` was accepted.
    pub fn admit(&mut self, ip: IpAddr) -> Verdict {
        let key = address_key(ip);
        let count = self.per_ip.get(&key).copied().unwrap_or(0);
        if count >= self.limits.per_ip {
            self.pressure.refused += 1;
            self.pressure.first_refused.get_or_insert(ip);
            return Verdict::TooManyFromAddress;
        }
        let evict = if self.handshaking.len() >= self.limits.handshakes {
            let &oldest = self.handshaking.first().expect("at the cap, not empty");
            self.close(oldest);
            self.pressure.evicted += 1;
            Some(oldest)
        } else {
            None
        };
        let ticket = Ticket(self.next);
        self.next += 1;
        self.open.insert(
            ticket,
            Open {
                key,
                handshaking: true,
            },
        );
        self.handshaking.insert(ticket);
        *self.per_ip.entry(key).or_insert(0) += 1;
        Verdict::Admit { ticket, evict }
    }

    /// The connection's handshake is in: it no longer takes a handshake
    /// slot, and stays counted for its address until [`Admission::close`].
    /// False when the ticket was closed meanwhile (evicted just as its
    /// handshake came in): the connection must be dropped.
    pub fn handshaken(&mut self, ticket: Ticket) -> bool {
        match self.open.get_mut(&ticket) {
            Some(open) if open.handshaking => {
                open.handshaking = false;
                self.handshaking.remove(&ticket);
                true
            }
            _ => false,
        }
    }

    /// The connection closed (or was evicted); a closed ticket is ignored.
    pub fn close(&mut self, ticket: Ticket) {
        let Some(open) = self.open.remove(&ticket) else {
            return;
        };
        if open.handshaking {
            self.handshaking.remove(&ticket);
        }
        if let Some(count) = self.per_ip.get_mut(&open.key) {
            *count -= 1;
            if *count == 0 {
                self.per_ip.remove(&open.key);
            }
        }
    }

    /// Connections handshaking now.
    pub fn handshaking(&self) -> usize {
        self.handshaking.len()
    }

    /// Connections open from `ip`'s address.
    pub fn from_address(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&address_key(ip)).copied().unwrap_or(0)
    }

    /// What to log now about shedding, if anything: each limit is warned of
    /// once when it starts biting, then what was shed is summed up at most
    /// once per [`REPORT_EVERY`]; a period with nothing shed ends the
    /// episode, and the next bite warns again.
    pub fn report(&mut self, now: Instant) -> Option<Report> {
        let p = &mut self.pressure;
        if p.evicted > 0 && !p.said_full {
            p.said_full = true;
            p.since.get_or_insert(now);
            p.evicted -= 1; // this one is in the warning
            return Some(Report::HandshakesFull {
                cap: self.limits.handshakes,
            });
        }
        if let (Some(ip), false) = (p.first_refused, p.said_per_ip) {
            p.said_per_ip = true;
            p.since.get_or_insert(now);
            p.refused -= 1;
            return Some(Report::PerIpFull {
                ip,
                limit: self.limits.per_ip,
            });
        }
        let since = p.since?;
        if now.duration_since(since) < REPORT_EVERY {
            return None;
        }
        let (evicted, refused) = (p.evicted, p.refused);
        if evicted == 0 && refused == 0 {
            *p = Pressure::default();
            return None;
        }
        p.evicted = 0;
        p.refused = 0;
        p.since = Some(now);
        Some(Report::Shed { evicted, refused })
    }
}

#[cfg(test)]
mod tests;
