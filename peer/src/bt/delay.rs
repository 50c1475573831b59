//! The `ledbat_delay` exchange of one connection (pure; message format in
//! `common::extension::delay`): when to send our clock, what to echo of the
//! peer's, and what the peer's echoes say of the queue our messages to it
//! wait in. [`super::uplink`] turns those samples into our upload rate.
//!
//! The session owns the receiving side ([`OneWay::received`]), the writer
//! task the sending side ([`OneWay::due`]): the state sits behind a mutex
//! they share ([`SharedOneWay`]). A timestamp goes out only with data we
//! upload, or to give back an echo, at most every [`DELAY_EVERY`]: on a
//! 1 Mbit/s uplink with 16 connections that is under 2% of the link.

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use bytes::Bytes;
use common::{
    extension::delay::{DelayMessage, Echo},
    wire::Message,
};

/// Least time between two of our `ledbat_delay` messages on a connection.
pub const DELAY_EVERY: Duration = Duration::from_millis(500);
/// How long a smallest delay stays the base: uTP keeps ten minutes, so that
/// a drift between the two clocks does not read as a queue for long.
pub const BASE_SPAN: Duration = Duration::from_secs(600);
/// Buckets of [`BASE_SPAN`], each the smallest delay of its stretch.
const BASE_BUCKETS: usize = 10;

/// What an echo says: our messages waited `queue` more than the least any
/// waited; the measured message left at `sent_at`, the echo came at
/// `arrived`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub queue: Duration,
    pub sent_at: Instant,
    pub arrived: Instant,
}

/// One connection's side of the exchange.
#[derive(Debug)]
pub struct OneWay {
    /// Our clock's zero: microseconds since it, mod 2^32, are our `t`.
    epoch: Instant,
    /// The id the peer gave `ledbat_delay`; `None`: it does not speak it.
    their_id: Option<u8>,
    /// The peer's last `t` as we measured it, not given back yet.
    echo: Option<Echo>,
    last_sent: Option<Instant>,
    /// Smallest echoed difference per stretch of [`BASE_SPAN`] /
    /// [`BASE_BUCKETS`], newest last, with when its stretch began.
    base: Vec<(Instant, u32)>,
}

/// The state the session and its writer task share.
pub type SharedOneWay = Arc<Mutex<OneWay>>;

/// Locks it; a poisoned lock holds plain numbers, still usable.
pub fn lock(one_way: &SharedOneWay) -> MutexGuard<'_, OneWay> {
    one_way.lock().unwrap_or_else(|e| e.into_inner())
}

impl OneWay {
    pub fn new(now: Instant) -> Self {
        OneWay {
            epoch: now,
            their_id: None,
            echo: None,
            last_sent: None,
            base: Vec::with_capacity(BASE_BUCKETS),
        }
    }

    /// The peer's extension handshake named this id (or none).
    pub fn set_their_id(&mut self, id: Option<u8>) {
        self.their_id = id;
    }

    fn clock(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_micros() as u32
    }

    /// The peer's message, read at `now`: its clock is kept to echo, and
    /// its echo of ours, if any, is a sample of our queue.
    pub fn received(&mut self, message: DelayMessage, now: Instant) -> Option<Sample> {
        let ours = self.clock(now);
        self.echo = Some(Echo {
            difference: ours.wrapping_sub(message.sent),
            of_sent: message.sent,
        });
        let echo = message.echo?;
        let age = Duration::from_micros(u64::from(ours.wrapping_sub(echo.of_sent)));
        let sent_at = now.checked_sub(age)?;
        if sent_at < self.epoch {
            return None; // not a time we sent anything
        }
        let base = self.note_base(echo.difference, now);
        // Signed: the difference may sit on either side of the wrap.
        let above = echo.difference.wrapping_sub(base) as i32;
        Some(Sample {
            queue: Duration::from_micros(above.max(0) as u64),
            sent_at,
            arrived: now,
        })
    }

    /// Keeps `difference` among the per-stretch minima; returns the least.
    fn note_base(&mut self, difference: u32, now: Instant) -> u32 {
        let stretch = BASE_SPAN / BASE_BUCKETS as u32;
        let below = |a: u32, b: u32| (a.wrapping_sub(b) as i32) < 0;
        match self.base.last_mut() {
            Some((began, least)) if now.saturating_duration_since(*began) < stretch => {
                if below(difference, *least) {
                    *least = difference;
                }
            }
            _ => {
                self.base
                    .retain(|&(began, _)| now.saturating_duration_since(began) < BASE_SPAN);
                if self.base.len() == BASE_BUCKETS {
                    self.base.remove(0);
                }
                self.base.push((now, difference));
            }
        }
        let mut least = difference;
        for &(_, value) in &self.base {
            if below(value, least) {
                least = value;
            }
        }
        least
    }

    /// Our message to put on the wire now, if one is due: with data we
    /// upload (`uploading`), or to give back the peer's clock.
    pub fn due(&mut self, uploading: bool, now: Instant) -> Option<Message> {
        let id = self.their_id?;
        if !uploading && self.echo.is_none() {
            return None;
        }
        if self
            .last_sent
            .is_some_and(|last| now.saturating_duration_since(last) < DELAY_EVERY)
        {
            return None;
        }
        self.last_sent = Some(now);
        let message = DelayMessage {
            sent: self.clock(now),
            echo: self.echo.take(),
        };
        Some(Message::Extended {
            id,
            payload: Bytes::from(message.encode()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(message: Message) -> DelayMessage {
        match message {
            Message::Extended { id: 9, payload } => DelayMessage::decode(&payload).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Two peers, `a` uploading to `b`; `queue` is how long a's messages
    /// wait on the way (b's answers go straight back).
    #[test]
    fn echoes_measure_the_queue_our_messages_wait_in() {
        let start = Instant::now();
        // Two clocks that began apart.
        let (mut a, mut b) = (OneWay::new(start), OneWay::new(start + ms(3)));
        assert_eq!(a.due(true, start), None, "no id from the peer yet");
        a.set_their_id(Some(9));
        b.set_their_id(Some(9));
        assert_eq!(b.due(false, start), None, "nothing to upload or echo");
        let mut now = start + ms(4);
        let mut samples = Vec::new();
        for queue in [10, 10, 510, 1010, 10] {
            let sent = decode(a.due(true, now).expect("due with data"));
            assert_eq!(
                a.due(true, now + ms(1)),
                None,
                "not twice within DELAY_EVERY"
            );
            now += ms(queue);
            // From the second round on, a's message gives back b's clock.
            assert_eq!(b.received(sent, now).is_some(), sent.echo.is_some());
            let answer = decode(b.due(false, now).expect("an echo is due"));
            now += ms(5);
            samples.push(a.received(answer, now).expect("a sample"));
            now += DELAY_EVERY;
        }
        let queues: Vec<_> = samples.iter().map(|s| s.queue).collect();
        assert_eq!(queues, [ms(0), ms(0), ms(500), ms(1000), ms(0)]);
        // The sample's message left a + queue + 5 ms before it came back.
        let last = samples[4];
        assert_eq!(last.sent_at, now - DELAY_EVERY - ms(15));
        assert_eq!(last.arrived, now - DELAY_EVERY);
    }

    #[test]
    fn the_base_survives_the_clock_wrap_and_expires() {
        let start = Instant::now();
        let mut a = OneWay::new(start);
        let near_wrap = u32::MAX - 1_000; // 1 ms before the wrap
        assert_eq!(a.note_base(near_wrap, start), near_wrap);
        // 3 ms later in the peer's clock, across the wrap: above the base.
        let after = near_wrap.wrapping_add(3_000);
        assert_eq!(a.note_base(after, start + ms(1)), near_wrap);
        // A smaller one across the wrap is not taken for larger.
        assert_eq!(a.note_base(near_wrap - 500, start + ms(2)), near_wrap - 500);
        // Ten minutes on, the old minima are gone.
        let later = start + BASE_SPAN + ms(10);
        assert_eq!(a.note_base(after, later), after);
        assert!(a.base.len() <= BASE_BUCKETS);
    }

    #[test]
    fn an_echo_of_a_time_we_never_sent_is_no_sample() {
        let start = Instant::now();
        let mut a = OneWay::new(start);
        let odd = DelayMessage {
            sent: 1,
            echo: Some(Echo {
                difference: 5,
                of_sent: u32::MAX, // 71 minutes before our clock began
            }),
        };
        assert_eq!(a.received(odd, start + ms(1)), None);
        // Its own clock is still echoed.
        a.set_their_id(Some(9));
        let echo = decode(a.due(false, start + ms(2)).unwrap()).echo.unwrap();
        assert_eq!(echo.of_sent, 1);
    }
}
