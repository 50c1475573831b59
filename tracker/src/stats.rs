//! Monitoring: the announce rate and the `/stats` snapshot the dashboard draws.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use serde::Serialize;

use crate::{
    catalog::Catalog,
    swarm::{PeerInfo, Swarms},
};

/// Seconds of history kept by [`RateMeter`]; the rate is over the last
/// `WINDOW - 2` complete seconds.
const WINDOW: usize = 12;
/// Peers listed per swarm in `/stats`; the counts are always complete.
pub const MAX_LISTED_PEERS: usize = 200;
/// Swarms listed in `/stats`, the most active first.
pub const MAX_LISTED_SWARMS: usize = 500;

/// Announces per second, from a ring of per-second counters: one relaxed
/// atomic add per announce. At a second's boundary two threads may both reset
/// a slot and lose a few counts, which a dashboard figure can afford.
#[derive(Default)]
pub struct RateMeter {
    seconds: [AtomicU32; WINDOW],
    counts: [AtomicU64; WINDOW],
    total: AtomicU64,
}

impl RateMeter {
    pub fn record(&self, now: u32) {
        let slot = now as usize % WINDOW;
        if self.seconds[slot].swap(now, Ordering::Relaxed) != now {
            self.counts[slot].store(0, Ordering::Relaxed);
        }
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Mean announces per second over the complete seconds before `now`.
    pub fn per_second(&self, now: u32) -> f64 {
        let span = (WINDOW - 2) as u32;
        let sum: u64 = (1..=span)
            .filter_map(|back| now.checked_sub(back))
            .filter(|&second| {
                self.seconds[second as usize % WINDOW].load(Ordering::Relaxed) == second
            })
            .map(|second| self.counts[second as usize % WINDOW].load(Ordering::Relaxed))
            .sum();
        sum as f64 / f64::from(span.min(now.max(1)))
    }
}

#[derive(Serialize)]
pub struct PeerView {
    pub address: String,
    /// 0.0 to 1.0 when the torrent's size is known (from `--torrents`, or
    /// learned from the announces), else `None`.
    pub progress: Option<f64>,
    pub left: u64,
    pub uploaded: u64,
    pub downloaded: u64,
    pub seeder: bool,
    /// Seconds since its last announce.
    pub last_announce: u32,
}

#[derive(Serialize)]
pub struct SwarmView {
    pub info_hash: String,
    pub name: Option<String>,
    pub size: Option<u64>,
    pub seeders: u32,
    pub leechers: u32,
    pub completed: u32,
    /// Seconds since the swarm's last announce, `None` for a catalog torrent never announced.
    pub last_activity: Option<u32>,
    pub peers: Vec<PeerView>,
}

#[derive(Serialize)]
pub struct Totals {
    pub swarms: usize,
    pub peers: usize,
    pub seeders: u64,
    pub leechers: u64,
    pub completed: u64,
    /// Announces over both front ends, then over each.
    pub announces: u64,
    pub announces_http: u64,
    pub announces_udp: u64,
    pub announce_rate: f64,
}

#[derive(Serialize)]
pub struct StatsView {
    pub uptime: u32,
    pub totals: Totals,
    pub swarms: Vec<SwarmView>,
}

/// Builds the `/stats` snapshot, most active swarms first (most leechers, then
/// most recent announce).
/// Peers looked at to learn a swarm's size from its announces.
const SIZE_SAMPLE: usize = 1000;

/// A swarm's size as its peers' announces tell it, for a torrent the
/// tracker has no file of: the largest `left + downloaded`. A leecher that
/// started from nothing says exactly the size; one that received duplicate
/// blocks says a little more (progress is clamped); one that resumed says
/// less. Over HTTP and UDP alike, from at most [`SIZE_SAMPLE`] peers; `None`
/// when no peer has said anything but zeros (seeders that downloaded
/// nothing).
pub fn size_from_announces(peers: impl Iterator<Item = PeerInfo>) -> Option<u64> {
    peers
        .take(SIZE_SAMPLE)
        .map(|p| p.left.saturating_add(p.downloaded))
        .max()
        .filter(|&size| size > 0)
}

/// `rate` counts every announce, `udp` those over UDP.
pub fn snapshot(
    swarms: &Swarms,
    catalog: &Catalog,
    rate: &RateMeter,
    udp: &RateMeter,
    now: u32,
) -> StatsView {
    let mut views = Vec::new();
    let mut totals = Totals {
        swarms: 0,
        peers: swarms.peer_count(),
        seeders: 0,
        leechers: 0,
        completed: 0,
        announces: rate.total(),
        announces_http: rate.total().saturating_sub(udp.total()),
        announces_udp: udp.total(),
        announce_rate: rate.per_second(now),
    };
    swarms.for_each(|hash, swarm| {
        let stats = swarm.stats();
        totals.seeders += u64::from(stats.complete);
        totals.leechers += u64::from(stats.incomplete);
        totals.completed += u64::from(stats.downloaded);
        let known = catalog.get(hash);
        let size = known
            .map(|k| k.total_length)
            .or_else(|| size_from_announces(swarm.peers()));
        let peers = swarm
            .peers()
            .take(MAX_LISTED_PEERS)
            .map(|peer| PeerView {
                address: peer.addr.to_string(),
                progress: size
                    .filter(|&s| s > 0)
                    .map(|s| 1.0 - peer.left.min(s) as f64 / s as f64),
                left: peer.left,
                uploaded: peer.uploaded,
                downloaded: peer.downloaded,
                seeder: peer.is_seeder(),
                last_announce: now.saturating_sub(peer.last_seen),
            })
            .collect();
        views.push(SwarmView {
            info_hash: hash.to_hex(),
            name: known.map(|k| k.name.clone()),
            size,
            seeders: stats.complete,
            leechers: stats.incomplete,
            completed: stats.downloaded,
            last_activity: Some(now.saturating_sub(swarm.last_activity)),
            peers,
        });
    });
    // Catalog torrents nobody has announced yet still show, at the end.
    let announced: std::collections::HashSet<String> =
        views.iter().map(|v| v.info_hash.clone()).collect();
    for (hash, known) in catalog {
        if !announced.contains(&hash.to_hex()) {
            views.push(SwarmView {
                info_hash: hash.to_hex(),
                name: Some(known.name.clone()),
                size: Some(known.total_length),
                seeders: 0,
                leechers: 0,
                completed: 0,
                last_activity: None,
                peers: Vec::new(),
            });
        }
    }
    totals.swarms = views.len();
    views.sort_by_key(|v| {
        (
            std::cmp::Reverse(v.leechers),
            v.last_activity.unwrap_or(u32::MAX),
            v.info_hash.clone(),
        )
    });
    views.truncate(MAX_LISTED_SWARMS);
    StatsView {
        uptime: now,
        totals,
        swarms: views,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_the_mean_over_complete_seconds() {
        let meter = RateMeter::default();
        for second in 0..20u32 {
            for _ in 0..(second % 2 + 1) * 10 {
                meter.record(second);
            }
        }
        // Seconds 10..=19 alternate 10 and 20 announces: a mean of 15.
        assert_eq!(meter.per_second(20), 15.0);
        assert_eq!(meter.total(), 300);
        assert_eq!(meter.per_second(40), 0.0);
    }

    #[test]
    fn without_a_torrent_file_progress_comes_from_the_announces() {
        use common::{tracker_proto::AnnounceEvent, InfoHash, PeerId};
        use rand::{rngs::StdRng, SeedableRng};
        let swarms = Swarms::new(100);
        let hash = InfoHash([1; 20]);
        let announce = |id: u8, left: u64, downloaded: u64| {
            let a = crate::swarm::Announce {
                info_hash: hash,
                peer_id: PeerId([id; 20]),
                addr: format!("127.0.0.{id}:6881").parse().unwrap(),
                uploaded: 0,
                downloaded,
                left,
                event: AnnounceEvent::None,
                numwant: 0,
            };
            swarms
                .announce(&a, 1, &mut StdRng::seed_from_u64(1))
                .unwrap();
        };
        // An initial seeder says nothing of the size: no progress yet.
        announce(1, 0, 0);
        let view = |swarms: &Swarms| {
            snapshot(
                swarms,
                &Catalog::new(),
                &RateMeter::default(),
                &RateMeter::default(),
                1,
            )
            .swarms
            .remove(0)
        };
        assert_eq!(view(&swarms).size, None);
        // A leecher a quarter of the way from nothing (1000 bytes), one that
        // resumed (says less), one with duplicates (says more: clamped).
        announce(2, 750, 250);
        announce(3, 500, 100);
        announce(4, 0, 1010);
        let swarm = view(&swarms);
        assert_eq!(swarm.size, Some(1010));
        let progress: Vec<_> = swarm.peers.iter().map(|p| p.progress.unwrap()).collect();
        assert_eq!(progress[0], 1.0, "the seeder");
        assert!((progress[1] - (1.0 - 750.0 / 1010.0)).abs() < 1e-9);
        assert!(progress.iter().all(|p| (0.0..=1.0).contains(p)));
    }
}
