//! The connection slots ([`super::slots`]) shared by the accept loop and the
//! connections: a mutex around the pure policy, a [`Notify`] that wakes the
//! accept loop when a slot changes, and a [`Slot`] each connection holds.
//!
//! The accept loop admits connections, and closes those that miss their head
//! deadline ([`Gate::sweep`] at [`Gate::next_deadline`]). A connection tells
//! its slot what it reads and when its head is complete, and learns from
//! [`Slot::closed`] that it was evicted or timed out. The slot is freed when
//! the [`Slot`] is dropped, however the connection ends.
//!
//! The lock is a `std::sync::Mutex`: each critical section is a few map
//! operations with no `.await` inside, so an async lock would only add cost.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::{
    sync::{oneshot, Notify},
    time::Instant,
};
use tracing::{debug, info, warn};

use super::slots::{Admission, SlotId, Slots};

/// Why a connection was told to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Its slot went to a newer connection.
    Evicted,
    /// Its head did not arrive in time.
    TimedOut,
}

/// How often, at most, a continuing run of evictions is logged.
const EVICTION_LOG_EVERY: Duration = Duration::from_secs(60);

/// The slots of one server.
pub struct Gate {
    state: Mutex<State>,
    /// Something changed that the accept loop may care about: a slot freed,
    /// or a connection that waits for a head (and so has a deadline and can
    /// be evicted). Only the accept loop waits here; `notify_one` keeps one
    /// wake-up for it when it is busy elsewhere, so none is lost.
    changed: Notify,
}

struct State {
    slots: Slots<oneshot::Sender<Closed>>,
    log: EvictionLog,
}

impl Gate {
    pub fn new(capacity: usize) -> Arc<Gate> {
        Arc::new(Gate {
            state: Mutex::new(State {
                slots: Slots::new(capacity),
                log: EvictionLog::default(),
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether [`Gate::admit`] would succeed now.
    pub fn has_room(&self) -> bool {
        self.lock().slots.has_room()
    }

    /// A slot for a connection accepted at `now`, evicting the connection
    /// that has waited longest for its head if none is free; `None` when
    /// every slot is busy replying.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Option<Slot> {
        let (sender, closed) = oneshot::channel();
        let (id, report) = {
            let mut state = self.lock();
            let (id, admission) = state.slots.admit(now, sender)?;
            let report = match admission {
                Admission::Free => None,
                Admission::Evicted(victim) => {
                    let _ = victim.send(Closed::Evicted);
                    state.log.evicted(now).map(|r| (r, state.slots.taken()))
                }
            };
            (id, report)
        };
        if let Some((report, slots)) = report {
            log_eviction(report, slots);
        }
        Some(Slot {
            gate: Arc::clone(self),
            id,
            closed,
        })
    }

    /// The earliest head deadline of any connection, if one waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock().slots.next_deadline()
    }

    /// Closes the connections whose head deadline passed at `now`.
    pub fn sweep(&self, now: Instant) {
        let late = self.lock().slots.expire(now);
        if !late.is_empty() {
            debug!(count = late.len(), "request heads timed out");
        }
        for connection in late {
            let _ = connection.send(Closed::TimedOut);
        }
    }

    /// Connections evicted, and closed for a late head, so far.
    pub fn closed_counts(&self) -> (u64, u64) {
        self.lock().slots.closed_counts()
    }

    /// Completes when a slot may have changed since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// One connection's slot, freed on drop.
pub struct Slot {
    gate: Arc<Gate>,
    id: SlotId,
    closed: oneshot::Receiver<Closed>,
}

impl Slot {
    /// `bytes` more of a request head arrived.
    pub fn received(&self, bytes: usize) {
        self.gate.lock().slots.received(self.id, bytes as u64);
    }

    /// The head is complete and the connection is about to answer: from now
    /// on it is never evicted. `false` if it was evicted or timed out first.
    pub fn head_complete(&self) -> bool {
        self.gate.lock().slots.head_complete(self.id)
    }

    /// The reply is sent; the connection waits for the next head, of which
    /// `buffered` bytes have arrived already.
    pub fn wait_for_head(&self, buffered: usize) {
        let now = Instant::now();
        self.gate
            .lock()
            .slots
            .wait_for_head(self.id, now, buffered as u64);
        self.gate.changed.notify_one();
    }

    /// Completes when the connection must close: evicted, or its head late.
    /// Cancel-safe.
    pub async fn closed(&mut self) -> Closed {
        // The sender is only dropped unsent when the slot is released, which
        // happens when this `Slot` is dropped: never while it is awaited.
        (&mut self.closed).await.unwrap_or(Closed::TimedOut)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.lock().slots.release(self.id);
        self.gate.changed.notify_one();
    }
}

/// When to log evictions: when they start, then at most once a
/// [`EVICTION_LOG_EVERY`] while they go on (under attack there may be
/// thousands a second). A quiet [`EVICTION_LOG_EVERY`] ends the episode.
#[derive(Debug, Default)]
struct EvictionLog {
    episode: Option<Episode>,
}

#[derive(Debug)]
struct Episode {
    last: Instant,
    reported: Instant,
    since_report: u64,
}

/// What to say about an eviction.
#[derive(Debug, PartialEq, Eq)]
enum Report {
    Started,
    /// `evicted` since the last line, `seconds` ago.
    Continuing {
        evicted: u64,
        seconds: u64,
    },
}

impl EvictionLog {
    fn evicted(&mut self, now: Instant) -> Option<Report> {
        match &mut self.episode {
            Some(episode) if now.duration_since(episode.last) < EVICTION_LOG_EVERY => {
                episode.last = now;
                episode.since_report += 1;
                let seconds = now.duration_since(episode.reported);
                if seconds < EVICTION_LOG_EVERY {
                    return None;
                }
                let evicted = std::mem::take(&mut episode.since_report);
                episode.reported = now;
                Some(Report::Continuing {
                    evicted,
                    seconds: seconds.as_secs(),
                })
            }
            _ => {
                self.episode = Some(Episode {
                    last: now,
                    reported: now,
                    since_report: 0,
                });
                Some(Report::Started)
            }
        }
    }
}

fn log_eviction(report: Report, slots: usize) {
    match report {
        Report::Started => warn!(
            slots,
            "every connection slot is taken: each new connection now closes the one that has waited longest for its request head (logged again at most once a minute)"
        ),
        Report::Continuing { evicted, seconds } => info!(
            evicted,
            seconds,
            "connection slots still full; still closing the connections that wait longest for a request head"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evictions_are_logged_when_they_start_then_once_a_minute_while_they_go_on() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut log = EvictionLog::default();
        assert_eq!(log.evicted(at(0)), Some(Report::Started));
        let quiet: Vec<_> = (1..60).filter_map(|s| log.evicted(at(s))).collect();
        assert!(quiet.is_empty(), "{quiet:?}");
        assert_eq!(
            log.evicted(at(60)),
            Some(Report::Continuing {
                evicted: 60,
                seconds: 60
            })
        );
        assert_eq!(log.evicted(at(61)), None);
        // A quiet minute ends the episode: the next eviction starts a new one.
        assert_eq!(log.evicted(at(121)), Some(Report::Started));
        assert_eq!(log.evicted(at(122)), None);
    }
}
