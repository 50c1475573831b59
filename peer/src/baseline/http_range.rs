//! HTTP byte ranges (RFC 9110 §14), as pure functions: the single range the
//! server honours in `Range`, and the `Content-Range` the client checks when
//! it resumes.
//!
//! The server honours one range of the forms `bytes=a-b`, `bytes=a-` and
//! `bytes=-n`. Several ranges, other units and malformed values are ignored,
//! which the RFC allows: the answer is then the whole file with 200.

/// What a `Range` header asks of a representation of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: send everything (200).
    Full,
    /// Send bytes `start..=end` (206); `end < length`.
    Partial { start: u64, end: u64 },
    /// A well-formed range that lies outside the representation (416).
    Unsatisfiable,
}

/// Interprets a `Range` header value against a representation of `length` bytes.
pub fn parse_range(header: &str, length: u64) -> RangeRequest {
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match number(last) {
            None => RangeRequest::Full,
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if length == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Partial {
                start: length.saturating_sub(n),
                end: length - 1,
            },
        },
        // `a-` or `a-b`.
        (false, _) => {
            let Some(start) = number(first) else {
                return RangeRequest::Full;
            };
            let end = if last.is_empty() {
                u64::MAX
            } else {
                match number(last) {
                    Some(end) if end >= start => end,
                    _ => return RangeRequest::Full,
                }
            };
            if start >= length {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial {
                    start,
                    end: end.min(length - 1),
                }
            }
        }
        (true, true) => RangeRequest::Full,
    }
}

/// Decimal digits only; a value beyond u64 saturates (it is then simply
/// larger than any file), anything else is malformed.
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u64::MAX))
}

/// `Content-Range` of a 206 answer.
pub fn content_range(start: u64, end: u64, length: u64) -> String {
    format!("bytes {start}-{end}/{length}")
}

/// `Content-Range` of a 416 answer.
pub fn unsatisfied_range(length: u64) -> String {
    format!("bytes */{length}")
}

/// A `Content-Range: bytes a-b/len` value as the client reads it; `total`
/// is `None` for `/*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
    pub total: Option<u64>,
}

/// Parses the `Content-Range` of a 206 answer; `None` when malformed or inconsistent.
pub fn parse_content_range(header: &str) -> Option<ContentRange> {
    let rest = header.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (start, end) = span.split_once('-')?;
    let parse = |t: &str| -> Option<u64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let (start, end) = (parse(start)?, parse(end)?);
    let total = match total {
        "*" => None,
        t => Some(parse(t)?),
    };
    let consistent = start <= end && total.is_none_or(|t| end < t);
    consistent.then_some(ContentRange { start, end, total })
}

#[cfg(test)]
mod tests {
    use super::RangeRequest::*;
    use super::*;

    #[test]
    fn single_ranges_of_the_three_forms() {
        assert_eq!(
            parse_range("bytes=0-99", 1000),
            Partial { start: 0, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=500-", 1000),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            parse_range("bytes=-100", 1000),
            Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            parse_range(" Bytes = 1-1 ", 10),
            Partial { start: 1, end: 1 }
        );
    }

    #[test]
    fn ranges_past_the_end_are_clamped_or_unsatisfiable() {
        assert_eq!(
            parse_range("bytes=900-5000", 1000),
            Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            parse_range("bytes=-5000", 1000),
            Partial { start: 0, end: 999 }
        );
        assert_eq!(
            parse_range("bytes=0-99999999999999999999999", 10),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(
            parse_range("bytes=99999999999999999999999-", 1000),
            Unsatisfiable
        );
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), Unsatisfiable);
    }

    #[test]
    fn malformed_multiple_or_foreign_ranges_are_ignored() {
        for header in [
            "bytes=5-1",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1",
            "0-1",
            "bytes=--1",
            "bytes=-x",
        ] {
            assert_eq!(parse_range(header, 1000), Full, "{header}");
        }
    }

    #[test]
    fn content_range_round_trips_and_rejects_nonsense() {
        let value = content_range(100, 199, 1000);
        assert_eq!(value, "bytes 100-199/1000");
        assert_eq!(
            parse_content_range(&value),
            Some(ContentRange {
                start: 100,
                end: 199,
                total: Some(1000)
            })
        );
        assert_eq!(
            parse_content_range("bytes 0-0/*"),
            Some(ContentRange {
                start: 0,
                end: 0,
                total: None
            })
        );
        assert_eq!(unsatisfied_range(7), "bytes */7");
        for bad in [
            "bytes 5-1/10",
            "bytes 0-10/10",
            "bytes */10",
            "bytes 1-2",
            "items 1-2/3",
            "bytes -1-2/3",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }
}
