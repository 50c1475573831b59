//! From a request path to a path under the served directory, or a refusal.
//!
//! Two independent defences, so that either alone keeps requests inside DIR:
//!
//! 1. Lexical. The raw path is split on `/` *before* percent-decoding, and each
//!    segment is decoded exactly once. A decoded segment must be a plain name
//!    by the rules for a torrent's path components
//!    ([`common::metainfo::check_component`]): not empty, not `.` or `..`, no
//!    `/`, `\` or NUL. So `..`, `%2e%2e`, `..%2f`, `%5c` and `%00` are refused,
//!    and a double-encoded `%252e%252e` becomes the literal name `%2e%2e`,
//!    which is looked up as such (and normally does not exist).
//! 2. Physical. The joined path is canonicalized (every symbolic link
//!    resolved) and must still lie under the canonical root, so a link inside
//!    DIR that leads out is refused.
//!
//! Someone who can write inside DIR could swap a component for a link between
//! the check and the open; DIR is trusted to its owner, as with any web server.

use std::{
    io::ErrorKind,
    path::{Path, PathBuf},
};

use common::metainfo::check_component;
use percent_encoding::percent_decode_str;

/// Why a path is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 403: the path is malformed, leads outside, or is not readable.
    Forbidden,
    /// 404: nothing there.
    NotFound,
}

/// The decoded segments of a request path (`/` alone gives none); a single
/// trailing `/` is allowed, as in `/dir/`.
pub fn segments(raw_path: &str) -> Result<Vec<String>, Refusal> {
    let Some(rest) = raw_path.strip_prefix('/') else {
        return Err(Refusal::Forbidden);
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/')
        .map(|segment| {
            let decoded = percent_decode_str(segment)
                .decode_utf8()
                .map_err(|_| Refusal::NotFound)?;
            check_component("path", &decoded).map_err(|_| Refusal::Forbidden)?;
            Ok(decoded.into_owned())
        })
        .collect()
}

/// The canonical path of `segments` under `root`, which must itself be canonical.
pub fn resolve(root: &Path, segments: &[String]) -> Result<PathBuf, Refusal> {
    let mut path = root.to_path_buf();
    path.extend(segments);
    let canonical = std::fs::canonicalize(&path).map_err(|e| match e.kind() {
        ErrorKind::PermissionDenied => Refusal::Forbidden,
        _ => Refusal::NotFound,
    })?;
    if canonical.starts_with(root) {
        Ok(canonical)
    } else {
        Err(Refusal::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn plain_paths_decode_once() {
        assert_eq!(segments("/"), Ok(vec![]));
        assert_eq!(segments("/a/b.bin"), Ok(vec!["a".into(), "b.bin".into()]));
        assert_eq!(segments("/dir/"), Ok(vec!["dir".into()]));
        assert_eq!(segments("/with%20space"), Ok(vec!["with space".into()]));
        assert_eq!(segments("/%252e%252e"), Ok(vec!["%2e%2e".into()]));
        assert_eq!(segments("/..."), Ok(vec!["...".into()]));
    }

    #[test]
    fn traversal_in_every_spelling_is_refused() {
        for raw in [
            "/..",
            "/../etc/passwd",
            "/a/../../x",
            "/.",
            "/./a",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/..%2fx",
            "/..%2Fx",
            "/%2e%2e%2fetc%2fpasswd",
            "/a%2f..%2f..%2fx",
            "/..\\x",
            "/..%5cx",
            "/a\\b",
            "/%00",
            "/a%00.bin",
            "//etc/passwd",
            "/a//b",
            "/%2fetc%2fpasswd",
            "etc/passwd",
            "",
            "*",
        ] {
            assert_eq!(segments(raw), Err(Refusal::Forbidden), "{raw:?}");
        }
        assert_eq!(segments("/%ff%fe"), Err(Refusal::NotFound));
    }

    #[test]
    fn symbolic_links_may_not_lead_outside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        let root_path = std::fs::canonicalize(root.path()).unwrap();
        std::fs::write(root_path.join("inside.bin"), b"data").unwrap();
        symlink(outside.path().join("secret"), root_path.join("out-file")).unwrap();
        symlink(outside.path(), root_path.join("out-dir")).unwrap();
        symlink(root_path.join("inside.bin"), root_path.join("in-link")).unwrap();

        let at = |path: &str| resolve(&root_path, &segments(path).unwrap());
        assert_eq!(at("/inside.bin"), Ok(root_path.join("inside.bin")));
        assert_eq!(at("/in-link"), Ok(root_path.join("inside.bin")));
        assert_eq!(at("/"), Ok(root_path.clone()));
        assert_eq!(at("/out-file"), Err(Refusal::Forbidden));
        assert_eq!(at("/out-dir/secret"), Err(Refusal::Forbidden));
        assert_eq!(at("/missing"), Err(Refusal::NotFound));
        assert_eq!(at("/inside.bin/x"), Err(Refusal::NotFound));
    }
}
