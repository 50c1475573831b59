//! The extension protocol (BEP 10) with no I/O: the extended message's frame,
//! the extension handshake, and the messages of the extensions the peer
//! speaks, `ut_metadata` (BEP 9), `ut_pex` (BEP 11) and our own
//! `ledbat_delay` (one-way delay samples, see [`delay`]).
//!
//! An extended message is wire message 20 followed by one byte, the extended
//! id, and a body. Id 0 is the extension handshake; every other id is one the
//! *receiver* assigned in its handshake's `m` dictionary, so ids are per
//! direction: a message is sent with the id the other side chose, and read
//! with the id this side chose ([`handshake::ExtensionIds`]).
//!
//! Every decoder here takes an untrusted body that the wire codec has already
//! bounded to [`MAX_EXTENDED_LEN`] bytes, checks it with
//! [`crate::bencode::check`] or [`crate::bencode::value_len`] (depth and
//! length prefixes bounded) before reading a field, reads only the fields it
//! knows, and caps every list it builds. A violation is an
//! [`ExtensionError`], which closes that one connection.

pub mod delay;
pub mod handshake;
pub mod metadata;
pub mod pex;

use thiserror::Error;

use crate::bencode::BencodeError;

/// The wire message id of every extended message (BEP 10).
pub const EXTENDED_ID: u8 = 20;

/// The extended id of the extension handshake.
pub const HANDSHAKE_ID: u8 = 0;

/// Largest extended message body accepted (after the extended id byte): a
/// metadata piece of 16 KiB with its dictionary, with room to spare. An
/// honest handshake is a few hundred bytes, and an honest PEX message at most
/// about 3.5 KiB (50 added and 50 dropped IPv6 peers).
pub const MAX_EXTENDED_LEN: usize = metadata::PIECE_LEN + 1024;

/// Why an extended message was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExtensionError {
    #[error("extended message: {0}")]
    Bencode(#[from] BencodeError),
    #[error("extended message of {0} bytes is over the {MAX_EXTENDED_LEN}-byte limit")]
    TooLong(usize),
    #[error("extended message: field `{0}` is missing or has the wrong type")]
    BadField(&'static str),
    #[error("extended message: `{field}` has {count} entries, over the limit of {limit}")]
    TooMany {
        field: &'static str,
        count: usize,
        limit: usize,
    },
    #[error("extended message: {0} bytes after the dictionary where none belong")]
    TrailingData(usize),
}

/// Looks up `key` among a checked dictionary's value spans.
fn field<'a>(
    spans: &[crate::bencode::DictEntrySpan<'_>],
    input: &'a [u8],
    key: &[u8],
) -> Option<&'a [u8]> {
    spans
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, range)| &input[range.clone()])
}
