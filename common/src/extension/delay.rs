//! `ledbat_delay`: one-way delay samples between two peers, so that each
//! can keep the queue in front of its own uplink short (the peer's
//! `bt::uplink`), as uTP (BEP 29) does with its timestamps, here over TCP.
//!
//! Every message carries the sender's clock, `t`, in microseconds modulo
//! 2^32. The receiver subtracts it from its own clock when the message is
//! read: the one-way delay plus the unknown offset between the two clocks.
//! It sends that difference back in its next message as `d`, with the `t`
//! it measured as `e`. Only changes of `d` matter (the offset is constant),
//! so the sender keeps the smallest `d` it saw as the path's base; what `d`
//! rises above it is the time its messages waited in queues, its own
//! uplink's first. `e` tells the sender how old the sample is.
//!
//! A message is a bencoded dictionary of at most three integers in
//! 0..2^32; anything else, or any byte after it, is refused.

use super::{field, ExtensionError, MAX_EXTENDED_LEN};
use crate::bencode::{self, int_of, Writer};

/// The name `ledbat_delay` goes by in the extension handshake's `m`.
pub const LEDBAT_DELAY: &str = "ledbat_delay";

/// Longest message accepted: three integers of at most ten digits with
/// their keys.
pub const MAX_DELAY_LEN: usize = 64;

/// One `ledbat_delay` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayMessage {
    /// `t`: the sender's clock when it sent this, microseconds mod 2^32.
    pub sent: u32,
    /// `d` and `e`: the receiver's last measurement of the sender's own
    /// messages, if it has one to give back.
    pub echo: Option<Echo>,
}

/// A one-way delay measured of the other side's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    /// `d`: our clock at arrival minus their `t`, mod 2^32.
    pub difference: u32,
    /// `e`: the `t` of the message it measured.
    pub of_sent: u32,
}

impl DelayMessage {
    pub fn decode(body: &[u8]) -> Result<Self, ExtensionError> {
        if body.len() > MAX_DELAY_LEN.min(MAX_EXTENDED_LEN) {
            return Err(ExtensionError::TooLong(body.len()));
        }
        bencode::check(body)?;
        let spans = bencode::dict_value_spans(body)?;
        let number = |key: &'static str| -> Result<Option<u32>, ExtensionError> {
            match field(&spans, body, key.as_bytes()) {
                None => Ok(None),
                Some(value) => int_of(value)
                    .and_then(|n| u32::try_from(n).ok())
                    .map(Some)
                    .ok_or(ExtensionError::BadField(key)),
            }
        };
        let sent = number("t")?.ok_or(ExtensionError::BadField("t"))?;
        let echo = match (number("d")?, number("e")?) {
            (Some(difference), Some(of_sent)) => Some(Echo {
                difference,
                of_sent,
            }),
            (None, None) => None,
            (Some(_), None) => return Err(ExtensionError::BadField("e")),
            (None, Some(_)) => return Err(ExtensionError::BadField("d")),
        };
        Ok(DelayMessage { sent, echo })
    }

    /// The bencoded body, keys in sorted order.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(MAX_DELAY_LEN);
        w.dict();
        if let Some(echo) = self.echo {
            w.bytes(b"d").int(i64::from(echo.difference));
            w.bytes(b"e").int(i64::from(echo.of_sent));
        }
        w.bytes(b"t").int(i64::from(self.sent));
        w.end();
        w.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_message_round_trips_as_canonical_bencode() {
        let plain = DelayMessage {
            sent: 7,
            echo: None,
        };
        assert_eq!(plain.encode(), b"d1:ti7ee");
        let full = DelayMessage {
            sent: u32::MAX,
            echo: Some(Echo {
                difference: 0,
                of_sent: 123_456,
            }),
        };
        let encoded = full.encode();
        assert_eq!(encoded, b"d1:di0e1:ei123456e1:ti4294967295ee");
        assert!(encoded.len() <= MAX_DELAY_LEN);
        assert_eq!(DelayMessage::decode(&encoded).unwrap(), full);
    }

    #[test]
    fn odd_messages_are_refused() {
        for body in [
            &b""[..],
            b"de",
            b"d1:ti-1ee",
            b"d1:ti4294967296ee",
            b"d1:t1:xe",
            b"d1:di1e1:ti1ee",
            b"d1:ei1e1:ti1ee",
            b"d1:ti1eex",
            b"li1ee",
            b"d1:ti1e",
        ] {
            assert!(
                DelayMessage::decode(body).is_err(),
                "{:?} decoded",
                String::from_utf8_lossy(body)
            );
        }
        let long = format!("d1:x{}:{}1:ti1ee", 60, "a".repeat(60));
        assert!(matches!(
            DelayMessage::decode(long.as_bytes()),
            Err(ExtensionError::TooLong(_))
        ));
        // Keys it does not know are skipped.
        assert_eq!(DelayMessage::decode(b"d1:ti5e1:zi0ee").unwrap().sent, 5);
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_what_decodes_round_trips(body in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(message) = DelayMessage::decode(&body) {
                prop_assert_eq!(DelayMessage::decode(&message.encode()).unwrap(), message);
            }
        }

        #[test]
        fn any_message_round_trips(sent: u32, echo in proptest::option::of((any::<u32>(), any::<u32>()))) {
            let message = DelayMessage {
                sent,
                echo: echo.map(|(difference, of_sent)| Echo { difference, of_sent }),
            };
            prop_assert!(message.encode().len() <= MAX_DELAY_LEN);
            prop_assert_eq!(DelayMessage::decode(&message.encode()).unwrap(), message);
        }
    }
}
