//! UDP connection ids (BEP 15) with nothing stored per client.
//!
//! A connection id proves that its sender received our connect reply at the
//! address it sends from, so a forged source address cannot make the tracker
//! answer an announce or scrape to a victim. Instead of remembering every id
//! issued, the id is a keyed hash of the client's IP and a coarse clock: the
//! tracker can recompute it from the packet alone.
//!
//! - The hash is SipHash-2-4 (`siphasher`), a MAC designed for short inputs,
//!   under a 128-bit key drawn at random when the tracker starts; the key
//!   never leaves the process, so ids cannot be computed without asking.
//! - The clock counts slots of [`SLOT_SECS`] (2 minutes). An id names the
//!   slot it was issued in and is accepted in that slot and the next, so it
//!   is valid for at least 2 minutes after issue (BEP 15's requirement) and
//!   at most 4. Clients reuse an id for one minute, so they never see one
//!   refused in normal use.
//! - The IP is taken canonical (an IPv4-mapped IPv6 address is its IPv4
//!   address), so a dual-stack socket gives an IPv4 client the same id over
//!   either family. The port is not part of it: a client may announce from
//!   another socket of the same host.
//! - Guessing an id for an address one does not receive at takes 2^63
//!   tries on average; a wrong id gets no reply at all, so a guesser learns
//!   nothing from trying.

use std::{hash::Hasher, net::IpAddr};

use siphasher::sip::SipHasher24;

/// Seconds of one slot of the connection-id clock.
pub const SLOT_SECS: u32 = 120;

/// Issues and checks connection ids.
#[derive(Clone)]
pub struct ConnectionIds {
    key: [u8; 16],
}

impl ConnectionIds {
    /// Ids under `key`; draw it at random (e.g. `rand::random()`).
    pub fn new(key: [u8; 16]) -> Self {
        ConnectionIds { key }
    }

    /// The id for a client at `ip`, at `now` (seconds on any steady clock).
    pub fn issue(&self, ip: IpAddr, now: u32) -> u64 {
        self.mac(ip, now / SLOT_SECS)
    }

    /// Whether `id` was issued to `ip` in this slot or the one before.
    pub fn valid(&self, id: u64, ip: IpAddr, now: u32) -> bool {
        let slot = now / SLOT_SECS;
        id == self.mac(ip, slot) || (slot > 0 && id == self.mac(ip, slot - 1))
    }

    fn mac(&self, ip: IpAddr, slot: u32) -> u64 {
        let octets = match ip.to_canonical() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let mut hasher = SipHasher24::new_with_key(&self.key);
        hasher.write(&octets);
        hasher.write(&slot.to_le_bytes());
        hasher.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> ConnectionIds {
        ConnectionIds::new([7; 16])
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn an_id_is_valid_for_two_to_four_minutes() {
        let ids = ids();
        // Issued at the very end of a slot: still valid 2 minutes later.
        let late = 2 * SLOT_SECS - 1;
        let id = ids.issue(IP, late);
        assert!(ids.valid(id, IP, late));
        assert!(ids.valid(id, IP, late + SLOT_SECS));
        assert!(
            !ids.valid(id, IP, late + SLOT_SECS + 1),
            "gone after the next slot"
        );
        // Issued at the start of a slot: valid for just under 4 minutes.
        let early = 2 * SLOT_SECS;
        let id = ids.issue(IP, early);
        assert!(ids.valid(id, IP, early + 2 * SLOT_SECS - 1));
        assert!(!ids.valid(id, IP, early + 2 * SLOT_SECS));
        assert!(!ids.valid(id, IP, early - 1), "not before it was issued");
    }

    #[test]
    fn an_id_belongs_to_one_address_and_one_key() {
        let ids = ids();
        let id = ids.issue(IP, 10);
        let other: IpAddr = "127.0.0.3".parse().unwrap();
        assert!(!ids.valid(id, other, 10));
        assert!(!ConnectionIds::new([8; 16]).valid(id, IP, 10));
        assert!(!ids.valid(id ^ 1, IP, 10), "a forged id");
        // The same client over a dual-stack socket: the same id.
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert!(ids.valid(id, mapped, 10));
        let v6: IpAddr = "::1".parse().unwrap();
        assert!(ids.valid(ids.issue(v6, 10), v6, 10));
        assert!(!ids.valid(id, v6, 10));
    }
}
