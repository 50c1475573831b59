use rand::{rngs::StdRng, SeedableRng};

use super::*;

fn node(id: NodeId, port: u16) -> NodeInfo {
    NodeInfo {
        id,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// An id whose first byte is `first` and the rest `rest`.
fn id(first: u8, rest: u8) -> NodeId {
    let mut bytes = [rest; 20];
    bytes[0] = first;
    NodeId(bytes)
}

#[test]
fn the_bucket_of_our_own_id_splits_and_far_buckets_stay_at_k() {
    let now = Instant::now();
    let own = NodeId([0; 20]);
    let mut table = RoutingTable::new(own, now);
    let mut rng = StdRng::seed_from_u64(1);
    for port in 1..=2000u16 {
        table.replied(node(NodeId(rng.random()), port), now);
    }
    // Random ids share about one more bit with ours per halving: the far
    // half of the id space keeps K, the table reaches depth ~log2(2000/K).
    assert!(table.bucket_count() >= 6, "{}", table.bucket_count());
    for depth in 0..table.bucket_count() - 1 {
        let in_bucket = table
            .entries()
            .filter(|e| own.common_prefix_len(&e.info.id) == depth)
            .count();
        assert!(in_bucket <= K);
    }
    assert!(table.len() <= K * table.bucket_count());
    // The node nearest our id is never dropped for a far one.
    let near = id(0, 1);
    assert_eq!(table.replied(node(near, 9999), now), Seen::InTable);
    assert_eq!(table.closest(&own, 1)[0].id, near);
}

#[test]
fn a_full_bucket_caches_newcomers_until_a_node_goes_bad() {
    let now = Instant::now();
    let mut table = RoutingTable::new(NodeId([0; 20]), now);
    // Split once so that the ids starting with a 1 bit have a bucket that
    // cannot split again.
    for i in 0..K as u8 {
        table.replied(node(id(0x80 | i, 0), 100 + u16::from(i)), now);
    }
    for i in 0..K as u8 + 1 {
        table.replied(node(id(0x01, i), 200 + u16::from(i)), now);
    }
    assert!(table.bucket_count() >= 2);
    let newcomer = node(id(0xff, 0xff), 300);
    assert_eq!(table.replied(newcomer, now), Seen::Cached);
    assert!(!table.contains(&newcomer.id));
    let victim = id(0x80, 0);
    table.failed(&victim, now);
    assert!(table.contains(&victim), "one failure is not bad yet");
    table.failed(&victim, now);
    assert!(!table.contains(&victim));
    assert!(
        table.contains(&newcomer.id),
        "the cached node took its place"
    );
}

#[test]
fn a_questionable_node_is_pinged_before_it_is_replaced() {
    let start = Instant::now();
    let mut table = RoutingTable::new(NodeId([0; 20]), start);
    for i in 0..K as u8 {
        table.replied(node(id(0x80 | i, 0), 100 + u16::from(i)), start);
    }
    for i in 0..K as u8 + 1 {
        table.replied(node(id(0x01, i), 200 + u16::from(i)), start);
    }
    let later = start + GOOD_FOR + Duration::from_secs(1);
    let Seen::PingFirst(old) = table.replied(node(id(0xfe, 0), 400), later) else {
        panic!("a questionable node to ping first")
    };
    assert!(old.id.0[0] & 0x80 != 0);
    assert!(table.to_ping(later, 100).contains(&old));
}

#[test]
fn one_node_per_ip_except_on_loopback_and_our_own_id_refused() {
    let now = Instant::now();
    let own = NodeId([0; 20]);
    let mut table = RoutingTable::new(own, now);
    let at = |ip: [u8; 4], port| SocketAddr::from((ip, port));
    let first = NodeInfo {
        id: id(0x80, 1),
        addr: at([192, 0, 2, 1], 1),
    };
    let same_ip = NodeInfo {
        id: id(0x40, 1),
        addr: at([192, 0, 2, 1], 2),
    };
    assert_eq!(table.replied(first, now), Seen::InTable);
    assert_eq!(table.replied(same_ip, now), Seen::Refused);
    assert_eq!(table.replied(node(id(0x40, 2), 1), now), Seen::InTable);
    assert_eq!(table.replied(node(id(0x20, 2), 2), now), Seen::InTable);
    assert_eq!(table.replied(node(own, 3), now), Seen::Refused);
    // A known id from another address does not move it.
    assert_eq!(table.replied(node(id(0x40, 2), 77), now), Seen::Refused);
}

#[test]
fn closest_is_sorted_by_xor_distance_and_skips_bad_nodes() {
    let now = Instant::now();
    let mut table = RoutingTable::new(NodeId([0; 20]), now);
    for first in [0x10u8, 0x20, 0x30, 0x40] {
        table.replied(node(id(first, 0), u16::from(first)), now);
    }
    let target = id(0x31, 0);
    let ids: Vec<u8> = table
        .closest(&target, 3)
        .iter()
        .map(|n| n.id.0[0])
        .collect();
    assert_eq!(ids, vec![0x30, 0x20, 0x10]);
    table.failed(&id(0x30, 0), now);
    table.failed(&id(0x30, 0), now);
    assert_eq!(table.closest(&target, 1)[0].id.0[0], 0x20);
}

#[test]
fn refresh_targets_fall_in_their_bucket_and_come_when_stale() {
    let start = Instant::now();
    let own = NodeId([0x5a; 20]);
    let mut table = RoutingTable::new(own, start);
    let mut rng = StdRng::seed_from_u64(3);
    for port in 1..=200u16 {
        table.replied(node(NodeId(rng.random()), port), start);
    }
    assert!(table.refresh_targets(start, &mut rng).is_empty());
    let later = start + GOOD_FOR;
    let targets = table.refresh_targets(later, &mut rng);
    let buckets = table.bucket_count();
    assert_eq!(targets.len(), buckets);
    for (depth, target) in targets.iter().enumerate() {
        let shared = own.common_prefix_len(target);
        if depth == buckets - 1 {
            assert!(shared >= depth);
        } else {
            assert_eq!(shared, depth);
        }
    }
    assert!(table.refresh_targets(later, &mut rng).is_empty());
}
