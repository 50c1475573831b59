//! The announce and scrape query strings of BEP 3 and BEP 48, both ways.
//!
//! `info_hash` and `peer_id` are 20 raw bytes, percent-encoded, so they are
//! not UTF-8 and a form deserializer cannot read them; scrape repeats
//! `info_hash`. This parser works on bytes: it refuses a query over
//! [`MAX_QUERY_BYTES`], a malformed `%` escape, a missing or wrong-length
//! hash or id, a bad port, a non-numeric counter, an unknown event and a
//! repeated parameter, each with its own [`QueryError`].

use std::{borrow::Cow, net::IpAddr};

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};
use thiserror::Error;

use crate::types::{InfoHash, PeerId};

/// Longest query accepted. A real announce is about 300 bytes; a scrape of
/// [`MAX_SCRAPE_HASHES`] hashes fits even with every hash byte escaped
/// (71 bytes of query per hash), so for a scrape the hash count is the limit.
pub const MAX_QUERY_BYTES: usize = 8192;
/// Most info-hashes in one scrape.
pub const MAX_SCRAPE_HASHES: usize = 100;
/// Longest `key` or `ip` value kept.
const MAX_TEXT_VALUE: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    #[error("query longer than {MAX_QUERY_BYTES} bytes")]
    TooLong,
    #[error("malformed percent-encoding in `{0}`")]
    BadEscape(String),
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{field} must be 20 bytes, got {len}")]
    WrongLength { field: &'static str, len: usize },
    #[error("invalid port")]
    BadPort,
    #[error("{0} is not a number")]
    NotANumber(&'static str),
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    #[error("{0} given more than once")]
    Repeated(&'static str),
    #[error("more than {MAX_SCRAPE_HASHES} info_hash values")]
    TooManyHashes,
    #[error("{0} is too long")]
    ValueTooLong(&'static str),
}

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnnounceEvent {
    /// A regular announce at the tracker's interval (or `event=` empty).
    #[default]
    None,
    Started,
    Completed,
    Stopped,
}

impl AnnounceEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AnnounceEvent::None => "",
            AnnounceEvent::Started => "started",
            AnnounceEvent::Completed => "completed",
            AnnounceEvent::Stopped => "stopped",
        }
    }
}

/// One announce, as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: AnnounceEvent,
    /// BEP 23; true unless the client sent `compact=0`.
    pub compact: bool,
    pub no_peer_id: bool,
    /// `None` when the client did not say.
    pub numwant: Option<u32>,
    pub key: Option<String>,
    /// The `ip` parameter, which a tracker honours only when allowed to.
    pub ip: Option<IpAddr>,
}

/// Percent-decodes `input`, refusing a `%` not followed by two hex digits.
/// `+` stays `+`: clients escape every byte of a hash that is not unreserved.
/// Borrows when there is nothing to decode (names, numbers), so most pairs of
/// an announce cost no allocation.
fn decode(input: &[u8]) -> Result<Cow<'_, [u8]>, QueryError> {
    let Some(first) = input.iter().position(|&b| b == b'%') else {
        return Ok(Cow::Borrowed(input));
    };
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..first]);
    let mut i = first;
    while i < input.len() {
        if input[i] == b'%' {
            let byte = input
                .get(i + 1..i + 3)
                .and_then(|h| Some(hex_digit(h[0])? << 4 | hex_digit(h[1])?))
                .ok_or_else(|| {
                    QueryError::BadEscape(
                        String::from_utf8_lossy(&input[i..input.len().min(i + 3)]).into_owned(),
                    )
                })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Ok(Cow::Owned(out))
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// A decoded `key=value` pair.
type Pair<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// The decoded (key, value) pairs of a query, in order, refusing an
/// oversized query before any parsing.
fn pairs(query: &str) -> Result<impl Iterator<Item = Result<Pair<'_>, QueryError>>, QueryError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(QueryError::TooLong);
    }
    Ok(query
        .as_bytes()
        .split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = match part.iter().position(|&b| b == b'=') {
                Some(eq) => (&part[..eq], &part[eq + 1..]),
                None => (part, &b""[..]),
            };
            Ok((decode(key)?, decode(value)?))
        }))
}

fn number<T: std::str::FromStr>(value: &[u8], field: &'static str) -> Result<T, QueryError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(QueryError::NotANumber(field))
}

fn twenty(value: &[u8], field: &'static str) -> Result<[u8; 20], QueryError> {
    value.try_into().map_err(|_| QueryError::WrongLength {
        field,
        len: value.len(),
    })
}

/// A free-form value, kept as text. The limit applies to the text kept, not
/// to the bytes sent: each invalid UTF-8 sequence becomes a 3-byte U+FFFD, so
/// 128 bytes sent could be 384 kept, and `to_query` would then write a value
/// this parser refuses.
fn text(value: &[u8], field: &'static str) -> Result<String, QueryError> {
    if value.len() > MAX_TEXT_VALUE {
        return Err(QueryError::ValueTooLong(field));
    }
    let text = String::from_utf8_lossy(value);
    if text.len() > MAX_TEXT_VALUE {
        return Err(QueryError::ValueTooLong(field));
    }
    Ok(text.into_owned())
}

/// Stores a parameter, refusing a second occurrence.
fn once<T>(slot: &mut Option<T>, value: T, field: &'static str) -> Result<(), QueryError> {
    if slot.replace(value).is_some() {
        return Err(QueryError::Repeated(field));
    }
    Ok(())
}

impl AnnounceRequest {
    /// Parses the query string of `GET /announce` (without the `?`).
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let (mut info_hash, mut peer_id, mut port) = (None, None, None);
        let (mut uploaded, mut downloaded, mut left, mut event) = (None, None, None, None);
        let (mut compact, mut no_peer_id, mut numwant, mut key, mut ip) =
            (None, None, None, None, None);
        for pair in pairs(query)? {
            let (name, value) = pair?;
            match &*name {
                b"info_hash" => once(
                    &mut info_hash,
                    InfoHash(twenty(&value, "info_hash")?),
                    "info_hash",
                )?,
                b"peer_id" => once(&mut peer_id, PeerId(twenty(&value, "peer_id")?), "peer_id")?,
                b"port" => {
                    let p: u16 = number(&value, "port").map_err(|_| QueryError::BadPort)?;
                    once(&mut port, p, "port")?
                }
                b"uploaded" => once(&mut uploaded, number(&value, "uploaded")?, "uploaded")?,
                b"downloaded" => {
                    once(&mut downloaded, number(&value, "downloaded")?, "downloaded")?
                }
                b"left" => once(&mut left, number(&value, "left")?, "left")?,
                b"event" => {
                    let parsed = match &*value {
                        b"" | b"empty" | b"paused" => AnnounceEvent::None,
                        b"started" => AnnounceEvent::Started,
                        b"completed" => AnnounceEvent::Completed,
                        b"stopped" => AnnounceEvent::Stopped,
                        other => {
                            return Err(QueryError::UnknownEvent(
                                String::from_utf8_lossy(other).into_owned(),
                            ))
                        }
                    };
                    once(&mut event, parsed, "event")?
                }
                b"compact" => once(&mut compact, &*value != b"0", "compact")?,
                b"no_peer_id" => once(&mut no_peer_id, &*value == b"1", "no_peer_id")?,
                b"numwant" => once(&mut numwant, number(&value, "numwant")?, "numwant")?,
                b"key" => once(&mut key, text(&value, "key")?, "key")?,
                b"ip" => {
                    // An unparsable `ip` is ignored, as the address is optional anyway.
                    if let Ok(addr) = text(&value, "ip")?.parse::<IpAddr>() {
                        once(&mut ip, addr, "ip")?
                    }
                }
                _ => {} // supportcrypto, corrupt, ipv6, trackerid, ...: not needed
            }
        }
        let port = port.ok_or(QueryError::Missing("port"))?;
        if port == 0 {
            return Err(QueryError::BadPort);
        }
        Ok(AnnounceRequest {
            info_hash: info_hash.ok_or(QueryError::Missing("info_hash"))?,
            peer_id: peer_id.ok_or(QueryError::Missing("peer_id"))?,
            port,
            uploaded: uploaded.unwrap_or(0),
            downloaded: downloaded.unwrap_or(0),
            left: left.ok_or(QueryError::Missing("left"))?,
            event: event.unwrap_or_default(),
            compact: compact.unwrap_or(true),
            no_peer_id: no_peer_id.unwrap_or(false),
            numwant,
            key,
            ip,
        })
    }

    /// The query string a client sends (without the `?`).
    pub fn to_query(&self) -> String {
        let mut query = format!(
            "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact={}",
            escape(&self.info_hash.0),
            escape(&self.peer_id.0),
            self.port,
            self.uploaded,
            self.downloaded,
            self.left,
            u8::from(self.compact)
        );
        if self.event != AnnounceEvent::None {
            query.push_str("&event=");
            query.push_str(self.event.as_str());
        }
        if self.no_peer_id {
            query.push_str("&no_peer_id=1");
        }
        if let Some(numwant) = self.numwant {
            query.push_str(&format!("&numwant={numwant}"));
        }
        if let Some(key) = &self.key {
            query.push_str(&format!("&key={}", escape(key.as_bytes())));
        }
        if let Some(ip) = &self.ip {
            query.push_str(&format!("&ip={}", escape(ip.to_string().as_bytes())));
        }
        query
    }
}

/// Percent-encodes raw bytes, leaving RFC 3986 unreserved characters as they are.
pub fn escape(bytes: &[u8]) -> String {
    const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encode(bytes, RESERVED).to_string()
}

/// Parses the query string of `GET /scrape`: zero or more `info_hash`.
pub fn parse_scrape(query: &str) -> Result<Vec<InfoHash>, QueryError> {
    let mut hashes = Vec::new();
    for pair in pairs(query)? {
        let (name, value) = pair?;
        if *name == b"info_hash"[..] {
            if hashes.len() == MAX_SCRAPE_HASHES {
                return Err(QueryError::TooManyHashes);
            }
            hashes.push(InfoHash(twenty(&value, "info_hash")?));
        }
    }
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HASH: &str = "%124Vx%9A%BC%DE%F1%23Eg%89%AB%CD%EF%124Vx%9A";

    fn query(extra: &str) -> String {
        format!("info_hash={HASH}&peer_id=-PR0100-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=100{extra}")
    }

    #[test]
    fn parses_a_transmission_style_announce() {
        let q = query("&numwant=80&key=1a2b&compact=1&supportcrypto=1&event=started&ipv6=%3A%3A1");
        let request = AnnounceRequest::parse(&q).unwrap();
        assert_eq!(
            request.info_hash.to_hex(),
            "123456789abcdef123456789abcdef123456789a"
        );
        assert_eq!(&request.peer_id.0[..8], b"-PR0100-");
        assert_eq!((request.port, request.left), (6881, 100));
        assert_eq!(request.event, AnnounceEvent::Started);
        assert_eq!(request.numwant, Some(80));
        assert!(request.compact && !request.no_peer_id);
        assert_eq!(request.key.as_deref(), Some("1a2b"));
    }

    #[test]
    fn each_bad_request_class_has_its_error() {
        let cases: Vec<(String, QueryError)> = vec![
            (
                "info_hash=%12&peer_id=x".into(),
                QueryError::WrongLength {
                    field: "info_hash",
                    len: 1,
                },
            ),
            (
                query("").replace("-PR0100-abcdefghijkl", "short"),
                QueryError::WrongLength {
                    field: "peer_id",
                    len: 5,
                },
            ),
            (
                query("").replace(&format!("info_hash={HASH}&"), ""),
                QueryError::Missing("info_hash"),
            ),
            (
                query("").replace("peer_id=-PR0100-abcdefghijkl&", ""),
                QueryError::Missing("peer_id"),
            ),
            (
                query("").replace("port=6881&", ""),
                QueryError::Missing("port"),
            ),
            (
                query("").replace("port=6881", "port=0"),
                QueryError::BadPort,
            ),
            (
                query("").replace("port=6881", "port=70000"),
                QueryError::BadPort,
            ),
            (
                query("").replace("port=6881", "port=http"),
                QueryError::BadPort,
            ),
            (
                query("").replace("left=100", "left=-1"),
                QueryError::NotANumber("left"),
            ),
            (
                query("").replace("uploaded=0", "uploaded=lots"),
                QueryError::NotANumber("uploaded"),
            ),
            (query("&numwant=many"), QueryError::NotANumber("numwant")),
            (
                query("&event=exploded"),
                QueryError::UnknownEvent("exploded".into()),
            ),
            (query("&port=1"), QueryError::Repeated("port")),
            (query("&x=%zz"), QueryError::BadEscape("%zz".into())),
            (query("&x=%4"), QueryError::BadEscape("%4".into())),
            (query(&"&pad=xxxxxxxx".repeat(1000)), QueryError::TooLong),
        ];
        for (q, expected) in cases {
            assert_eq!(AnnounceRequest::parse(&q), Err(expected.clone()), "{q}");
        }
    }

    #[test]
    fn compact_no_peer_id_and_ip_are_read() {
        let r =
            AnnounceRequest::parse(&query("&compact=0&no_peer_id=1&ip=10.0.0.7&event=")).unwrap();
        assert!(!r.compact && r.no_peer_id);
        assert_eq!(r.ip, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(r.event, AnnounceEvent::None);
    }

    #[test]
    fn scrape_reads_repeated_hashes() {
        let q = format!("info_hash={HASH}&info_hash={}", "a".repeat(20));
        assert_eq!(parse_scrape(&q).unwrap().len(), 2);
        assert_eq!(parse_scrape("").unwrap(), vec![]);
        assert_eq!(
            parse_scrape("info_hash=abc"),
            Err(QueryError::WrongLength {
                field: "info_hash",
                len: 3
            })
        );
        let many = vec![format!("info_hash={}", "b".repeat(20)); MAX_SCRAPE_HASHES + 1].join("&");
        assert_eq!(parse_scrape(&many), Err(QueryError::TooManyHashes));
    }

    proptest! {
        #[test]
        fn every_request_round_trips_through_its_query(
            hash in any::<[u8; 20]>(), id in any::<[u8; 20]>(), port in 1u16.., uploaded in any::<u64>(),
            downloaded in any::<u64>(), left in any::<u64>(), event in 0..4u8, compact in any::<bool>(),
            numwant in proptest::option::of(any::<u32>()),
        ) {
            let request = AnnounceRequest {
                info_hash: InfoHash(hash), peer_id: PeerId(id), port, uploaded, downloaded, left,
                event: [AnnounceEvent::None, AnnounceEvent::Started, AnnounceEvent::Completed, AnnounceEvent::Stopped][event as usize],
                compact, no_peer_id: false, numwant, key: Some("k y".into()), ip: None,
            };
            prop_assert_eq!(AnnounceRequest::parse(&request.to_query()), Ok(request));
        }

        #[test]
        fn arbitrary_queries_never_panic(q in ".{0,300}") {
            let announce = AnnounceRequest::parse(&q);
            let scrape = parse_scrape(&q);
            // Whatever is accepted means the same as its own query string.
            if let Ok(request) = &announce {
                prop_assert_eq!(&AnnounceRequest::parse(&request.to_query()), &announce);
            }
            if let Ok(hashes) = &scrape {
                let again: Vec<String> = hashes.iter().map(|h| format!("info_hash={}", escape(&h.0))).collect();
                prop_assert_eq!(&parse_scrape(&again.join("&")), &scrape);
            }
            // Without a port (not even percent-encoded) an announce is refused.
            if !q.contains("port") && !q.contains('%') {
                prop_assert!(announce.is_err());
            }
        }

        #[test]
        fn a_query_without_a_required_field_is_refused(
            hash in any::<[u8; 20]>(), id in any::<[u8; 20]>(), port in 1u16.., left in any::<u64>(),
            drop in 0..4usize,
        ) {
            let request = AnnounceRequest {
                info_hash: InfoHash(hash), peer_id: PeerId(id), port, uploaded: 0, downloaded: 0, left,
                event: AnnounceEvent::None, compact: true, no_peer_id: false, numwant: None, key: None, ip: None,
            };
            let field = ["info_hash", "peer_id", "port", "left"][drop];
            let query: Vec<String> = request.to_query().split('&')
                .filter(|pair| !pair.starts_with(&format!("{field}=")))
                .map(str::to_owned).collect();
            prop_assert_eq!(AnnounceRequest::parse(&query.join("&")), Err(QueryError::Missing(field)));
            // The same field twice is refused too.
            let twice = format!("{}&{}", request.to_query(), request.to_query());
            prop_assert!(matches!(AnnounceRequest::parse(&twice), Err(QueryError::Repeated(_))));
        }
    }
}
