//! One peer's protocol state, with no I/O: who chokes whom, whether we are
//! interested, which of our requests are in flight, what the peer has, how
//! fast its blocks arrive, how long they keep us waiting, and when its
//! silence ends the connection.
//!
//! The session (`session`) reads messages and sends what these methods
//! decide; time is passed in, so every rule is tested here without a socket.

use std::{collections::HashMap, time::Duration};

use common::{
    bitfield::Bitfield,
    wire::{BlockRef, Message, MAX_BLOCK_LEN},
};
use tokio::time::Instant;

/// A peer silent this long is dropped (BEP 3 peers send keep-alives every two minutes).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(150);
/// A peer that holds our requests this long without sending a block is dropped.
pub const SNUB_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests kept outstanding per peer until its rate is measured (its first
/// full second of blocks): enough not to throttle a fast peer at the start.
pub const MIN_PIPELINE: usize = 32;
/// Then half a second of its measured rate, within these bounds. A slow peer
/// keeps few requests: each one holds a block no other peer is asked for
/// (the old floor of 32 held 30 s of a 16 KB/s peer's blocks, while a faster
/// peer, the seeder among them, had nothing left to send).
pub const FEWEST_REQUESTS: usize = 4;
pub const MAX_PIPELINE: usize = 250;
/// How often the waits of our requests are reported (`--events`).
pub const WAITS_EVERY: Duration = Duration::from_secs(5);

/// How long our requests to one peer waited for their blocks, over one
/// [`WAITS_EVERY`] window: the time a request spends in both sides' queues
/// and the peer's, which caps what a pipeline of a given depth carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// Blocks that arrived in the window.
    pub blocks: u32,
    pub mean: Duration,
    pub max: Duration,
    /// Requests still in flight at the end of the window.
    pub in_flight: usize,
}

/// The protocol state of one connection.
#[derive(Debug)]
pub struct PeerState {
    /// The pieces the peer has.
    pub has: Bitfield,
    /// The peer chokes us (we may not ask for blocks).
    pub peer_choking: bool,
    /// We are interested in the peer.
    pub am_interested: bool,
    /// We choke the peer (its requests are not served).
    pub we_choke: bool,
    /// Our requests in flight, with when each was asked.
    outstanding: HashMap<BlockRef, Instant>,
    got_first_message: bool,
    last_received: Instant,
    last_block: Instant,
    /// Payload bytes in the current one-second window, and the best of the
    /// last full one and this one.
    window_start: Instant,
    window_bytes: u64,
    rate: u64,
    /// A full one-second window has passed since the first block.
    measured: bool,
    /// Waits of the blocks that arrived since `waits_since`: sum, count, most.
    waits: (Duration, u32, Duration),
    waits_since: Instant,
}

impl PeerState {
    /// A new connection to a peer of a torrent with `pieces` pieces: each
    /// side chokes the other and nobody is interested (BEP 3).
    pub fn new(pieces: usize, now: Instant) -> Self {
        PeerState {
            has: Bitfield::new(pieces),
            peer_choking: true,
            am_interested: false,
            we_choke: true,
            outstanding: HashMap::new(),
            got_first_message: false,
            last_received: now,
            last_block: now,
            window_start: now,
            window_bytes: 0,
            rate: 0,
            measured: false,
            waits: (Duration::ZERO, 0, Duration::ZERO),
            waits_since: now,
        }
    }

    /// A message arrived at `now`: the idle clock starts again. Returns
    /// whether it is the first one other than keep-alives.
    pub fn received(&mut self, message: &Message, now: Instant) -> bool {
        self.last_received = now;
        let first = !self.got_first_message && *message != Message::KeepAlive;
        self.got_first_message |= first;
        first
    }

    /// When the connection ends unless the peer speaks: idle too long, or
    /// holding our requests too long without a block.
    pub fn deadline(&self) -> Instant {
        let idle = self.last_received + IDLE_TIMEOUT;
        if self.outstanding.is_empty() {
            idle
        } else {
            idle.min(self.last_block + SNUB_TIMEOUT)
        }
    }

    /// We choke or unchoke the peer; `false` if that changes nothing.
    pub fn set_we_choke(&mut self, choke: bool) -> bool {
        let changed = choke != self.we_choke;
        self.we_choke = choke;
        changed
    }

    /// Our interest is now `wanted`: the message that says so, if it changed.
    pub fn set_interest(&mut self, wanted: bool) -> Option<Message> {
        if wanted == self.am_interested {
            return None;
        }
        self.am_interested = wanted;
        Some(if wanted {
            Message::Interested
        } else {
            Message::NotInterested
        })
    }

    /// How many more blocks to ask for now: none while choked or not
    /// interested, else enough to keep half a second of the peer's rate in
    /// flight.
    pub fn requests_wanted(&self) -> usize {
        if self.peer_choking || !self.am_interested {
            return 0;
        }
        let floor = if self.measured {
            FEWEST_REQUESTS
        } else {
            MIN_PIPELINE
        };
        let depth = ((self.rate / 2) as usize / MAX_BLOCK_LEN as usize).clamp(floor, MAX_PIPELINE);
        depth.saturating_sub(self.outstanding.len())
    }

    /// We asked for `blocks` at `now`; the snub clock starts with the first
    /// request in flight.
    pub fn requested(&mut self, blocks: &[BlockRef], now: Instant) {
        if self.outstanding.is_empty() && !blocks.is_empty() {
            self.last_block = now;
        }
        self.outstanding
            .extend(blocks.iter().map(|&block| (block, now)));
    }

    /// The peer choked us: our requests in flight will not be served.
    pub fn choked(&mut self) {
        self.peer_choking = true;
        self.outstanding.clear();
    }

    pub fn unchoked(&mut self) {
        self.peer_choking = false;
    }

    /// A block arrived at `now`: it counts towards the peer's rate and the
    /// snub clock starts again. Returns whether we had asked for it.
    pub fn block_arrived(&mut self, block: BlockRef, now: Instant) -> bool {
        self.last_block = now;
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.measured |= self.window_bytes > 0;
            self.rate = self.window_bytes;
            self.window_bytes = 0;
            self.window_start = now;
        }
        self.window_bytes += u64::from(block.length);
        self.rate = self.rate.max(self.window_bytes);
        let Some(asked) = self.outstanding.remove(&block) else {
            return false;
        };
        let waited = now.saturating_duration_since(asked);
        self.waits.0 += waited;
        self.waits.1 += 1;
        self.waits.2 = self.waits.2.max(waited);
        true
    }

    /// Once a [`WAITS_EVERY`], how long the blocks that arrived since the
    /// last report waited (`None` in between, or when none arrived).
    pub fn take_waits(&mut self, now: Instant) -> Option<Waits> {
        if now.saturating_duration_since(self.waits_since) < WAITS_EVERY {
            return None;
        }
        let (sum, blocks, max) =
            std::mem::replace(&mut self.waits, (Duration::ZERO, 0, Duration::ZERO));
        self.waits_since = now;
        (blocks > 0).then(|| Waits {
            blocks,
            mean: sum / blocks,
            max,
            in_flight: self.outstanding.len(),
        })
    }

    /// A request of ours is off (cancelled by us or rejected by the peer);
    /// `false` if it was not in flight.
    pub fn forget(&mut self, block: &BlockRef) -> bool {
        self.outstanding.remove(block).is_some()
    }

    /// The peer has piece `index` (a `have`); `false` if that is no news or
    /// no such piece.
    pub fn peer_has(&mut self, index: u32) -> bool {
        self.has.set(index as usize)
    }

    /// The peer's whole bitfield, replacing what it said before; returns
    /// the old one.
    pub fn replace_has(&mut self, field: Bitfield) -> Bitfield {
        std::mem::replace(&mut self.has, field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(index: u32) -> BlockRef {
        BlockRef {
            index,
            begin: 0,
            length: MAX_BLOCK_LEN,
        }
    }

    fn blocks(n: u32) -> Vec<BlockRef> {
        (0..n).map(block).collect()
    }

    #[test]
    fn a_new_connection_chokes_both_ways_and_asks_for_nothing() {
        let now = Instant::now();
        let mut state = PeerState::new(8, now);
        assert!(state.peer_choking && state.we_choke && !state.am_interested);
        assert_eq!(state.requests_wanted(), 0);
        state.unchoked();
        assert_eq!(state.requests_wanted(), 0, "not interested");
        state.choked();
        assert_eq!(state.set_interest(true), Some(Message::Interested));
        assert_eq!(state.requests_wanted(), 0, "choked");
        state.unchoked();
        assert_eq!(state.requests_wanted(), MIN_PIPELINE);
    }

    #[test]
    fn interest_is_said_only_when_it_changes() {
        let mut state = PeerState::new(8, Instant::now());
        assert_eq!(state.set_interest(false), None);
        assert_eq!(state.set_interest(true), Some(Message::Interested));
        assert_eq!(state.set_interest(true), None);
        assert_eq!(state.set_interest(false), Some(Message::NotInterested));
        assert!(state.set_we_choke(false));
        assert!(!state.set_we_choke(false), "already unchoked");
    }

    #[test]
    fn requests_in_flight_fill_the_pipeline_and_a_choke_voids_them() {
        let now = Instant::now();
        let mut state = PeerState::new(8, now);
        state.set_interest(true);
        state.unchoked();
        state.requested(&blocks(10), now);
        assert_eq!(state.requests_wanted(), MIN_PIPELINE - 10);
        assert!(state.block_arrived(block(3), now));
        assert!(!state.block_arrived(block(3), now), "asked for once");
        assert!(state.forget(&block(4)));
        assert!(!state.forget(&block(4)));
        assert_eq!(state.requests_wanted(), MIN_PIPELINE - 8);
        state.choked();
        assert!(!state.block_arrived(block(5), now), "voided by the choke");
        state.unchoked();
        assert_eq!(state.requests_wanted(), MIN_PIPELINE);
    }

    #[test]
    fn a_fast_peer_gets_a_deeper_pipeline_within_bounds() {
        let start = Instant::now();
        let mut state = PeerState::new(8, start);
        state.set_interest(true);
        state.unchoked();
        // 200 blocks (3.2 MB) in the first second: half a second is 100.
        for n in 0..200 {
            state.block_arrived(block(n), start + Duration::from_millis(n.into()));
        }
        assert_eq!(state.requests_wanted(), 100);
        // The next window starts from nothing, but the last full one counts.
        state.block_arrived(block(0), start + Duration::from_millis(1500));
        assert_eq!(state.requests_wanted(), 100);
        for n in 0..10_000 {
            state.block_arrived(block(n), start + Duration::from_millis(1600));
        }
        assert_eq!(state.requests_wanted(), MAX_PIPELINE);
    }

    #[test]
    fn a_slow_peer_keeps_few_requests_once_measured() {
        let start = Instant::now();
        let mut state = PeerState::new(8, start);
        state.set_interest(true);
        state.unchoked();
        assert_eq!(state.requests_wanted(), MIN_PIPELINE, "not measured yet");
        // One block a second (16 KiB/s): a full window, then the next one.
        state.block_arrived(block(0), start + Duration::from_millis(100));
        assert_eq!(state.requests_wanted(), MIN_PIPELINE);
        state.block_arrived(block(1), start + Duration::from_millis(1200));
        assert_eq!(state.requests_wanted(), FEWEST_REQUESTS);
    }

    #[test]
    fn the_waits_of_requests_are_reported_once_a_window() {
        let start = Instant::now();
        let mut state = PeerState::new(8, start);
        state.set_interest(true);
        state.unchoked();
        state.requested(&blocks(3), start);
        let ms = Duration::from_millis;
        assert!(state.block_arrived(block(0), start + ms(200)));
        assert!(state.block_arrived(block(1), start + ms(600)));
        assert!(
            !state.block_arrived(block(7), start + ms(700)),
            "never asked"
        );
        assert_eq!(
            state.take_waits(start + ms(4000)),
            None,
            "not a full window yet"
        );
        let waits = state
            .take_waits(start + WAITS_EVERY)
            .expect("a window with blocks");
        assert_eq!(
            waits,
            Waits {
                blocks: 2,
                mean: ms(400),
                max: ms(600),
                in_flight: 1,
            }
        );
        // A forgotten request is not a wait; a window without blocks says nothing.
        assert!(state.forget(&block(2)));
        assert_eq!(state.take_waits(start + WAITS_EVERY * 2), None);
    }

    #[test]
    fn silence_ends_the_connection_sooner_with_requests_unanswered() {
        let start = Instant::now();
        let mut state = PeerState::new(8, start);
        assert_eq!(state.deadline(), start + IDLE_TIMEOUT);
        let later = start + Duration::from_secs(5);
        assert!(
            !state.received(&Message::KeepAlive, later),
            "keep-alives are not first"
        );
        assert!(state.received(&Message::Unchoke, later));
        assert!(!state.received(&Message::Unchoke, later), "only once first");
        state.requested(&blocks(2), later);
        assert_eq!(state.deadline(), later + SNUB_TIMEOUT);
        // A second request does not restart the snub clock; a block does.
        state.requested(&[block(7)], later + Duration::from_secs(30));
        assert_eq!(state.deadline(), later + SNUB_TIMEOUT);
        let block_at = later + Duration::from_secs(40);
        state.block_arrived(block(0), block_at);
        assert_eq!(state.deadline(), block_at + SNUB_TIMEOUT);
        state.choked();
        assert_eq!(state.deadline(), later + IDLE_TIMEOUT);
    }

    #[test]
    fn what_the_peer_has_is_news_once() {
        let mut state = PeerState::new(8, Instant::now());
        assert!(state.peer_has(3));
        assert!(!state.peer_has(3));
        assert!(!state.peer_has(8), "no such piece");
        let old = state.replace_has(Bitfield::full(8));
        assert_eq!(old.count(), 1);
        assert!(state.has.is_complete());
    }
}
