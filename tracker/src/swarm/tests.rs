//! The swarm store, deterministic: the clock and the random generator are
//! passed in.

use super::*;
use peer_map::sample_distinct;
use rand::{rngs::StdRng, SeedableRng};

fn announce(id: u8, left: u64, event: AnnounceEvent) -> Announce {
    Announce {
        info_hash: InfoHash([1; 20]),
        peer_id: PeerId([id; 20]),
        addr: SocketAddr::from(([10, 0, 0, id], 6881)),
        uploaded: 0,
        downloaded: 0,
        left,
        event,
        numwant: 50,
    }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

#[test]
fn samples_are_distinct_in_range_and_cover_every_index() {
    let mut rng = rng();
    let mut seen = vec![0u32; 1000];
    for (len, amount) in [(1000, 50), (1000, 400), (10, 10), (10, 50), (0, 5)] {
        for _ in 0..200 {
            let sample = sample_distinct(&mut rng, len, amount);
            assert_eq!(sample.len(), amount.min(len));
            let mut sorted = sample.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), sample.len(), "distinct");
            for i in sample {
                assert!(i < len);
                if len == 1000 && amount == 50 {
                    seen[i] += 1;
                }
            }
        }
    }
    // 200 draws of 50 from 1000: each index is expected 10 times.
    assert!(seen.iter().all(|&n| n > 0), "every index can be chosen");
}

#[test]
fn a_stored_peer_is_40_bytes_over_ipv4_and_48_over_ipv6() {
    assert_eq!(std::mem::size_of::<Peer<Ipv4Addr>>(), 40);
    assert_eq!(std::mem::size_of::<Peer<Ipv6Addr>>(), 48);
}

/// The last byte of an IPv4 peer's address: `announce(id, ..)` comes from
/// 10.0.0.id.
fn host(entry: &PeerEntry) -> u8 {
    match entry.addr.ip() {
        IpAddr::V4(ip) => ip.octets()[3],
        IpAddr::V6(ip) => ip.octets()[15],
    }
}

#[test]
fn peers_see_each_other_but_never_themselves() {
    let swarms = Swarms::new(100);
    let first = swarms
        .announce(&announce(1, 10, AnnounceEvent::Started), 0, &mut rng())
        .unwrap();
    assert!(first.peers.is_empty());
    let second = swarms
        .announce(&announce(2, 10, AnnounceEvent::Started), 0, &mut rng())
        .unwrap();
    assert_eq!(second.peers.len(), 1);
    assert_eq!(
        second.peers[0].addr,
        SocketAddr::from(([10, 0, 0, 1], 6881))
    );
    assert_eq!(
        second.stats,
        ScrapeStats {
            complete: 0,
            downloaded: 0,
            incomplete: 2
        }
    );
}

#[test]
fn a_first_announce_with_nothing_left_or_downloaded_gets_seeders_too() {
    let swarms = Swarms::new(100);
    for id in 1..=3 {
        swarms
            .announce(&announce(id, 0, AnnounceEvent::Started), 0, &mut rng())
            .unwrap();
    }
    // aria2c with a magnet link: left=0, downloaded=0, event=started.
    let magnet = swarms
        .announce(&announce(7, 0, AnnounceEvent::Started), 0, &mut rng())
        .unwrap();
    assert_eq!(magnet.peers.len(), 3);
    let later = swarms
        .announce(&announce(7, 0, AnnounceEvent::None), 1, &mut rng())
        .unwrap();
    assert!(
        later.peers.is_empty(),
        "a seeder's regular announce gets no seeders"
    );
}

#[test]
fn a_seeder_gets_no_seeders() {
    let swarms = Swarms::new(100);
    for id in 1..=3 {
        swarms
            .announce(&announce(id, 0, AnnounceEvent::Started), 0, &mut rng())
            .unwrap();
    }
    swarms
        .announce(&announce(9, 5, AnnounceEvent::Started), 0, &mut rng())
        .unwrap();
    let seeder = swarms
        .announce(&announce(1, 0, AnnounceEvent::None), 1, &mut rng())
        .unwrap();
    assert_eq!(seeder.peers.iter().map(host).collect::<Vec<_>>(), [9]);
    let leecher = swarms
        .announce(&announce(9, 5, AnnounceEvent::None), 1, &mut rng())
        .unwrap();
    assert_eq!(leecher.peers.len(), 3);
}

#[test]
fn numwant_caps_the_reply_with_a_random_choice() {
    let swarms = Swarms::new(1000);
    for id in 1..=200 {
        swarms
            .announce(&announce(id, 1, AnnounceEvent::Started), 0, &mut rng())
            .unwrap();
    }
    let ask = Announce {
        numwant: 10,
        ..announce(1, 1, AnnounceEvent::None)
    };
    let a = swarms
        .announce(&ask, 0, &mut StdRng::seed_from_u64(1))
        .unwrap();
    let b = swarms
        .announce(&ask, 0, &mut StdRng::seed_from_u64(2))
        .unwrap();
    assert_eq!(a.peers.len(), 10);
    assert!(a.peers.iter().all(|p| host(p) != 1));
    assert_ne!(a.peers, b.peers, "different draws give different peers");
}

#[test]
fn completed_counts_once_and_stopped_removes() {
    let swarms = Swarms::new(100);
    swarms
        .announce(&announce(1, 10, AnnounceEvent::Started), 0, &mut rng())
        .unwrap();
    swarms
        .announce(&announce(1, 0, AnnounceEvent::Completed), 1, &mut rng())
        .unwrap();
    swarms
        .announce(&announce(1, 0, AnnounceEvent::Completed), 2, &mut rng())
        .unwrap();
    let hash = InfoHash([1; 20]);
    assert_eq!(
        swarms.scrape(&hash),
        Some(ScrapeStats {
            complete: 1,
            downloaded: 1,
            incomplete: 0
        })
    );
    swarms
        .announce(&announce(1, 0, AnnounceEvent::Stopped), 3, &mut rng())
        .unwrap();
    assert_eq!(
        swarms.scrape(&hash),
        Some(ScrapeStats {
            complete: 0,
            downloaded: 1,
            incomplete: 0
        })
    );
    assert_eq!(swarms.peer_count(), 0);
}

#[test]
fn silent_peers_expire_after_the_timeout() {
    let swarms = Swarms::new(100);
    swarms
        .announce(&announce(1, 10, AnnounceEvent::Started), 0, &mut rng())
        .unwrap();
    swarms
        .announce(&announce(2, 0, AnnounceEvent::Started), 50, &mut rng())
        .unwrap();
    assert_eq!(swarms.expire(60, 60), 0);
    assert_eq!(swarms.expire(61, 60), 1);
    assert_eq!(
        swarms.scrape(&InfoHash([1; 20])),
        Some(ScrapeStats {
            complete: 1,
            downloaded: 0,
            incomplete: 0
        })
    );
    assert_eq!(swarms.expire(200, 60), 1);
    assert_eq!(swarms.scrape(&InfoHash([1; 20])), None);
    assert_eq!(swarms.peer_count(), 0);
}

#[test]
fn the_peer_limit_refuses_new_peers_only() {
    let swarms = Swarms::new(1);
    swarms
        .announce(&announce(1, 10, AnnounceEvent::Started), 0, &mut rng())
        .unwrap();
    assert_eq!(
        swarms.announce(&announce(2, 10, AnnounceEvent::Started), 0, &mut rng()),
        Err(SwarmError::Full)
    );
    assert!(swarms
        .announce(&announce(1, 5, AnnounceEvent::None), 1, &mut rng())
        .is_ok());
}

fn swarm_count(swarms: &Swarms) -> usize {
    let mut count = 0;
    swarms.for_each(|_, _| count += 1);
    count
}

#[test]
fn a_refused_peer_leaves_no_swarm_behind() {
    let swarms = Swarms::new(1);
    swarms
        .announce(&announce(1, 10, AnnounceEvent::Started), 0, &mut rng())
        .unwrap();
    for n in 0..=255u8 {
        let new_torrent = Announce {
            info_hash: InfoHash([n; 20]),
            ..announce(2, 10, AnnounceEvent::Started)
        };
        let refused = swarms.announce(&new_torrent, 0, &mut rng());
        if n != 1 {
            assert_eq!(refused, Err(SwarmError::Full));
            assert_eq!(swarms.scrape(&new_torrent.info_hash), None);
        }
    }
    assert_eq!(swarm_count(&swarms), 1);
    assert_eq!(swarms.peer_count(), 1);
}

#[test]
fn new_peers_on_many_threads_fill_the_store_exactly_to_the_limit() {
    const LIMIT: usize = 100;
    let swarms = Swarms::new(LIMIT);
    std::thread::scope(|scope| {
        for thread in 0..4u8 {
            let swarms = &swarms;
            scope.spawn(move || {
                for n in 0..500u16 {
                    // Every thread on shards of its own: no lock in common.
                    let mut hash = [thread; 20];
                    hash[1..3].copy_from_slice(&n.to_be_bytes());
                    let mut id = [thread; 20];
                    id[1..3].copy_from_slice(&n.to_be_bytes());
                    let a = Announce {
                        info_hash: InfoHash(hash),
                        peer_id: PeerId(id),
                        ..announce(0, 10, AnnounceEvent::Started)
                    };
                    let _ = swarms.announce(&a, 0, &mut rng());
                }
            });
        }
    });
    let mut stored = 0;
    swarms.for_each(|_, swarm| stored += swarm.len());
    assert_eq!((swarms.peer_count(), stored), (LIMIT, LIMIT));
    assert_eq!(swarm_count(&swarms), LIMIT);
}

#[test]
fn peers_are_keyed_by_address_not_by_peer_id() {
    let swarms = Swarms::new(100);
    let hash = InfoHash([1; 20]);
    swarms
        .announce(&announce(1, 10, AnnounceEvent::Started), 0, &mut rng())
        .unwrap();
    // The same address with another id (a restarted client): one peer.
    let restarted = Announce {
        peer_id: PeerId([9; 20]),
        ..announce(1, 5, AnnounceEvent::Started)
    };
    swarms.announce(&restarted, 1, &mut rng()).unwrap();
    assert_eq!(swarms.scrape(&hash).unwrap().incomplete, 1);
    // One id from two addresses (aquatic's load generator sends zeros):
    // two peers, each handed to the other.
    let elsewhere = Announce {
        addr: SocketAddr::from(([10, 0, 0, 1], 7000)),
        ..restarted
    };
    let reply = swarms.announce(&elsewhere, 1, &mut rng()).unwrap();
    assert_eq!(reply.peers.len(), 1);
    assert_eq!(reply.peers[0].addr, SocketAddr::from(([10, 0, 0, 1], 6881)));
    assert_eq!(reply.peers[0].peer_id, None, "ids are not stored");
    // Someone who saw peer 1's id cannot stop it from another address.
    let forged = Announce {
        peer_id: PeerId([1; 20]),
        ..announce(2, 0, AnnounceEvent::Stopped)
    };
    swarms.announce(&forged, 2, &mut rng()).unwrap();
    assert_eq!(swarms.scrape(&hash).unwrap().incomplete, 2);
    assert_eq!(swarms.peer_count(), 2);
}

#[test]
fn ipv4_and_ipv6_peers_are_kept_apart_and_mapped_addresses_count_as_ipv4() {
    let swarms = Swarms::new(100);
    let from = |addr: SocketAddr| Announce {
        addr,
        ..announce(0, 10, AnnounceEvent::Started)
    };
    let v4: SocketAddr = "10.0.0.4:6881".parse().unwrap();
    let mapped: SocketAddr = "[::ffff:10.0.0.5]:6881".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::6]:6881".parse().unwrap();
    for addr in [v4, mapped, v6] {
        swarms.announce(&from(addr), 0, &mut rng()).unwrap();
    }
    swarms.for_each(|_, swarm| assert_eq!((swarm.v4.len(), swarm.v6.len()), (2, 1)));
    let asker: SocketAddr = "[2001:db8::7]:6881".parse().unwrap();
    let udp6 = swarms
        .announce_family(&from(asker), Some(Family::V6), 1, &mut rng())
        .unwrap();
    assert_eq!(udp6.peers.iter().map(|p| p.addr).collect::<Vec<_>>(), [v6]);
    let udp4 = swarms
        .announce_family(&from(v4), Some(Family::V4), 1, &mut rng())
        .unwrap();
    assert_eq!(
        udp4.peers.iter().map(|p| p.addr).collect::<Vec<_>>(),
        ["10.0.0.5:6881".parse::<SocketAddr>().unwrap()]
    );
    // Over HTTP, both families, the asker's own first.
    let http = swarms.announce(&from(asker), 1, &mut rng()).unwrap();
    let addrs: Vec<SocketAddr> = http.peers.iter().map(|p| p.addr).collect();
    assert_eq!(addrs.len(), 3);
    assert_eq!(addrs[0], v6);
    assert_eq!(swarms.scrape(&InfoHash([1; 20])).unwrap().incomplete, 4);
}

/// Random announces, stops and expiries against a plain map of the same
/// peers: the store's index, counts and replies stay right through every
/// move a removal makes.
#[test]
fn the_store_agrees_with_a_plain_map_through_random_changes() {
    use std::collections::HashMap as Model;
    let mut rng = StdRng::seed_from_u64(11);
    let swarms = Swarms::new(10_000);
    let hash = InfoHash([1; 20]);
    // address -> (left, last seen)
    let mut model: Model<SocketAddr, (u64, u32)> = Model::new();
    for step in 0..20_000u32 {
        let now = step / 100;
        let n: u16 = rng.random_range(0..300);
        let addr = if n.is_multiple_of(3) {
            SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)),
                6881,
            )
        } else {
            SocketAddr::from(([127, 0, (n >> 8) as u8, n as u8], 6000 + n % 7))
        };
        let left = rng.random_range(0..3u64);
        let event = match rng.random_range(0..10) {
            0..=2 => AnnounceEvent::Stopped,
            _ => AnnounceEvent::None,
        };
        let a = Announce {
            addr,
            left,
            event,
            numwant: 20,
            ..announce(0, 0, event)
        };
        let reply = swarms.announce(&a, now, &mut rng).unwrap();
        if event == AnnounceEvent::Stopped {
            model.remove(&addr);
        } else {
            model.insert(addr, (left, now));
            let mut seen: Vec<SocketAddr> = reply.peers.iter().map(|p| p.addr).collect();
            assert!(!seen.contains(&addr), "never the asker");
            assert!(
                seen.iter().all(|p| model.contains_key(p)),
                "only stored peers"
            );
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), reply.peers.len(), "no peer twice");
        }
        if step % 1000 == 999 {
            let timeout = 3;
            swarms.expire(now, timeout);
            model.retain(|_, &mut (_, seen)| now - seen <= timeout);
        }
        let seeders = model.values().filter(|(left, _)| *left == 0).count() as u32;
        let stats = swarms.scrape(&hash).unwrap_or_default();
        assert_eq!(
            (stats.complete, stats.incomplete),
            (seeders, model.len() as u32 - seeders),
            "step {step}"
        );
        assert_eq!(swarms.peer_count(), model.len());
    }
    let mut stored: Vec<SocketAddr> = Vec::new();
    swarms.for_each(|_, swarm| stored.extend(swarm.peers().map(|p| p.addr)));
    stored.sort();
    let mut expected: Vec<SocketAddr> = model.keys().copied().collect();
    expected.sort();
    assert_eq!(stored, expected);
}
