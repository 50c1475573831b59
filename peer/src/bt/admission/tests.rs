use std::net::Ipv4Addr;

use rand::{rngs::StdRng, Rng, SeedableRng};

use super::*;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn limits(handshakes: usize, per_ip: usize) -> Limits {
    Limits { handshakes, per_ip }
}

fn admitted(verdict: Verdict) -> (Ticket, Option<Ticket>) {
    match verdict {
        Verdict::Admit { ticket, evict } => (ticket, evict),
        other => panic!("expected an admission, got {other:?}"),
    }
}

impl Admission {
    /// The invariants of the module doc, checked from scratch.
    fn check(&self) {
        assert!(self.handshaking.len() <= self.limits.handshakes);
        for ticket in &self.handshaking {
            assert!(
                self.open[ticket].handshaking,
                "{ticket:?} is open and handshaking"
            );
        }
        let handshaking = self.open.values().filter(|o| o.handshaking).count();
        assert_eq!(handshaking, self.handshaking.len());
        let mut counted: HashMap<IpAddr, usize> = HashMap::new();
        for open in self.open.values() {
            *counted.entry(open.key).or_default() += 1;
        }
        assert_eq!(counted, self.per_ip);
        assert!(self
            .per_ip
            .values()
            .all(|&n| 0 < n && n <= self.limits.per_ip));
    }
}

#[test]
fn at_the_cap_each_newcomer_closes_the_oldest_handshake() {
    let mut admission = Admission::new(limits(3, 10));
    let first: Vec<Ticket> = (1..=3)
        .map(|n| admitted(admission.admit(ip(n))))
        .map(|(ticket, evict)| {
            assert_eq!(evict, None, "room below the cap");
            ticket
        })
        .collect();
    // Oldest first, one per newcomer.
    for (n, oldest) in (4..=6).zip(&first) {
        let (_, evict) = admitted(admission.admit(ip(n)));
        assert_eq!(evict, Some(*oldest));
        assert_eq!(admission.handshaking(), 3);
        admission.check();
    }
    // An evicted connection's address is free again.
    assert_eq!(admission.from_address(ip(1)), 0);
}

#[test]
fn a_finished_handshake_frees_its_slot_but_still_counts_for_its_address() {
    let mut admission = Admission::new(limits(2, 2));
    let (a, _) = admitted(admission.admit(ip(1)));
    let (b, _) = admitted(admission.admit(ip(1)));
    assert!(admission.handshaken(a));
    assert_eq!(admission.handshaking(), 1);
    // A third from the same address is refused though only one handshakes.
    assert_eq!(admission.admit(ip(1)), Verdict::TooManyFromAddress);
    // Another address takes the free slot without evicting anyone.
    assert_eq!(admitted(admission.admit(ip(2))).1, None);
    // The next one at the cap evicts the oldest *handshaking* one, b, not
    // the established a.
    assert_eq!(admitted(admission.admit(ip(3))).1, Some(b));
    admission.check();
    // Once a closes, its address has room again.
    admission.close(a);
    assert_eq!(admission.from_address(ip(1)), 0);
    assert!(matches!(admission.admit(ip(1)), Verdict::Admit { .. }));
    admission.check();
}

#[test]
fn the_per_address_limit_refuses_newcomers_and_evicts_nobody() {
    let mut admission = Admission::new(limits(64, 3));
    let tickets: Vec<Ticket> = (0..3).map(|_| admitted(admission.admit(ip(7))).0).collect();
    for _ in 0..10 {
        assert_eq!(admission.admit(ip(7)), Verdict::TooManyFromAddress);
    }
    assert_eq!(admission.from_address(ip(7)), 3);
    assert_eq!(admission.handshaking(), 3, "refusals take no slot");
    assert_eq!(admitted(admission.admit(ip(8))).1, None);
    admission.close(tickets[1]);
    assert!(matches!(admission.admit(ip(7)), Verdict::Admit { .. }));
    admission.check();
}

#[test]
fn an_evicted_or_closed_ticket_is_ignored_afterwards() {
    let mut admission = Admission::new(limits(1, 5));
    let (old, _) = admitted(admission.admit(ip(1)));
    let (new, evict) = admitted(admission.admit(ip(2)));
    assert_eq!(evict, Some(old));
    // Its handshake came in just as it was evicted: it must be dropped.
    assert!(!admission.handshaken(old));
    admission.close(old); // its task ends later: nothing changes
    assert_eq!(admission.from_address(ip(2)), 1);
    assert!(admission.handshaken(new));
    assert!(!admission.handshaken(new), "only once");
    admission.close(new);
    admission.close(new);
    assert_eq!(admission.from_address(ip(2)), 0);
    admission.check();
}

#[test]
fn ipv6_counts_by_its_slash_64_and_mapped_ipv4_as_ipv4() {
    let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(address_key(a), address_key(b));
    assert_ne!(address_key(a), address_key(other));
    let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    assert_eq!(address_key(mapped), ip(1));

    let mut admission = Admission::new(limits(64, 2));
    admitted(admission.admit(a));
    admitted(admission.admit(b));
    assert_eq!(admission.admit(a), Verdict::TooManyFromAddress);
    assert!(matches!(admission.admit(other), Verdict::Admit { .. }));
    admitted(admission.admit(mapped));
    admitted(admission.admit(ip(1)));
    assert_eq!(admission.admit(ip(1)), Verdict::TooManyFromAddress);
}

#[test]
fn each_limit_is_warned_of_once_then_summed_up_at_most_once_a_period() {
    let start = Instant::now();
    let mut admission = Admission::new(limits(1, 1));
    assert_eq!(admission.report(start), None, "nothing shed yet");
    admitted(admission.admit(ip(1)));
    assert_eq!(admission.report(start), None);
    admitted(admission.admit(ip(2))); // evicts
    assert_eq!(admission.admit(ip(2)), Verdict::TooManyFromAddress);
    assert_eq!(
        admission.report(start),
        Some(Report::HandshakesFull { cap: 1 })
    );
    assert_eq!(
        admission.report(start),
        Some(Report::PerIpFull {
            ip: ip(2),
            limit: 1
        })
    );
    assert_eq!(admission.report(start), None);
    // More shedding within the period: said later, summed.
    let mut now = start;
    for n in 3..=12 {
        now += Duration::from_secs(1);
        admitted(admission.admit(ip(n)));
        assert_eq!(admission.admit(ip(n)), Verdict::TooManyFromAddress);
        assert_eq!(admission.report(now), None, "within the period");
    }
    assert_eq!(
        admission.report(start + REPORT_EVERY),
        Some(Report::Shed {
            evicted: 10,
            refused: 10
        })
    );
    // A quiet period ends the episode; the next bite warns again.
    assert_eq!(admission.report(start + 2 * REPORT_EVERY), None);
    let later = start + 3 * REPORT_EVERY;
    admitted(admission.admit(ip(100)));
    assert_eq!(
        admission.report(later),
        Some(Report::HandshakesFull { cap: 1 })
    );
}

/// Any sequence of arrivals, finished handshakes and closes keeps the
/// invariants, and the cap and per-address limit hold throughout.
#[test]
fn random_traffic_keeps_the_invariants() {
    let mut rng = StdRng::seed_from_u64(16);
    for _ in 0..50 {
        let cap = rng.random_range(1..8);
        let per_ip = rng.random_range(1..4);
        let mut admission = Admission::new(limits(cap, per_ip));
        let mut live: Vec<Ticket> = Vec::new();
        for _ in 0..500 {
            match rng.random_range(0..4) {
                0 | 1 => {
                    if let Verdict::Admit { ticket, evict } =
                        admission.admit(ip(rng.random_range(0..6)))
                    {
                        live.push(ticket);
                        live.retain(|t| Some(*t) != evict);
                    }
                }
                2 if !live.is_empty() => {
                    let ticket = live[rng.random_range(0..live.len())];
                    admission.handshaken(ticket);
                }
                3 if !live.is_empty() => {
                    let ticket = live.swap_remove(rng.random_range(0..live.len()));
                    admission.close(ticket);
                }
                _ => {}
            }
            admission.check();
            assert_eq!(admission.open.len(), live.len());
        }
    }
}
