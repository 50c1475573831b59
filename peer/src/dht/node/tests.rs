use rand::{rngs::StdRng, SeedableRng};

use super::*;
use crate::dht::{limits::REPLIES_PER_SOURCE, limits::REPLY_BURST, tokens::ROTATE_EVERY};
use common::krpc::codes;

fn addr(n: u32) -> SocketAddr {
    let [_, a, b, c] = n.to_be_bytes();
    SocketAddr::from(([127, a, b, c], 6881))
}

/// Nodes on a perfect network: every datagram arrives at the next step.
struct Sim {
    nodes: Vec<Node<StdRng>>,
    now: Instant,
}

impl Sim {
    fn new(count: u32) -> Self {
        let now = Instant::now();
        let mut seeds = StdRng::seed_from_u64(42);
        let nodes = (0..count)
            .map(|_| {
                let mut node = Node::new(
                    NodeId(seeds.random()),
                    now,
                    StdRng::seed_from_u64(seeds.random()),
                );
                node.add_bootstrap(addr(1));
                node
            })
            .collect();
        Sim { nodes, now }
    }

    fn index(&self, to: SocketAddr) -> Option<usize> {
        let SocketAddr::V4(v4) = to else { return None };
        let n = u32::from_be_bytes(v4.ip().octets()) & 0x00ff_ffff;
        (n >= 1 && (n as usize) <= self.nodes.len()).then(|| n as usize - 1)
    }

    /// Delivers everything queued, then advances time by `step`.
    fn step(&mut self, step: Duration) {
        let mut moved = true;
        while moved {
            moved = false;
            for from in 0..self.nodes.len() {
                while let Some((to, datagram)) = self.nodes[from].poll_transmit() {
                    moved = true;
                    if let Some(to) = self.index(to) {
                        let now = self.now;
                        self.nodes[to].handle(addr(from as u32 + 1), &datagram, now);
                    }
                }
            }
        }
        self.now += step;
        for node in &mut self.nodes {
            node.tick(self.now);
        }
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Sim) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            self.step(Duration::from_millis(100));
            if done(self) {
                return true;
            }
        }
        false
    }

    fn events(&mut self, node: usize) -> Vec<Event> {
        std::iter::from_fn(|| self.nodes[node].poll_event()).collect()
    }
}

#[test]
fn a_hundred_nodes_fill_their_tables_and_find_an_announced_peer() {
    let mut sim = Sim::new(100);
    sim.run_until(Duration::from_secs(60), |sim| {
        sim.nodes.iter().all(|n| n.table().len() >= K)
    });
    let smallest = sim.nodes.iter().map(|n| n.table().len()).min().unwrap();
    assert!(smallest >= K, "every table fills: smallest {smallest}");
    let hash = InfoHash([0xab; 20]);
    let announcer = sim.nodes[42]
        .search(
            Target::Peers {
                info_hash: hash,
                announce: Some(51413),
            },
            sim.now,
        )
        .unwrap();
    sim.run_until(Duration::from_secs(30), |sim| {
        sim.nodes[42].searches_running() == 0
    });
    let events = sim.events(42);
    let Some(Event::Done { announced, .. }) = events
        .iter()
        .find(|e| matches!(e, Event::Done { search, .. } if *search == announcer))
    else {
        panic!("the announcing search ends: {events:?}")
    };
    assert!(*announced >= K / 2, "announced to {announced}");
    sim.step(Duration::from_millis(100));
    let mut queries = Vec::new();
    for searcher in (0..100).step_by(9) {
        let search = sim.nodes[searcher]
            .search(
                Target::Peers {
                    info_hash: hash,
                    announce: None,
                },
                sim.now,
            )
            .unwrap();
        sim.run_until(Duration::from_secs(30), |sim| {
            sim.nodes[searcher].searches_running() == 0
        });
        let events = sim.events(searcher);
        let found: Vec<SocketAddr> = events
            .iter()
            .filter_map(|e| match e {
                Event::Peers { search: s, peers } if *s == search => Some(peers.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let expected = SocketAddr::new(addr(43).ip(), 51413);
        if searcher != 42 {
            assert!(found.contains(&expected), "node {searcher} found {found:?}");
        }
        for e in events {
            if let Event::Done { queries: q, .. } = e {
                queries.push(q);
            }
        }
    }
    queries.sort();
    assert!(
        queries[queries.len() - 1] <= 64,
        "queries per lookup {queries:?}"
    );
}

fn query_from(
    node: &mut Node<StdRng>,
    from: SocketAddr,
    query: Query,
    now: Instant,
) -> Option<Message> {
    let datagram = message(b"qq".to_vec(), NodeId([9; 20]), Body::Query(query)).encode();
    node.handle(from, &datagram, now);
    let mut answer = None;
    while let Some((to, bytes)) = node.poll_transmit() {
        let m = Message::decode(&bytes).unwrap();
        if to == from && m.transaction == b"qq" {
            answer = Some(m);
        }
    }
    answer
}

fn lone_node() -> (Node<StdRng>, Instant) {
    let now = Instant::now();
    (
        Node::new(NodeId([1; 20]), now, StdRng::seed_from_u64(1)),
        now,
    )
}

#[test]
fn announce_peer_needs_a_fresh_token_from_the_same_address() {
    let (mut node, now) = lone_node();
    let hash = InfoHash([5; 20]);
    let me = addr(2);
    let Some(Message {
        body: Body::Reply(Reply {
            token: Some(token), ..
        }),
        ..
    }) = query_from(&mut node, me, Query::GetPeers { info_hash: hash }, now)
    else {
        panic!("a token")
    };
    let announce = |token: &[u8]| Query::AnnouncePeer {
        info_hash: hash,
        port: 7000,
        implied_port: false,
        token: token.to_vec(),
    };
    // A made-up token, and a real one from another address: refused.
    for (from, token) in [(me, &b"made-up"[..]), (addr(3), &token[..])] {
        let answer = query_from(&mut node, from, announce(token), now).unwrap();
        assert!(matches!(
            answer.body,
            Body::Error {
                code: codes::PROTOCOL,
                ..
            }
        ));
    }
    let later = now + 2 * ROTATE_EVERY + UPKEEP_EVERY;
    node.tick(now + ROTATE_EVERY);
    node.tick(later);
    let stale = query_from(&mut node, me, announce(&token), later).unwrap();
    assert!(
        matches!(
            stale.body,
            Body::Error {
                code: codes::PROTOCOL,
                ..
            }
        ),
        "stale: {stale:?}"
    );
    assert_eq!(node.counters().announces_stored, 0);
    let Some(Message {
        body: Body::Reply(Reply {
            token: Some(fresh), ..
        }),
        ..
    }) = query_from(&mut node, me, Query::GetPeers { info_hash: hash }, later)
    else {
        panic!("a token")
    };
    let ok = query_from(&mut node, me, announce(&fresh), later).unwrap();
    assert!(matches!(ok.body, Body::Reply(_)));
    let Some(Message {
        body: Body::Reply(reply),
        ..
    }) = query_from(
        &mut node,
        addr(4),
        Query::GetPeers { info_hash: hash },
        later,
    )
    else {
        panic!("a reply")
    };
    assert_eq!(reply.values, vec![SocketAddr::new(me.ip(), 7000)]);
    // With `implied_port`, the port is the datagram's source port.
    let implied = Query::AnnouncePeer {
        info_hash: hash,
        port: 0,
        implied_port: true,
        token: fresh.clone(),
    };
    assert!(matches!(
        query_from(&mut node, me, implied, later).unwrap().body,
        Body::Reply(_)
    ));
    let Some(Message {
        body: Body::Reply(reply),
        ..
    }) = query_from(
        &mut node,
        addr(4),
        Query::GetPeers { info_hash: hash },
        later,
    )
    else {
        panic!("a reply")
    };
    assert!(reply.values.contains(&me), "{:?}", reply.values);
}

#[test]
fn a_get_peers_flood_from_one_address_gets_no_more_than_its_rate() {
    let (mut node, start) = lone_node();
    let flooder = addr(2);
    let query = message(
        b"qq".to_vec(),
        NodeId([9; 20]),
        Body::Query(Query::GetPeers {
            info_hash: InfoHash([5; 20]),
        }),
    )
    .encode();
    let (mut bytes_in, mut bytes_out, mut replies) = (0, 0, 0);
    for i in 0..5000u64 {
        let now = start + Duration::from_micros(i * 400); // 2,500 a second for 2 s
        node.handle(flooder, &query, now);
        bytes_in += query.len();
        while let Some((to, datagram)) = node.poll_transmit() {
            if to == flooder && Message::decode(&datagram).unwrap().transaction == b"qq" {
                replies += 1;
                bytes_out += datagram.len();
            }
        }
    }
    let allowed = (REPLY_BURST + 2.0 * REPLIES_PER_SOURCE) as usize;
    assert!(replies <= allowed, "{replies} replies to a flood");
    assert!(
        bytes_out < bytes_in / 10,
        "no amplification: {bytes_out} out for {bytes_in} in"
    );
    // Another address is still answered.
    assert!(query_from(
        &mut node,
        addr(3),
        Query::Ping,
        start + Duration::from_secs(2)
    )
    .is_some());
}

#[test]
fn garbage_and_unknown_methods_and_spoofed_replies() {
    let (mut node, now) = lone_node();
    let from = addr(2);
    for junk in [
        &b""[..],
        b"garbage",
        b"d1:y1:qe",
        &[b'l'; 3000][..],
        &vec![b'x'; 70_000][..],
    ] {
        node.handle(from, junk, now);
        assert!(node.poll_transmit().is_none());
    }
    assert_eq!(node.counters().malformed, 5);
    let answer = query_from(
        &mut node,
        from,
        Query::Unknown {
            method: "vote".into(),
        },
        now,
    )
    .unwrap();
    assert!(matches!(
        answer.body,
        Body::Error {
            code: codes::METHOD_UNKNOWN,
            ..
        }
    ));
    // A reply to a query we never sent, or from an address we did not ask,
    // does not enter the table.
    node.add_bootstrap(addr(9));
    node.tick(now);
    let (to, datagram) = node.poll_transmit().unwrap();
    assert_eq!(to, addr(9));
    let asked = Message::decode(&datagram).unwrap();
    let reply = message(
        asked.transaction.clone(),
        NodeId([7; 20]),
        Body::Reply(Reply::default()),
    )
    .encode();
    node.handle(addr(10), &reply, now);
    assert!(node.table().is_empty());
    node.handle(addr(9), &reply, now);
    assert_eq!(node.table().len(), 1);
}

#[test]
fn a_search_with_no_way_into_a_dht_ends_at_once_and_the_node_idles() {
    let (mut node, now) = lone_node();
    let search = node
        .search(
            Target::Peers {
                info_hash: InfoHash([5; 20]),
                announce: Some(1),
            },
            now,
        )
        .unwrap();
    assert_eq!(
        node.poll_event(),
        Some(Event::Done {
            search,
            queries: 0,
            peers: 0,
            announced: 0
        })
    );
    assert!(node.is_idle());
    // With a bootstrap node to hear from, it waits for the table instead.
    node.add_bootstrap(addr(9));
    node.tick(now);
    node.search(Target::Node(NodeId([3; 20])), now).unwrap();
    assert!(node.poll_event().is_none());
    assert!(!node.is_idle());
}

#[test]
fn a_read_only_querier_is_answered_but_kept_out_of_the_table() {
    let (mut node, now) = lone_node();
    let from = addr(2);
    let mut ping = message(b"ro".to_vec(), NodeId([9; 20]), Body::Query(Query::Ping));
    ping.read_only = true;
    node.handle(from, &ping.encode(), now);
    let sent: Vec<_> = std::iter::from_fn(|| node.poll_transmit()).collect();
    assert_eq!(
        sent.len(),
        1,
        "the reply only, no ping back to prove its address"
    );
    assert!(matches!(
        Message::decode(&sent[0].1).unwrap().body,
        Body::Reply(_)
    ));
    // The same node without the flag is pinged, to enter the table.
    node.handle(
        from,
        &message(b"rw".to_vec(), NodeId([9; 20]), Body::Query(Query::Ping)).encode(),
        now,
    );
    assert_eq!(std::iter::from_fn(|| node.poll_transmit()).count(), 2);
    assert!(node.table().is_empty());
}

#[test]
fn a_reply_with_thousands_of_peers_is_dropped_and_its_sender_fails() {
    let (mut node, now) = lone_node();
    node.add_bootstrap(addr(9));
    node.tick(now);
    let (_, datagram) = node.poll_transmit().unwrap();
    let asked = Message::decode(&datagram).unwrap();
    // 2,000 peers in `values`: 16 KB, far over the datagram limit.
    let mut w = common::bencode::Writer::with_capacity(20_000);
    w.dict().bytes(b"r").dict().bytes(b"id").bytes(&[7; 20]);
    w.bytes(b"values").list();
    for n in 0..2000u32 {
        w.bytes(&[127, 0, (n >> 8) as u8, n as u8, 0x1a, 0xe1]);
    }
    w.end()
        .end()
        .bytes(b"t")
        .bytes(&asked.transaction)
        .bytes(b"y")
        .bytes(b"r")
        .end();
    node.handle(addr(9), &w.finish(), now);
    assert_eq!(node.counters().malformed, 1);
    assert!(node.table().is_empty());
    node.tick(now + QUERY_TIMEOUT);
    assert_eq!(node.counters().timeouts, 1, "the query failed");
}

#[test]
fn a_reply_that_lists_us_does_not_make_us_ask_ourselves() {
    let (mut node, now) = lone_node();
    node.add_bootstrap(addr(9));
    node.tick(now);
    let (_, datagram) = node.poll_transmit().unwrap();
    let asked = Message::decode(&datagram).unwrap();
    let us = NodeInfo {
        id: node.id(),
        addr: addr(1),
    };
    let reply = message(
        asked.transaction,
        NodeId([7; 20]),
        Body::Reply(Reply {
            nodes: vec![us],
            ..Reply::default()
        }),
    );
    node.handle(addr(9), &reply.encode(), now);
    let sent: Vec<SocketAddr> = std::iter::from_fn(|| node.poll_transmit())
        .map(|(to, _)| to)
        .collect();
    assert!(!sent.contains(&addr(1)), "asked ourselves: {sent:?}");
    assert!(
        sent.contains(&addr(9)),
        "the lookup goes on with the bootstrap node: {sent:?}"
    );
}
