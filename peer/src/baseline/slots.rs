//! The server's connection slots, and who loses one when they run short:
//! pure policy, the clock passed in. [`super::gate`] shares it between the
//! accept loop and the connections.
//!
//! Every accepted connection holds a slot until it ends. A slot is either
//! *waiting* for a request head (the connection was just accepted, or sits
//! idle between keep-alive requests) or *busy* (a head arrived: its reply is
//! being made or sent).
//!
//! - **Head deadline.** A waiting connection must complete its head by
//!   `since + min(initial + received / MIN_RATE, 2 × initial)`: the shape of
//!   Apache's `mod_reqtimeout` (`header=20-40,MinRate=500`). `initial` is
//!   [`LOOSE`] while at most half the slots are taken, then falls linearly to
//!   [`TIGHT`] when all are, like an nginx whose `client_header_timeout`
//!   shrinks as `worker_connections` run out. Every byte of head received
//!   buys `1 / MIN_RATE` more, so a client slower than [`MIN_RATE`] is cut
//!   off at about `initial`, and a faster one at `2 × initial` at most.
//!   Deadlines are judged at the occupancy of the moment they are checked.
//! - **Eviction.** When every slot is taken, a new connection takes the slot
//!   of the connection that has waited longest for its head (earliest
//!   `since`), so idle connections cannot lock out a client that talks. A
//!   busy slot is never taken: a reply, once started, is finished.
//!
//! Invariants: at most `capacity` entries; `waiting` holds `(since, id)` for
//! exactly the entries in the waiting state.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use tokio::time::Instant;

/// The head deadline while at most half the slots are taken (also how long
/// an idle keep-alive connection stays).
pub const LOOSE: Duration = Duration::from_secs(30);
/// The head deadline when every slot is taken.
pub const TIGHT: Duration = Duration::from_secs(2);
/// Bytes of head per second that earn more time, up to twice the deadline.
pub const MIN_RATE: u64 = 500;

/// One connection's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotId(u64);

/// How a connection got its slot.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission<T> {
    /// A free slot.
    Free,
    /// The slot of `victim`, which waited longest for its head.
    Evicted(T),
}

#[derive(Debug)]
enum State {
    Waiting { since: Instant, received: u64 },
    Busy,
}

#[derive(Debug)]
struct Entry<T> {
    /// What the owner of the slots needs to close this connection.
    handle: T,
    state: State,
}

/// The slots of one server; `T` is the handle that closes a connection.
#[derive(Debug)]
pub struct Slots<T> {
    capacity: usize,
    next_id: u64,
    entries: HashMap<SlotId, Entry<T>>,
    /// Waiting entries, the one waiting longest first.
    waiting: BTreeSet<(Instant, SlotId)>,
    evicted: u64,
    timed_out: u64,
}

impl<T> Slots<T> {
    pub fn new(capacity: usize) -> Self {
        Slots {
            capacity: capacity.max(1),
            next_id: 0,
            entries: HashMap::new(),
            waiting: BTreeSet::new(),
            evicted: 0,
            timed_out: 0,
        }
    }

    /// Slots taken.
    pub fn taken(&self) -> usize {
        self.entries.len()
    }

    /// Connections evicted, and closed for missing their head deadline, so far.
    pub fn closed_counts(&self) -> (u64, u64) {
        (self.evicted, self.timed_out)
    }

    /// Whether [`Slots::admit`] would succeed: a slot is free, or one is
    /// waiting for its head and can be taken.
    pub fn has_room(&self) -> bool {
        self.entries.len() < self.capacity || !self.waiting.is_empty()
    }

    /// Gives a connection accepted at `now` a slot, waiting for its head;
    /// `None` when every slot is busy.
    pub fn admit(&mut self, now: Instant, handle: T) -> Option<(SlotId, Admission<T>)> {
        let admission = if self.entries.len() < self.capacity {
            Admission::Free
        } else {
            let &(since, oldest) = self.waiting.first()?;
            self.waiting.remove(&(since, oldest));
            let victim = self.entries.remove(&oldest)?.handle;
            self.evicted += 1;
            Admission::Evicted(victim)
        };
        let id = SlotId(self.next_id);
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                handle,
                state: State::Waiting {
                    since: now,
                    received: 0,
                },
            },
        );
        self.waiting.insert((now, id));
        Some((id, admission))
    }

    /// `bytes` more of the head arrived.
    pub fn received(&mut self, id: SlotId, bytes: u64) {
        if let Some(Entry {
            state: State::Waiting { received, .. },
            ..
        }) = self.entries.get_mut(&id)
        {
            *received = received.saturating_add(bytes);
        }
    }

    /// The head is complete: the slot is busy from now on and is never
    /// taken. `false` if the connection was evicted or timed out first, and
    /// must close.
    pub fn head_complete(&mut self, id: SlotId) -> bool {
        let Some(entry) = self.entries.get_mut(&id) else {
            return false;
        };
        if let State::Waiting { since, .. } = entry.state {
            self.waiting.remove(&(since, id));
        }
        entry.state = State::Busy;
        true
    }

    /// The reply is sent and the connection waits for its next head from
    /// `now`; `buffered` bytes of it have arrived already.
    pub fn wait_for_head(&mut self, id: SlotId, now: Instant, buffered: u64) {
        if let Some(entry) = self.entries.get_mut(&id) {
            if let State::Waiting { since, .. } = entry.state {
                self.waiting.remove(&(since, id));
            }
            entry.state = State::Waiting {
                since: now,
                received: buffered,
            };
            self.waiting.insert((now, id));
        }
    }

    /// The connection ended: its slot is free.
    pub fn release(&mut self, id: SlotId) {
        if let Some(Entry {
            state: State::Waiting { since, .. },
            ..
        }) = self.entries.remove(&id)
        {
            self.waiting.remove(&(since, id));
        }
    }

    /// The `initial` head deadline at the present occupancy (module docs).
    pub fn initial_deadline(&self) -> Duration {
        let half = self.capacity as f64 / 2.0;
        let filled = ((self.entries.len() as f64 - half) / half).clamp(0.0, 1.0);
        LOOSE - (LOOSE - TIGHT).mul_f64(filled)
    }

    /// When the connection must have its head, if it is waiting for one.
    pub fn deadline(&self, id: SlotId) -> Option<Instant> {
        self.deadline_with(id, self.initial_deadline())
    }

    fn deadline_with(&self, id: SlotId, initial: Duration) -> Option<Instant> {
        match self.entries.get(&id)?.state {
            State::Waiting { since, received } => Some(deadline(since, received, initial)),
            State::Busy => None,
        }
    }

    /// The earliest deadline of any waiting connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        let initial = self.initial_deadline();
        let mut earliest: Option<Instant> = None;
        for &(since, id) in &self.waiting {
            // No later entry can beat `earliest`: each one's deadline is at
            // least its `since + initial`.
            if earliest.is_some_and(|e| since + initial >= e) {
                break;
            }
            if let Some(at) = self.deadline_with(id, initial) {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        }
        earliest
    }

    /// Frees the slots of the waiting connections whose deadline has passed
    /// at `now`, and returns their handles.
    pub fn expire(&mut self, now: Instant) -> Vec<T> {
        let initial = self.initial_deadline();
        let late: Vec<(Instant, SlotId)> = self
            .waiting
            .iter()
            .take_while(|(since, _)| *since + initial <= now)
            .filter(|(_, id)| self.deadline_with(*id, initial).is_some_and(|at| at <= now))
            .copied()
            .collect();
        let mut handles = Vec::with_capacity(late.len());
        for key in late {
            self.waiting.remove(&key);
            if let Some(entry) = self.entries.remove(&key.1) {
                handles.push(entry.handle);
            }
        }
        self.timed_out += handles.len() as u64;
        handles
    }
}

/// `since + min(initial + received / MIN_RATE, 2 × initial)`.
fn deadline(since: Instant, received: u64, initial: Duration) -> Instant {
    let earned = Duration::from_micros(received.saturating_mul(1_000_000 / MIN_RATE));
    since + (initial + earned).min(2 * initial)
}

#[cfg(test)]
mod tests;
