//! Bencode (BEP 3) at the byte level: a strict, bounded structural check and
//! the spans of a dictionary's values, plus thin wrappers over `serde_bencode`.
//!
//! This module owns the rule that no untrusted bytes reach `serde_bencode`
//! before [`check`] has accepted them. `serde_bencode` recurses once per
//! nesting level and trusts string length prefixes; [`check`] walks the input
//! iteratively, with an explicit depth limit, and verifies that every length
//! prefix fits in the input, so a nesting bomb or a `99999999999:` prefix is an
//! error here and never a stack overflow or a huge allocation there.
//!
//! [`dict_value_spans`] gives the byte range of each value of a top-level
//! dictionary, which is how the info-hash is taken over the `info` dictionary
//! exactly as it stands in the file.

use std::{collections::HashSet, ops::Range};

use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

/// Deepest nesting of lists and dictionaries accepted. Metainfo needs 4
/// (root dict > files list > file dict > path list); tracker responses need 3.
pub const MAX_DEPTH: usize = 32;

/// Most digits in an integer or a string length prefix: enough for any i64.
const MAX_INT_DIGITS: usize = 20;

/// What went wrong in a bencoded input, and at which byte offset.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BencodeError {
    #[error("bencode: input ends early at byte {0}")]
    UnexpectedEnd(usize),
    #[error("bencode: unexpected byte {byte:#04x} at byte {offset}")]
    UnexpectedByte { offset: usize, byte: u8 },
    #[error("bencode: malformed integer at byte {0}")]
    BadInteger(usize),
    #[error(
        "bencode: string length at byte {offset} is {len}, more than the {remaining} bytes left"
    )]
    StringTooLong {
        offset: usize,
        len: u64,
        remaining: usize,
    },
    #[error("bencode: nesting deeper than {MAX_DEPTH} at byte {0}")]
    TooDeep(usize),
    #[error("bencode: dictionary key at byte {0} is not a byte string")]
    KeyNotString(usize),
    #[error("bencode: duplicate dictionary key {key:?} at byte {offset}")]
    DuplicateKey { offset: usize, key: String },
    #[error("bencode: {0} bytes of trailing data after the value")]
    TrailingData(usize),
    #[error("bencode: the top-level value is not a dictionary")]
    NotADict,
    #[error("bencode: {0}")]
    Serde(String),
}

/// Checks that `input` holds exactly one well-formed bencoded value, nested at
/// most [`MAX_DEPTH`] deep, with no duplicate keys in any dictionary.
///
/// Leniency, as real torrents need it: dictionary keys need not be sorted.
/// Strictness, as safety needs it: no leading zeros, no `-0`, no trailing data.
pub fn check(input: &[u8]) -> Result<(), BencodeError> {
    let end = skip_value(input, 0)?;
    if end != input.len() {
        return Err(BencodeError::TrailingData(input.len() - end));
    }
    Ok(())
}

/// A dictionary key and the byte range of its value.
pub type DictEntrySpan<'a> = (&'a [u8], Range<usize>);

/// For a checked top-level dictionary, the key and byte range of every value,
/// in file order. `input` must have passed [`check`].
pub fn dict_value_spans(input: &[u8]) -> Result<Vec<DictEntrySpan<'_>>, BencodeError> {
    if input.first() != Some(&b'd') {
        return Err(BencodeError::NotADict);
    }
    let mut spans = Vec::new();
    let mut pos = 1;
    while input.get(pos).ok_or(BencodeError::UnexpectedEnd(pos))? != &b'e' {
        let (key, after_key) = read_string(input, pos)?;
        let value_end = skip_value(input, after_key)?;
        spans.push((key, after_key..value_end));
        pos = value_end;
    }
    Ok(spans)
}

/// The length of the one well-formed value at the start of `input`, which may
/// be followed by other bytes (as a `ut_metadata` data message's dictionary
/// is followed by the piece). Same rules and bounds as [`check`].
pub fn value_len(input: &[u8]) -> Result<usize, BencodeError> {
    skip_value(input, 0)
}

/// The integer a value span holds (`i42e`), or `None` if it holds another
/// kind of value. For spans from [`dict_value_spans`].
pub fn int_of(value: &[u8]) -> Option<i64> {
    match value.first() {
        Some(b'i') => read_int(value, 1, b'e')
            .ok()
            .filter(|&(_, end)| end == value.len())
            .map(|(v, _)| v),
        _ => None,
    }
}

/// The byte string a value span holds (`4:spam`), or `None` if it holds
/// another kind of value. For spans from [`dict_value_spans`].
pub fn bytes_of(value: &[u8]) -> Option<&[u8]> {
    match value.first() {
        Some(b'0'..=b'9') => read_string(value, 0)
            .ok()
            .filter(|&(_, end)| end == value.len())
            .map(|(v, _)| v),
        _ => None,
    }
}

/// Decodes a value after [`check`] has accepted the bytes.
pub fn decode<T: DeserializeOwned>(input: &[u8]) -> Result<T, BencodeError> {
    check(input)?;
    serde_bencode::from_bytes(input).map_err(|e| BencodeError::Serde(e.to_string()))
}

/// Encodes a value; `serde_bencode` sorts dictionary keys as BEP 3 requires.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, BencodeError> {
    serde_bencode::to_bytes(value).map_err(|e| BencodeError::Serde(e.to_string()))
}

/// A streaming bencode writer for hot paths (tracker responses), where
/// building a `Value` tree per request would cost an allocation per key. The
/// caller writes dictionary keys in sorted order, as BEP 3 requires; the
/// tests of every user check the output with [`check`] and a decoder.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(capacity: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Writes after what `buf` already holds, so a server can reuse one
    /// buffer for every reply; [`Writer::finish`] gives it back.
    pub fn appending(buf: Vec<u8>) -> Self {
        Writer { buf }
    }

    pub fn int(&mut self, value: i64) -> &mut Self {
        self.buf.push(b'i');
        if value < 0 {
            self.buf.push(b'-');
        }
        push_decimal(&mut self.buf, value.unsigned_abs());
        self.buf.push(b'e');
        self
    }

    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        push_decimal(&mut self.buf, value.len() as u64);
        self.buf.push(b':');
        self.buf.extend_from_slice(value);
        self
    }

    /// A byte string of `len` bytes that `fill` appends, for a value built
    /// in place (a compact peer list) rather than copied from a buffer.
    ///
    /// # Panics
    /// When `fill` appends other than `len` bytes: a bug in the caller.
    pub fn bytes_with(&mut self, len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        push_decimal(&mut self.buf, len as u64);
        self.buf.push(b':');
        let start = self.buf.len();
        fill(&mut self.buf);
        assert_eq!(self.buf.len() - start, len, "bytes_with: wrong length");
        self
    }

    pub fn dict(&mut self) -> &mut Self {
        self.buf.push(b'd');
        self
    }

    pub fn list(&mut self) -> &mut Self {
        self.buf.push(b'l');
        self
    }

    pub fn end(&mut self) -> &mut Self {
        self.buf.push(b'e');
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Appends `value` in decimal, without the allocation of `to_string`.
pub fn push_decimal(buf: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[start..]);
}

/// One open container while scanning: a list, or a dictionary with the keys
/// seen so far (to refuse duplicates) and whether a key or a value comes next.
enum Frame<'a> {
    List,
    Dict {
        keys: HashSet<&'a [u8]>,
        expect_key: bool,
    },
}

/// Returns the offset just past the value that starts at `start`.
fn skip_value(input: &[u8], start: usize) -> Result<usize, BencodeError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = start;
    loop {
        let byte = *input.get(pos).ok_or(BencodeError::UnexpectedEnd(pos))?;
        if let Some(Frame::Dict {
            keys,
            expect_key: expect_key @ true,
        }) = stack.last_mut()
        {
            if byte != b'e' {
                if !byte.is_ascii_digit() {
                    return Err(BencodeError::KeyNotString(pos));
                }
                let (key, next) = read_string(input, pos)?;
                if !keys.insert(key) {
                    let key = String::from_utf8_lossy(key).into_owned();
                    return Err(BencodeError::DuplicateKey { offset: pos, key });
                }
                *expect_key = false;
                pos = next;
                continue;
            }
            stack.pop();
            pos += 1;
        } else {
            match byte {
                b'i' => pos = read_int(input, pos + 1, b'e')?.1,
                b'0'..=b'9' => pos = read_string(input, pos)?.1,
                b'l' | b'd' => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(BencodeError::TooDeep(pos));
                    }
                    stack.push(if byte == b'l' {
                        Frame::List
                    } else {
                        Frame::Dict {
                            keys: HashSet::new(),
                            expect_key: true,
                        }
                    });
                    pos += 1;
                    continue;
                }
                b'e' if matches!(stack.last(), Some(Frame::List)) => {
                    stack.pop();
                    pos += 1;
                }
                _ => return Err(BencodeError::UnexpectedByte { offset: pos, byte }),
            }
        }
        // A value has just ended: at the top level that is the end; inside a
        // dictionary the next thing is a key; inside a list, another value.
        match stack.last_mut() {
            None => return Ok(pos),
            Some(Frame::Dict { expect_key, .. }) => *expect_key = true,
            Some(Frame::List) => {}
        }
    }
}

/// Reads digits (with an optional leading `-`) from `start` up to the
/// terminator; returns the value and the offset after the terminator.
fn read_int(input: &[u8], start: usize, terminator: u8) -> Result<(i64, usize), BencodeError> {
    let rest = &input[start.min(input.len())..];
    let len = rest
        .iter()
        .take(MAX_INT_DIGITS + 2)
        .position(|&b| b == terminator)
        .ok_or(if rest.len() <= MAX_INT_DIGITS + 1 {
            BencodeError::UnexpectedEnd(input.len())
        } else {
            BencodeError::BadInteger(start)
        })?;
    let text = &rest[..len];
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0')
        && text != b"-0";
    if !canonical {
        return Err(BencodeError::BadInteger(start));
    }
    let value = std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(BencodeError::BadInteger(start))?;
    Ok((value, start + len + 1))
}

/// Reads `<len>:<bytes>` at `start`; returns the bytes and the offset after.
fn read_string(input: &[u8], start: usize) -> Result<(&[u8], usize), BencodeError> {
    let (len, data_start) = read_int(input, start, b':')?;
    if len < 0 || input.get(start) == Some(&b'-') {
        return Err(BencodeError::BadInteger(start));
    }
    let remaining = input.len() - data_start;
    let len = len as u64;
    if len > remaining as u64 {
        return Err(BencodeError::StringTooLong {
            offset: start,
            len,
            remaining,
        });
    }
    let end = data_start + len as usize;
    Ok((&input[data_start..end], end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_bencode::value::Value;

    #[test]
    fn the_writer_writes_integers_and_lengths_as_to_string_would() {
        for n in [0, 7, -7, 10, -10, 1234567890, i64::MAX, i64::MIN] {
            let mut w = Writer::default();
            w.int(n);
            assert_eq!(w.finish(), format!("i{n}e").into_bytes());
        }
        let mut w = Writer::appending(b"x".to_vec());
        w.list()
            .bytes(b"spam")
            .bytes_with(3, |buf| buf.extend_from_slice(b"abc"))
            .bytes(&[0; 12])
            .end();
        let out = w.finish();
        assert_eq!(&out[..20], b"xl4:spam3:abc12:\0\0\0\0");
        check(&out[1..]).unwrap();
    }

    #[test]
    fn accepts_well_formed_values() {
        for ok in [
            &b"i0e"[..],
            b"i-42e",
            b"0:",
            b"4:spam",
            b"le",
            b"de",
            b"l4:spami42ee",
            b"d3:cow3:moo4:spaml1:a1:bee",
            b"d1:b0:1:a0:e", // unsorted keys are tolerated
        ] {
            check(ok).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(ok)));
        }
    }

    #[test]
    fn rejects_each_malformed_class_with_its_error() {
        use BencodeError::*;
        let cases: &[(&[u8], BencodeError)] = &[
            (b"", UnexpectedEnd(0)),
            (b"i42", UnexpectedEnd(3)),
            (b"i04e", BadInteger(1)),
            (b"i-0e", BadInteger(1)),
            (b"ie", BadInteger(1)),
            (b"i1x2e", BadInteger(1)),
            (b"i99999999999999999999e", BadInteger(1)),
            (
                b"-1:a",
                UnexpectedByte {
                    offset: 0,
                    byte: b'-',
                },
            ),
            (
                b"5:abc",
                StringTooLong {
                    offset: 0,
                    len: 5,
                    remaining: 3,
                },
            ),
            (
                b"99999999999:x",
                StringTooLong {
                    offset: 0,
                    len: 99999999999,
                    remaining: 1,
                },
            ),
            (b"l4:spam", UnexpectedEnd(7)),
            (b"di1e1:ae", KeyNotString(1)),
            (
                b"d1:a0:1:a0:e",
                DuplicateKey {
                    offset: 6,
                    key: "a".into(),
                },
            ),
            (b"i1ei2e", TrailingData(3)),
            (
                b"x",
                UnexpectedByte {
                    offset: 0,
                    byte: b'x',
                },
            ),
            (
                b"e",
                UnexpectedByte {
                    offset: 0,
                    byte: b'e',
                },
            ),
            (
                b"d1:ae",
                UnexpectedByte {
                    offset: 4,
                    byte: b'e',
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                &check(input).unwrap_err(),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn nesting_bomb_is_an_error_not_a_stack_overflow() {
        let deep = [vec![b'l'; 1_000_000], vec![b'e'; 1_000_000]].concat();
        assert_eq!(check(&deep), Err(BencodeError::TooDeep(MAX_DEPTH)));
        let mut ok = vec![b'l'; MAX_DEPTH];
        ok.extend(vec![b'e'; MAX_DEPTH]);
        check(&ok).unwrap();
    }

    #[test]
    fn dict_spans_point_at_raw_values() {
        let input = b"d1:zi1e4:infod1:b0:1:a0:ee";
        check(input).unwrap();
        let spans = dict_value_spans(input).unwrap();
        assert_eq!(spans[0].0, b"z");
        assert_eq!(&input[spans[1].1.clone()], b"d1:b0:1:a0:e");
    }

    fn value_strategy() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                proptest::collection::hash_map(
                    proptest::collection::vec(any::<u8>(), 0..6),
                    inner,
                    0..6
                )
                .prop_map(Value::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_encoded_value_checks_and_round_trips(value in value_strategy()) {
            let bytes = encode(&value).unwrap();
            check(&bytes).unwrap();
            let back: Value = decode(&bytes).unwrap();
            prop_assert_eq!(encode(&back).unwrap(), bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let checked = check(&bytes);
            let decoded = decode::<Value>(&bytes);
            // A byte that starts no value (not i, l, d or a digit) is refused.
            if !matches!(bytes.first(), Some(b'i' | b'l' | b'd' | b'0'..=b'9')) {
                prop_assert!(checked.is_err(), "{:?}", bytes);
            }
            // `decode` refuses exactly what `check` refuses, with the same
            // error, and decodes everything `check` lets through.
            match &checked {
                Err(e) => prop_assert_eq!(decoded.as_ref().err(), Some(e)),
                Ok(()) => prop_assert!(decoded.is_ok(), "{:?}: {:?}", bytes, decoded),
            }
            if let Ok(value) = decoded {
                // Accepted input is a canonical value up to key order: its
                // re-encoding has the same length and decodes to the same value.
                let again = encode(&value).unwrap();
                prop_assert_eq!(again.len(), bytes.len());
                prop_assert_eq!(decode::<Value>(&again).unwrap(), value);
                let mut longer = bytes.clone();
                longer.push(b'e');
                prop_assert_eq!(check(&longer), Err(BencodeError::TrailingData(1)));
            }
        }

        #[test]
        fn every_cut_or_changed_encoding_is_refused_or_decodes_consistently(
            value in value_strategy(), at in any::<prop::sample::Index>(), byte in any::<u8>(),
            junk in proptest::collection::vec(any::<u8>(), 1..8),
        ) {
            let bytes = encode(&value).unwrap();
            // Anything after the value is refused as trailing data.
            let mut longer = bytes.clone();
            longer.extend_from_slice(&junk);
            prop_assert_eq!(check(&longer), Err(BencodeError::TrailingData(junk.len())));
            // A value is self-delimiting: no strict prefix of it is a value.
            let cut = at.index(bytes.len());
            prop_assert!(check(&bytes[..cut]).is_err(), "prefix {:?}", &bytes[..cut]);
            // One byte changed: refused, or a value that decodes and re-encodes.
            let mut changed = bytes.clone();
            changed[cut] = byte;
            match decode::<Value>(&changed) {
                Ok(other) => prop_assert_eq!(decode::<Value>(&encode(&other).unwrap()).unwrap(), other),
                Err(e) => prop_assert_eq!(Err(e), check(&changed)),
            }
        }
    }
}
