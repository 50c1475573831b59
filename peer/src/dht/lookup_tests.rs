use rand::{rngs::StdRng, Rng, SeedableRng};

use super::*;

fn node(id: NodeId, n: u32) -> NodeInfo {
    let [_, a, b, c] = n.to_be_bytes();
    NodeInfo {
        id,
        addr: SocketAddr::from(([127, a, b, c], 6881)),
    }
}

/// `count` random nodes; each answers with the `K` nodes it knows (a random
/// quarter of all) closest to the target, as a real node would from its table.
struct Network {
    nodes: Vec<NodeInfo>,
    known: Vec<Vec<NodeInfo>>,
}

impl Network {
    fn new(count: u32, rng: &mut StdRng) -> Self {
        let nodes: Vec<NodeInfo> = (1..=count).map(|n| node(NodeId(rng.random()), n)).collect();
        let known = nodes
            .iter()
            .map(|_| {
                nodes
                    .iter()
                    .filter(|_| rng.random_ratio(1, 4))
                    .copied()
                    .collect()
            })
            .collect();
        Network { nodes, known }
    }

    fn answer(&self, asked: &NodeInfo, target: &NodeId) -> Reply {
        let at = self.nodes.iter().position(|n| n == asked).unwrap();
        let mut nodes = self.known[at].clone();
        nodes.sort_by_key(|n| n.id.distance(target));
        nodes.truncate(K);
        Reply {
            nodes,
            ..Reply::default()
        }
    }
}

/// Runs a lookup to the end, answering α queries per round.
fn run(lookup: &mut Lookup, network: &Network, silent: &[SocketAddr], now: Instant) {
    while !lookup.is_done(now) {
        let mut asked = Vec::new();
        while let Some(next) = lookup.next_query(now) {
            asked.push(next);
        }
        assert!(asked.len() <= ALPHA);
        for node in asked {
            if silent.contains(&node.addr) {
                lookup.failed(node.addr);
            } else {
                lookup.replied(node.addr, &network.answer(&node, &lookup.target()));
            }
        }
    }
}

#[test]
fn a_lookup_converges_on_the_k_closest_nodes() {
    let mut rng = StdRng::seed_from_u64(7);
    let network = Network::new(1000, &mut rng);
    let now = Instant::now();
    let mut queries = Vec::new();
    let mut closest_found = 0;
    for _ in 0..20 {
        let target = NodeId(rng.random());
        let seeds: Vec<NodeInfo> = network.nodes[..3].to_vec();
        let mut lookup = Lookup::new(target, &seeds, now);
        run(&mut lookup, &network, &[], now);
        let mut truth = network.nodes.clone();
        truth.sort_by_key(|n| n.id.distance(&target));
        let found: Vec<NodeId> = lookup.closest_replied().iter().map(|(n, _)| n.id).collect();
        assert_eq!(found.len(), K);
        let ranks: Vec<usize> = found
            .iter()
            .map(|f| truth.iter().position(|t| t.id == *f).unwrap())
            .collect();
        assert!(ranks.iter().all(|&r| r < 2 * K), "{ranks:?}");
        closest_found += usize::from(ranks[0] == 0);
        queries.push(lookup.queries());
    }
    // Each node here knows a random quarter of the others, so now and then
    // none of the nodes asked knows the very closest one.
    assert!(
        closest_found >= 17,
        "closest found in {closest_found} of 20"
    );
    queries.sort();
    assert!(queries[queries.len() - 1] < MAX_QUERIES, "{queries:?}");
}

#[test]
fn silent_nodes_fail_and_the_lookup_still_ends() {
    let mut rng = StdRng::seed_from_u64(8);
    let network = Network::new(300, &mut rng);
    let silent: Vec<SocketAddr> = network.nodes.iter().step_by(2).map(|n| n.addr).collect();
    let now = Instant::now();
    let target = NodeId(rng.random());
    let mut lookup = Lookup::new(target, &network.nodes[..8], now);
    run(&mut lookup, &network, &silent, now);
    assert!(lookup
        .closest_replied()
        .iter()
        .all(|(n, _)| !silent.contains(&n.addr)));
    assert!(!lookup.closest_replied().is_empty());
}

#[test]
fn a_flood_of_nodes_in_replies_keeps_the_lookup_bounded() {
    let now = Instant::now();
    let target = NodeId([0; 20]);
    let liar = node(NodeId([0xff; 20]), 1);
    let mut lookup = Lookup::new(target, &[liar], now);
    let mut n = 2;
    let mut sent = 0;
    // Every node answers with 64 new nodes, each closer than the last.
    while let Some(asked) = lookup.next_query(now) {
        sent += 1;
        let nodes: Vec<NodeInfo> = (0..64)
            .map(|_| {
                n += 1;
                let mut id = [0u8; 20];
                id[4..8].copy_from_slice(&(u32::MAX - n).to_be_bytes());
                node(NodeId(id), n)
            })
            .collect();
        lookup.replied(
            asked.addr,
            &Reply {
                nodes,
                ..Reply::default()
            },
        );
        assert!(lookup.candidates.len() <= MAX_CANDIDATES);
    }
    assert_eq!(sent, MAX_QUERIES);
    assert!(lookup.is_done(now));
}

#[test]
fn peers_are_gathered_once_and_tokens_kept_for_the_announce() {
    let now = Instant::now();
    let a = node(NodeId([1; 20]), 1);
    let b = node(NodeId([2; 20]), 2);
    let mut lookup = Lookup::new(NodeId([0; 20]), &[a, b], now);
    let first = lookup.next_query(now).unwrap();
    let second = lookup.next_query(now).unwrap();
    let peer: SocketAddr = "127.0.0.9:6881".parse().unwrap();
    let reply = |token: &[u8]| Reply {
        values: vec![peer],
        token: Some(token.to_vec()),
        ..Reply::default()
    };
    assert_eq!(lookup.replied(first.addr, &reply(b"t1")), vec![peer]);
    assert!(lookup.replied(second.addr, &reply(b"t2")).is_empty());
    // A reply from an address never asked changes nothing.
    assert!(lookup
        .replied("127.0.0.99:1".parse().unwrap(), &reply(b"x"))
        .is_empty());
    assert!(lookup.is_done(now));
    let tokens: Vec<_> = lookup
        .closest_replied()
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(tokens, vec![Some(b"t1".to_vec()), Some(b"t2".to_vec())]);
    assert_eq!(lookup.peers_found(), 1);
}
