//! The metainfo (`.torrent`) model of BEP 3, with announce-list tiers (BEP 12),
//! web seeds (BEP 19) and the private flag (BEP 27).
//!
//! Untrusted bytes go through three steps, each of which can only fail with a
//! [`MetainfoError`] that names the field at fault:
//! 1. [`bencode::check`] bounds the input (size, nesting, lengths);
//! 2. the root and `info` dictionaries are read field by field into typed
//!    values ([`fields`]);
//! 3. the values are validated into a [`Metainfo`] that cannot be
//!    inconsistent: piece hashes match the total length, every file path is
//!    relative and stays inside the download directory, no two files collide.
//!
//! The info-hash is the SHA-1 of the `info` dictionary's bytes exactly as they
//! stand in the file; those bytes are kept and written back unchanged by
//! [`Metainfo::to_bytes`], together with every key this model does not know.

mod fields;
mod path;

use std::collections::BTreeMap;

use serde_bencode::value::Value;
use thiserror::Error;

use crate::bencode::{self, BencodeError};
pub use crate::geometry::piece_count_for;
use crate::geometry::Geometry;
use crate::types::InfoHash;
use fields::{as_int, as_list, as_text, Fields};
pub use path::{check_component, MAX_COMPONENT_BYTES, MAX_PATH_BYTES};

/// Largest `.torrent` file read: a 1 PiB torrent in 16 MiB pieces needs 1.3 MB
/// of hashes, so 64 MiB leaves room for huge file lists and stops a
/// memory-exhaustion attempt early.
pub const MAX_TORRENT_BYTES: u64 = 64 << 20;
/// Largest piece accepted. A peer keeps a few whole pieces in memory while
/// they verify; 64 MiB is four times the largest common size (16 MiB).
pub const MAX_PIECE_LENGTH: u64 = 64 << 20;
/// Largest single file and largest total: 1 PiB, far above any real torrent
/// and far below where offsets (u64) could overflow when summed.
pub const MAX_TOTAL_LENGTH: u64 = 1 << 50;

/// Why a metainfo file was refused; each variant names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetainfoError {
    #[error("torrent file is {size} bytes, over the {MAX_TORRENT_BYTES}-byte limit")]
    TooLarge { size: u64 },
    #[error("not a valid torrent: {0}")]
    Bencode(#[from] BencodeError),
    #[error("`{field}` is missing")]
    Missing { field: String },
    #[error("`{field}` should be {expected} but is {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("`{field}` is not valid UTF-8")]
    NotUtf8 { field: String },
    #[error("`info.piece length` is {0}; it must be from 1 to {MAX_PIECE_LENGTH}")]
    BadPieceLength(i64),
    #[error("`info.pieces` is {0} bytes long, not a multiple of 20")]
    PiecesNotMultipleOf20(usize),
    #[error(
        "`info.pieces` holds {found} hashes, but {total_length} bytes in pieces of {piece_length} need {expected}"
    )]
    PieceCountMismatch {
        found: usize,
        expected: u64,
        total_length: u64,
        piece_length: u64,
    },
    #[error("`{field}` is {length}; a file length must be from 0 to {MAX_TOTAL_LENGTH}")]
    BadFileLength { field: String, length: i64 },
    #[error("the files add up to more than {MAX_TOTAL_LENGTH} bytes")]
    TotalTooLarge,
    #[error("the torrent holds no data (total length 0)")]
    Empty,
    #[error("`info` has both `length` and `files`")]
    LengthAndFiles,
    #[error("`info.files` is empty")]
    NoFiles,
    #[error("`{field}`: path component {component:?} {reason}")]
    BadPath {
        field: String,
        component: String,
        reason: &'static str,
    },
    #[error("`{field}`: the path is over {MAX_PATH_BYTES} bytes")]
    PathTooLong { field: String },
    #[error("`info.files`: {0:?} is named twice, or both as a file and as a folder")]
    PathConflict(String),
}

/// A validated torrent.
#[derive(Debug, Clone, PartialEq)]
pub struct Metainfo {
    pub info_hash: InfoHash,
    pub announce: Option<String>,
    /// Tiers of tracker URLs (BEP 12), empty tiers dropped.
    pub announce_list: Vec<Vec<String>>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    /// Seconds since the Unix epoch.
    pub creation_date: Option<i64>,
    /// Web seeds (BEP 19 `url-list`).
    pub url_list: Vec<String>,
    pub info: Info,
    /// The `info` dictionary exactly as it was read; the info-hash is its SHA-1.
    raw_info: Vec<u8>,
    /// Root keys this model does not know, kept for [`Metainfo::to_bytes`].
    extra: BTreeMap<Vec<u8>, Value>,
}

/// The `info` dictionary: what the swarm shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub name: String,
    pub piece_length: u64,
    /// One SHA-1 per piece.
    pub pieces: Vec<[u8; 20]>,
    /// True when the torrent has `files` (a folder named `name`), false for
    /// a single file named `name`.
    pub multi_file: bool,
    /// Every file in torrent order, with its path relative to the download
    /// directory (for a multi-file torrent the first component is `name`).
    pub files: Vec<FileEntry>,
    pub total_length: u64,
    pub private: bool,
    pub source: Option<String>,
    /// `info` keys this model does not know (they are in the hashed bytes).
    pub extra: BTreeMap<Vec<u8>, Value>,
}

/// One file of a torrent and where it sits in the torrent's byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Components relative to the download directory; each one checked.
    pub path: Vec<String>,
    pub length: u64,
    /// Offset of the file's first byte in the concatenation of all files.
    pub offset: u64,
}

impl FileEntry {
    /// The path joined with `/`, as tools print it.
    pub fn display_path(&self) -> String {
        self.path.join("/")
    }

    /// The path as a relative filesystem path.
    pub fn relative_path(&self) -> std::path::PathBuf {
        self.path.iter().collect()
    }
}

impl Info {
    pub fn piece_count(&self) -> usize {
        self.pieces.len()
    }

    /// Length of piece `index`, or `None` when there is no such piece.
    pub fn piece_size(&self, index: usize) -> Option<u64> {
        Geometry::of(self).piece_size(u32::try_from(index).ok()?)
    }
}

impl Metainfo {
    /// Parses and validates a `.torrent` file's bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetainfoError> {
        if bytes.len() as u64 > MAX_TORRENT_BYTES {
            return Err(MetainfoError::TooLarge {
                size: bytes.len() as u64,
            });
        }
        bencode::check(bytes)?;
        let info_span = bencode::dict_value_spans(bytes)
            .map_err(|_| MetainfoError::WrongType {
                field: "(root)".into(),
                expected: "a dictionary",
                found: "another value",
            })?
            .into_iter()
            .find(|(key, _)| *key == b"info")
            .map(|(_, span)| span)
            .ok_or_else(|| MetainfoError::Missing {
                field: "info".into(),
            })?;
        let raw_info = bytes[info_span].to_vec();
        let root: Value = bencode::decode(bytes)?;
        let mut root = Fields::new(root, "")?;
        let info = parse_info(Fields::new(root.require("info")?, "info")?)?;

        let announce = root.text("announce")?;
        let announce_list = match root.take("announce-list") {
            None => Vec::new(),
            Some(tiers) => parse_tiers(tiers)?,
        };
        let url_list = match root.take("url-list") {
            None => Vec::new(),
            Some(Value::Bytes(one)) if one.is_empty() => Vec::new(),
            Some(one @ Value::Bytes(_)) => vec![as_text(one, "url-list")?],
            Some(list) => as_list(list, "url-list")?
                .into_iter()
                .enumerate()
                .map(|(i, url)| as_text(url, &format!("url-list[{i}]")))
                .collect::<Result<_, _>>()?,
        };
        Ok(Metainfo {
            info_hash: InfoHash::of_info_bytes(&raw_info),
            announce,
            announce_list,
            comment: root.lossy_text("comment")?,
            created_by: root.lossy_text("created by")?,
            creation_date: root.int("creation date")?,
            url_list,
            info,
            raw_info,
            extra: root.rest(),
        })
    }

    /// A torrent from an `info` dictionary fetched from peers (BEP 9) and
    /// the trackers a magnet link named: the bytes are checked and validated
    /// by the same rules as a `.torrent` file's (bounded bencode, paths that
    /// cannot escape, sizes and piece count that agree). The caller has
    /// already compared their SHA-1 with the info-hash it asked for.
    pub fn from_info_bytes(info: &[u8], tiers: Vec<Vec<String>>) -> Result<Self, MetainfoError> {
        let mut bytes = Vec::with_capacity(info.len() + 16);
        bytes.extend_from_slice(b"d4:info");
        bytes.extend_from_slice(info);
        bytes.push(b'e');
        let mut meta = Metainfo::from_bytes(&bytes)?;
        meta.announce = tiers.first().and_then(|tier| tier.first()).cloned();
        meta.announce_list = if tiers.len() > 1 || tiers.first().is_some_and(|t| t.len() > 1) {
            tiers
        } else {
            Vec::new()
        };
        Ok(meta)
    }

    /// The `info` dictionary's bytes, as hashed.
    pub fn raw_info(&self) -> &[u8] {
        &self.raw_info
    }

    /// Root keys this model does not know.
    pub fn extra(&self) -> &BTreeMap<Vec<u8>, Value> {
        &self.extra
    }

    /// Tracker tiers to try in order: `announce-list` when present (BEP 12
    /// says it then replaces `announce`), else `announce` alone.
    pub fn tracker_tiers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            self.announce_list.clone()
        } else {
            self.announce.iter().map(|url| vec![url.clone()]).collect()
        }
    }

    /// Encodes the torrent: keys sorted, `info` written back byte for byte.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut root: BTreeMap<Vec<u8>, Value> = self.extra.clone();
        let text = |s: &String| Value::Bytes(s.clone().into_bytes());
        if let Some(url) = &self.announce {
            root.insert(b"announce".to_vec(), text(url));
        }
        if !self.announce_list.is_empty() {
            let tiers = self
                .announce_list
                .iter()
                .map(|t| Value::List(t.iter().map(text).collect()));
            root.insert(b"announce-list".to_vec(), Value::List(tiers.collect()));
        }
        if let Some(comment) = &self.comment {
            root.insert(b"comment".to_vec(), text(comment));
        }
        if let Some(by) = &self.created_by {
            root.insert(b"created by".to_vec(), text(by));
        }
        if let Some(date) = self.creation_date {
            root.insert(b"creation date".to_vec(), Value::Int(date));
        }
        if !self.url_list.is_empty() {
            root.insert(
                b"url-list".to_vec(),
                Value::List(self.url_list.iter().map(text).collect()),
            );
        }
        root.insert(b"info".to_vec(), Value::Int(0)); // placeholder: spliced below

        let mut out = Vec::with_capacity(self.raw_info.len() + 512);
        out.push(b'd');
        for (key, value) in &root {
            out.extend_from_slice(format!("{}:", key.len()).as_bytes());
            out.extend_from_slice(key);
            if key == b"info" {
                out.extend_from_slice(&self.raw_info);
            } else {
                // Values read from bencode, or built above, always encode.
                out.extend_from_slice(&bencode::encode(value).unwrap_or_default());
            }
        }
        out.push(b'e');
        out
    }

    /// A magnet link (BEP 9): `xt=urn:btih:<hex>`, `dn`, and a `tr` per tracker.
    pub fn magnet_link(&self) -> String {
        use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
        // RFC 3986 unreserved characters stay as they are.
        const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let mut link = format!(
            "magnet:?xt=urn:btih:{}&dn={}",
            self.info_hash.to_hex(),
            utf8_percent_encode(&self.info.name, COMPONENT)
        );
        for url in self.tracker_tiers().iter().flatten() {
            link.push_str("&tr=");
            link.extend(utf8_percent_encode(url, COMPONENT));
        }
        link
    }
}

fn parse_tiers(value: Value) -> Result<Vec<Vec<String>>, MetainfoError> {
    let mut tiers = Vec::new();
    for (t, tier) in as_list(value, "announce-list")?.into_iter().enumerate() {
        let field = format!("announce-list[{t}]");
        let urls = as_list(tier, &field)?
            .into_iter()
            .enumerate()
            .map(|(u, url)| as_text(url, &format!("{field}[{u}]")))
            .collect::<Result<Vec<_>, _>>()?;
        if !urls.is_empty() {
            tiers.push(urls);
        }
    }
    Ok(tiers)
}

fn parse_info(mut info: Fields) -> Result<Info, MetainfoError> {
    let name = info.text("name")?.ok_or_else(|| MetainfoError::Missing {
        field: "info.name".into(),
    })?;
    path::check_component("info.name", &name)?;

    let piece_length = info
        .int("piece length")?
        .ok_or_else(|| MetainfoError::Missing {
            field: "info.piece length".into(),
        })?;
    if piece_length < 1 || piece_length as u64 > MAX_PIECE_LENGTH {
        return Err(MetainfoError::BadPieceLength(piece_length));
    }
    let piece_length = piece_length as u64;

    let pieces = info
        .bytes("pieces")?
        .ok_or_else(|| MetainfoError::Missing {
            field: "info.pieces".into(),
        })?;
    if pieces.len() % 20 != 0 {
        return Err(MetainfoError::PiecesNotMultipleOf20(pieces.len()));
    }
    let pieces: Vec<[u8; 20]> = pieces
        .chunks_exact(20)
        .map(|c| c.try_into().expect("chunks_exact yields 20 bytes"))
        .collect();

    let length = info.take("length");
    let files_value = info.take("files");
    let (multi_file, files) = match (length, files_value) {
        (Some(_), Some(_)) => return Err(MetainfoError::LengthAndFiles),
        (None, None) => {
            return Err(MetainfoError::Missing {
                field: "info.length".into(),
            })
        }
        (Some(length), None) => {
            let length = file_length(as_int(length, "info.length")?, "info.length")?;
            (
                false,
                vec![FileEntry {
                    path: vec![name.clone()],
                    length,
                    offset: 0,
                }],
            )
        }
        (None, Some(files)) => (true, parse_files(files, &name)?),
    };
    let total_length = files.last().map_or(0, |f| f.offset + f.length);
    if total_length == 0 {
        return Err(MetainfoError::Empty);
    }
    let expected = piece_count_for(total_length, piece_length);
    if pieces.len() as u64 != expected {
        return Err(MetainfoError::PieceCountMismatch {
            found: pieces.len(),
            expected,
            total_length,
            piece_length,
        });
    }
    let private = info.int("private")?.unwrap_or(0) == 1;
    let source = info.text("source")?;
    Ok(Info {
        name,
        piece_length,
        pieces,
        multi_file,
        files,
        total_length,
        private,
        source,
        extra: info.rest(),
    })
}

fn file_length(length: i64, field: &str) -> Result<u64, MetainfoError> {
    if length < 0 || length as u64 > MAX_TOTAL_LENGTH {
        return Err(MetainfoError::BadFileLength {
            field: field.into(),
            length,
        });
    }
    Ok(length as u64)
}

fn parse_files(value: Value, name: &str) -> Result<Vec<FileEntry>, MetainfoError> {
    let list = as_list(value, "info.files")?;
    if list.is_empty() {
        return Err(MetainfoError::NoFiles);
    }
    let mut files = Vec::with_capacity(list.len());
    let mut offset: u64 = 0;
    for (i, entry) in list.into_iter().enumerate() {
        let at = format!("info.files[{i}]");
        let mut entry = Fields::new(entry, &at)?;
        let length_field = entry.field("length");
        let length = entry.int("length")?.ok_or_else(|| MetainfoError::Missing {
            field: length_field.clone(),
        })?;
        let length = file_length(length, &length_field)?;
        let path_field = entry.field("path");
        let components = as_list(entry.require("path")?, &path_field)?;
        if components.is_empty() {
            return Err(MetainfoError::BadPath {
                field: path_field,
                component: String::new(),
                reason: "is missing (empty path)",
            });
        }
        let mut path = Vec::with_capacity(components.len() + 1);
        path.push(name.to_owned());
        for (c, component) in components.into_iter().enumerate() {
            let field = format!("{path_field}[{c}]");
            let component = as_text(component, &field)?;
            path::check_component(&field, &component)?;
            path.push(component);
        }
        path::check_total_length(&path_field, &path)?;
        files.push(FileEntry {
            path,
            length,
            offset,
        });
        offset = offset
            .checked_add(length)
            .filter(|&t| t <= MAX_TOTAL_LENGTH)
            .ok_or(MetainfoError::TotalTooLarge)?;
    }
    path::check_no_conflicts(&files)?;
    Ok(files)
}

#[cfg(test)]
mod tests;
