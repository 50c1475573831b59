//! Our uplink's queue, kept short (pure): the upload rate a peer allows
//! itself, set once a [`STEP`] from the one-way delays its peers measure of
//! its messages (`delay`), as LEDBAT does in uTP (BEP 29).
//!
//! A peer that uploads as fast as TCP lets it fills the queue in front of
//! its uplink. Its own requests, `have`s and the acknowledgements of what it
//! downloads then wait behind its uploads: with 15 hosts on 1 Mbit/s
//! uplinks in a swarm of 30 (Mininet, 1000-packet queues) that queue held
//! 280 packets, and such a host downloaded at about the rate it uploaded,
//! far below its 16 Mbit/s downlink; the super-seeder, whose offers wait
//! for the host's `have`, sent 2 to 7 Mbit/s of its 10. Capping each
//! host's upload at 85% of its link by hand took that run from 1.53 to 1.35
//! times its bound. Round trips cannot tell our queue from the peer's (an
//! acknowledgement waits behind the peer's uploads); one-way delays can.
//!
//! The delay our messages wait is taken as the lower quartile of the latest
//! samples of the peers we unchoke. Every one of them waits in our queue;
//! a queue on one peer's side (its downlink's) delays only that peer's, and
//! is not ours to drain: with the median, in a swarm of equal 2 Mbit/s
//! links, whose downlinks are as busy as their uplinks, every host slowed
//! down for its peers' downlinks (1.96 times the bound instead of 1.47).
//! The rate moves in proportion to how far that delay is from [`TARGET`]:
//! up by at most [`MAX_RISE`] a step when below; down by at most [`MAX_FALL`] when above,
//! and then not again while samples sent after the fall show the queue
//! shrinking (the fall has not reached them all yet: a queue of seconds
//! takes seconds to drain, and falling on every step would take the rate
//! to the floor). No queue, no limit: on loopback and fast links the delays
//! stay near zero and nothing is ever limited; peers that do not speak
//! `ledbat_delay` give no samples and change nothing.
//!
//! A peer with nothing left to download is not limited: none of its own
//! requests or acknowledgements wait behind its uploads, and the queues
//! before its peers' downlinks still read as its own. The super-seeder of
//! 30 hosts on 10 Mbit/s links, all running cubic, held its limit at 0.68
//! to 1.57 MB/s on a 1.25 MB/s link, mostly under 1 MB/s; unlimited, the
//! median host finished 3 to 4 s sooner (Mininet, 100 MiB).
//!
//! "Uploaded" is what we wrote to sockets: above the link's rate while the
//! socket buffers fill, at it once they are full. So the first fall starts
//! from too high a rate, and the queue tells the next.

use std::time::{Duration, Instant};

use super::delay::Sample;

/// How often the rate is set.
pub const STEP: Duration = Duration::from_secs(1);
/// The queueing delay on our uplink we aim at (LEDBAT's target).
pub const TARGET: Duration = Duration::from_millis(100);
/// The lowest rate we set, bytes per second.
pub const MIN_RATE: u64 = 16 * 1024;
/// The most the rate rises in one step, as a share of it.
pub const MAX_RISE: f64 = 0.10;
/// The most it falls in one step.
pub const MAX_FALL: f64 = 0.30;
/// A limit this many times above what we upload is no limit: it is lifted.
pub const LIFT_ABOVE: f64 = 4.0;
/// Samples that came longer ago than this are not used: that peer stopped
/// answering or we stopped sending to it.
pub const FRESH: Duration = Duration::from_secs(3);
/// What we upload is taken as the most of this many steps. One step's
/// upload is no measure of the rate: a super-seeder between offers sends
/// next to nothing for a second, and a fall computed from that second took
/// its limit from 1.37 MB/s to 16 KiB/s, 45 s to climb back, while the
/// hosts that had only it to ask waited (Mininet, cubic, hosts leaving).
pub const RECENT_STEPS: usize = 5;

#[derive(Debug)]
pub struct Uplink {
    /// The user's own limit, never exceeded.
    ceiling: Option<u64>,
    /// The rate we allow ourselves, bytes per second (`None`: as fast as
    /// the network takes it, up to the ceiling).
    limit: Option<f64>,
    /// Since the rate last fell (above the target ever since): when, and
    /// the smallest queue seen since.
    fell: Option<(Instant, Duration)>,
    /// Bytes uploaded in each of the last [`RECENT_STEPS`] steps.
    recent: std::collections::VecDeque<u64>,
}

/// The lower quartile of the queues of the samples that arrived since
/// `fresh` and were sent at or after `since` (with four or fewer, the
/// least).
fn low_queue(samples: &[Sample], fresh: Instant, since: Instant) -> Option<Duration> {
    let mut queues: Vec<Duration> = samples
        .iter()
        .filter(|s| s.arrived >= fresh && s.sent_at >= since)
        .map(|s| s.queue)
        .collect();
    queues.sort_unstable();
    queues.get(queues.len().saturating_sub(1) / 4).copied()
}

impl Uplink {
    pub fn new(ceiling: Option<u64>) -> Self {
        Uplink {
            ceiling,
            limit: None,
            fell: None,
            recent: std::collections::VecDeque::with_capacity(RECENT_STEPS + 1),
        }
    }

    /// One step at `now`: the latest sample of each peer we upload to,
    /// `uploaded` bytes per second over the last step, and whether we still
    /// download. Returns the upload limit to set (`None`: unlimited).
    pub fn step(
        &mut self,
        now: Instant,
        samples: &[Sample],
        uploaded: u64,
        downloading: bool,
    ) -> Option<u64> {
        self.recent.push_back(uploaded);
        if self.recent.len() > RECENT_STEPS {
            self.recent.pop_front();
        }
        if !downloading {
            self.limit = None;
            self.fell = None;
            return self.rate();
        }
        let fresh = now.checked_sub(FRESH).unwrap_or(now);
        let Some(queue) = low_queue(samples, fresh, fresh) else {
            return self.rate();
        };
        // How far off target, in targets: +1 with no queue, negative above.
        let off =
            |queue: Duration| (TARGET.as_secs_f64() - queue.as_secs_f64()) / TARGET.as_secs_f64();
        let floor = self.recent.iter().copied().max().unwrap_or(0).max(MIN_RATE) as f64;
        if off(queue) >= 0.0 {
            self.fell = None;
            if let Some(limit) = self.limit {
                let raised = limit * (1.0 + off(queue) * MAX_RISE);
                self.limit = (raised < floor * LIFT_ABOVE).then_some(raised);
            }
            return self.rate();
        }
        let queue = match self.fell {
            None => queue,
            // Only samples sent since the fall show what it did.
            Some((at, least)) => match low_queue(samples, fresh, at) {
                Some(after) if after < least => {
                    self.fell = Some((at, after)); // shrinking: wait
                    return self.rate();
                }
                Some(after) if off(after) < 0.0 => after,
                _ => return self.rate(),
            },
        };
        let current = self.limit.unwrap_or(floor).min(floor * LIFT_ABOVE);
        let fall = (-off(queue) * MAX_RISE).min(MAX_FALL);
        self.limit = Some((current * (1.0 - fall)).max(MIN_RATE as f64));
        self.fell = Some((now, queue));
        self.rate()
    }

    /// The rate to set now.
    pub fn rate(&self) -> Option<u64> {
        match (self.limit, self.ceiling) {
            (Some(limit), Some(ceiling)) => Some((limit as u64).min(ceiling)),
            (Some(limit), None) => Some(limit as u64),
            (None, ceiling) => ceiling,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const LINK: u64 = 125_000; // 1 Mbit/s

    /// A sample sent at `sent_at`, come back just now (`arrived`).
    fn sample(queue_ms: u64, sent_at: Instant, arrived: Instant) -> Sample {
        Sample {
            queue: ms(queue_ms),
            sent_at,
            arrived,
        }
    }

    #[test]
    fn no_queue_no_limit_and_no_samples_no_change() {
        let mut up = Uplink::new(None);
        let now = Instant::now();
        for s in 1..20 {
            let at = now + Duration::from_secs(s);
            let samples = [sample(0, at - ms(5), at), sample(30, at - ms(5), at)];
            assert_eq!(up.step(at, &samples, 10 * LINK, true), None);
        }
        assert_eq!(up.step(now, &[], 0, true), None);
        let mut capped = Uplink::new(Some(LINK));
        assert_eq!(
            capped.step(now, &[sample(0, now, now)], LINK, true),
            Some(LINK),
            "the user's limit stays"
        );
    }

    #[test]
    fn a_queue_brings_the_rate_down_until_it_shrinks_then_up_again() {
        let mut up = Uplink::new(None);
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        // Our queue: every peer sees 2 s.
        let s = |queue, sent, came| sample(queue, at(sent), at(came));
        let first = up.step(
            at(1),
            &[s(2000, 0, 1), s(2000, 0, 1), s(2100, 0, 1)],
            LINK,
            true,
        );
        assert_eq!(first, Some(LINK * 7 / 10), "by MAX_FALL at most");
        // Samples sent before the fall cannot show it: held.
        assert_eq!(up.step(at(2), &[s(2500, 0, 2)], LINK, true), first);
        // Sent after it, a queue no smaller: the fall was not enough.
        let second = up.step(at(3), &[s(2100, 2, 3)], LINK, true).unwrap();
        assert!(second.abs_diff(LINK * 49 / 100) <= 1, "{second}");
        // Shrinking: held, however far above the target.
        assert_eq!(up.step(at(4), &[s(1500, 3, 4)], second, true), Some(second));
        assert_eq!(up.step(at(5), &[s(900, 4, 5)], second, true), Some(second));
        // It stops shrinking above the target: a fall by how far above.
        let third = up.step(at(6), &[s(120, 5, 6)], second, true).unwrap();
        let fourth = up.step(at(7), &[s(125, 6, 7)], second, true).unwrap();
        assert!(
            fourth < third && fourth as f64 > third as f64 * 0.97,
            "{third} then {fourth}"
        );
        // The queue gone: up by a tenth a step, until the limit is far
        // above what we send and lifted.
        let fifth = up.step(at(8), &[s(0, 7, 8)], fourth, true).unwrap();
        assert!(
            fifth.abs_diff(fourth * 11 / 10) <= 1,
            "{fifth} after {fourth}"
        );
        let mut last = fifth;
        let mut steps = 0;
        while let Some(rate) = up.step(at(9 + steps), &[s(0, 8 + steps, 9 + steps)], MIN_RATE, true)
        {
            assert!(rate >= last);
            last = rate;
            steps += 1;
            assert!(steps < 100, "never lifted");
        }
    }

    #[test]
    fn a_second_with_nothing_to_send_is_not_our_rate() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut up = Uplink::new(None);
        // A queue at full rate: a limit near the link's.
        let limited = up
            .step(at(1), &[sample(400, at(0), at(1))], LINK, true)
            .unwrap();
        assert_eq!(limited, LINK * 7 / 10);
        // The queue drains; then a second in which we sent nothing (a
        // super-seeder between offers): the limit is neither lifted ...
        let raised = up
            .step(at(2), &[sample(0, at(1), at(2))], limited, true)
            .unwrap();
        let kept = up.step(at(3), &[sample(0, at(2), at(3))], 0, true);
        assert!(kept.is_some_and(|k| k >= raised), "{kept:?} after {raised}");
        // ... nor taken down to what that second sent when a queue shows
        // again: it falls from where it was.
        let fell = up
            .step(at(4), &[sample(300, at(3), at(4))], 0, true)
            .unwrap();
        assert!(fell > LINK / 2, "{fell}: from the lull, not the limit");
    }

    #[test]
    fn other_peers_queues_are_not_ours_and_old_samples_are_dropped() {
        let mut up = Uplink::new(None);
        let now = Instant::now() + FRESH * 2;
        // Six of eight peers' downlinks are busy; two see no queue: ours is
        // short.
        let mut busy = vec![sample(5000, now, now); 6];
        busy.extend([sample(0, now, now), sample(10, now, now)]);
        assert_eq!(up.step(now, &busy, LINK, true), None);
        // Seven of eight see one: it is ours.
        busy[6] = sample(4000, now, now);
        assert_eq!(up.step(now, &busy, LINK, true), Some(LINK * 7 / 10));
        let mut up = Uplink::new(None);
        let stale = [sample(5000, now, now - FRESH - ms(1))];
        assert_eq!(up.step(now, &stale, LINK, true), None);
    }

    #[test]
    fn never_below_the_floor_nor_above_the_ceiling() {
        let start = Instant::now();
        let mut up = Uplink::new(Some(LINK / 4));
        let mut rate = None;
        for s in 1..200 {
            let at = start + Duration::from_secs(s);
            // A queue that grows whatever we do.
            rate = up.step(at, &[sample(9000 + s, at, at)], MIN_RATE, true);
        }
        assert_eq!(rate, Some(MIN_RATE));
        for s in 200..400 {
            let at = start + Duration::from_secs(s);
            rate = up.step(at, &[sample(0, at, at)], LINK / 4, true);
        }
        assert_eq!(rate, Some(LINK / 4));
    }

    #[test]
    fn nothing_left_to_download_no_limit() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut up = Uplink::new(None);
        let queue = |s| [sample(400, at(s - 1), at(s))];
        assert!(
            up.step(at(1), &queue(1), LINK, true).is_some(),
            "downloading"
        );
        assert_eq!(up.step(at(2), &queue(2), LINK, false), None, "complete");
        assert_eq!(up.step(at(3), &queue(3), LINK, false), None);
        let mut capped = Uplink::new(Some(LINK / 2));
        assert_eq!(
            capped.step(at(1), &queue(1), LINK, false),
            Some(LINK / 2),
            "the user's limit stays"
        );
    }
}
