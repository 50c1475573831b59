use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `count` connections admitted one second apart from `t0`, handles 0, 1, ...
fn filled(capacity: usize, count: usize, t0: Instant) -> (Slots<usize>, Vec<SlotId>) {
    let mut slots = Slots::new(capacity);
    let ids = (0..count)
        .map(|i| {
            let (id, admission) = slots.admit(t0 + secs(i as f64), i).unwrap();
            assert_eq!(admission, Admission::Free);
            id
        })
        .collect();
    (slots, ids)
}

#[test]
fn the_head_deadline_tightens_from_half_full_to_full() {
    let t0 = Instant::now();
    let expected = [(0, 30.0), (2, 30.0), (3, 16.0), (4, 2.0)];
    for (taken, initial) in expected {
        let (slots, _) = filled(4, taken, t0);
        assert_eq!(
            slots.initial_deadline(),
            secs(initial),
            "{taken} of 4 taken"
        );
    }
    let (slots, _) = filled(256, 192, t0);
    assert_eq!(slots.initial_deadline(), secs(16.0));
    let (slots, _) = filled(256, 255, t0);
    assert!(slots.initial_deadline() < secs(2.25), "nearly full");
    let (slots, _) = filled(1, 1, t0);
    assert_eq!(slots.initial_deadline(), TIGHT);
}

#[test]
fn bytes_received_earn_time_at_the_minimum_rate_up_to_twice_the_deadline() {
    let t0 = Instant::now();
    let (mut slots, ids) = filled(4, 1, t0);
    let id = ids[0];
    assert_eq!(slots.deadline(id), Some(t0 + LOOSE));
    slots.received(id, 1000);
    assert_eq!(slots.deadline(id), Some(t0 + LOOSE + secs(2.0)));
    slots.received(id, 15_000);
    assert_eq!(slots.deadline(id), Some(t0 + 2 * LOOSE));
    // Full, a 25-byte partial head gets 2 s and 50 ms; a trickle no more than 4 s.
    let (mut full, ids) = filled(2, 2, t0);
    full.received(ids[0], 25);
    assert_eq!(full.deadline(ids[0]), Some(t0 + secs(2.05)));
    full.received(ids[0], 1 << 20);
    assert_eq!(full.deadline(ids[0]), Some(t0 + 2 * TIGHT));
}

#[test]
fn a_full_table_gives_the_longest_waiting_slot_to_the_newcomer_never_a_busy_one() {
    let t0 = Instant::now();
    let (mut slots, ids) = filled(3, 3, t0);
    assert!(slots.head_complete(ids[1]));
    let (d, admission) = slots.admit(t0 + secs(10.0), 3).unwrap();
    assert_eq!(admission, Admission::Evicted(0));
    let (_, admission) = slots.admit(t0 + secs(11.0), 4).unwrap();
    assert_eq!(admission, Admission::Evicted(2));
    let (_, admission) = slots.admit(t0 + secs(12.0), 5).unwrap();
    assert_eq!(admission, Admission::Evicted(3));
    assert_eq!(slots.taken(), 3);
    assert!(!slots.head_complete(d), "an evicted connection must close");
    assert_eq!(slots.closed_counts(), (3, 0));
}

#[test]
fn with_every_slot_busy_nobody_is_admitted_until_one_waits_or_leaves() {
    let t0 = Instant::now();
    let (mut slots, ids) = filled(2, 2, t0);
    for &id in &ids {
        assert!(slots.head_complete(id));
    }
    assert!(!slots.has_room());
    assert_eq!(slots.admit(t0, 9), None);
    // A keep-alive connection that finished its reply waits again, from now.
    slots.wait_for_head(ids[0], t0 + secs(5.0), 0);
    assert!(slots.has_room());
    assert_eq!(slots.deadline(ids[0]), Some(t0 + secs(5.0) + TIGHT));
    let (_, admission) = slots.admit(t0 + secs(6.0), 9).unwrap();
    assert_eq!(admission, Admission::Evicted(0));
    slots.release(ids[1]);
    let (_, admission) = slots.admit(t0 + secs(7.0), 10).unwrap();
    assert_eq!(admission, Admission::Free);
}

#[test]
fn expiry_closes_late_heads_at_the_present_occupancy() {
    let t0 = Instant::now();
    // Four of four taken: 2 s each; the oldest sent a fast partial head.
    let (mut slots, ids) = filled(4, 4, t0);
    slots.received(ids[0], 3000);
    assert_eq!(
        slots.next_deadline(),
        Some(t0 + secs(3.0)),
        "ids[1]: 1 s + 2 s"
    );
    assert!(slots.expire(t0 + secs(2.9)).is_empty());
    assert_eq!(slots.expire(t0 + secs(3.0)), [1]);
    // Three of four taken now: 16 s, and ids[0] earned 6 s more.
    assert_eq!(slots.deadline(ids[0]), Some(t0 + secs(22.0)));
    assert_eq!(slots.next_deadline(), Some(t0 + secs(18.0)), "ids[2]");
    assert_eq!(slots.expire(t0 + secs(18.5)), [2]);
    // Half full: 30 s.
    assert_eq!(slots.next_deadline(), Some(t0 + secs(33.0)), "ids[3]");
    assert_eq!(slots.expire(t0 + secs(36.0)), [0, 3]);
    assert_eq!(slots.next_deadline(), None);
    assert_eq!(slots.closed_counts(), (0, 4));
    assert!(!slots.head_complete(ids[0]));
}

#[test]
fn busy_connections_have_no_deadline() {
    let t0 = Instant::now();
    let (mut slots, ids) = filled(1, 1, t0);
    assert!(slots.head_complete(ids[0]));
    assert_eq!(slots.deadline(ids[0]), None);
    assert_eq!(slots.next_deadline(), None);
    assert!(slots.expire(t0 + secs(1e6)).is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Admit,
    Receive(usize, u16),
    Complete(usize),
    Wait(usize),
    Release(usize),
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Admit),
        2 => (any::<usize>(), any::<u16>()).prop_map(|(i, n)| Op::Receive(i, n)),
        2 => any::<usize>().prop_map(Op::Complete),
        1 => any::<usize>().prop_map(Op::Wait),
        1 => any::<usize>().prop_map(Op::Release),
        1 => Just(Op::Expire),
    ]
}

/// A connection the slots closed: it was open and not busy.
fn close(conns: &mut [(SlotId, bool, bool)], handle: usize) -> Result<(), TestCaseError> {
    let conn = &mut conns[handle];
    prop_assert!(conn.1, "handle {} closed twice", handle);
    prop_assert!(!conn.2, "busy handle {} was closed", handle);
    conn.1 = false;
    Ok(())
}

proptest! {
    /// Whatever happens, the slots never hold more than their capacity, a
    /// busy connection is never evicted or expired, and every handle is
    /// closed at most once.
    #[test]
    fn busy_slots_are_never_taken_and_the_capacity_holds(
        capacity in 1usize..6,
        ops in proptest::collection::vec((op(), 0u64..3000), 1..200),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut slots = Slots::new(capacity);
        // Per handle: its id and whether it is open, busy.
        let mut conns: Vec<(SlotId, bool, bool)> = Vec::new();
        for (op, step_ms) in ops {
            now += Duration::from_millis(step_ms);
            let open: Vec<usize> = (0..conns.len()).filter(|&h| conns[h].1).collect();
            let pick = |i: usize| open.get(i % open.len().max(1)).copied();
            match op {
                Op::Admit => {
                    let room = slots.has_room();
                    match slots.admit(now, conns.len()) {
                        Some((id, admission)) => {
                            prop_assert!(room);
                            conns.push((id, true, false));
                            if let Admission::Evicted(victim) = admission {
                                close(&mut conns, victim)?;
                            }
                        }
                        None => prop_assert!(!room),
                    }
                }
                Op::Receive(i, n) => if let Some(h) = pick(i) {
                    slots.received(conns[h].0, u64::from(n));
                },
                Op::Complete(i) => if let Some(h) = pick(i) {
                    if !conns[h].2 {
                        prop_assert!(slots.head_complete(conns[h].0));
                        conns[h].2 = true;
                    }
                },
                Op::Wait(i) => if let Some(h) = pick(i) {
                    slots.wait_for_head(conns[h].0, now, 0);
                    conns[h].2 = false;
                },
                Op::Release(i) => if let Some(h) = pick(i) {
                    slots.release(conns[h].0);
                    conns[h].1 = false;
                },
                Op::Expire => {
                    for handle in slots.expire(now) {
                        close(&mut conns, handle)?;
                    }
                    prop_assert!(slots.next_deadline().is_none_or(|at| at > now));
                }
            }
            let open = conns.iter().filter(|c| c.1).count();
            prop_assert_eq!(slots.taken(), open);
            prop_assert!(open <= capacity);
        }
    }
}
