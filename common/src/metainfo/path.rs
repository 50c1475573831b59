//! The rules that keep a torrent's file paths inside the download directory.
//!
//! Every component must be a plain name: not empty, not `.` or `..`, not
//! absolute, without `/`, `\` or NUL, and at most [`MAX_COMPONENT_BYTES`]
//! long; the whole path at most [`MAX_PATH_BYTES`]; and no two files may
//! share a path or sit one inside the other. A path that passes can be joined
//! to the download directory without escaping it or clobbering another file.

use super::{FileEntry, MetainfoError};

/// Longest file name on the common Linux filesystems (NAME_MAX).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Longest relative path accepted (PATH_MAX on Linux).
pub const MAX_PATH_BYTES: usize = 4096;

/// Checks one path component (or the torrent's name).
pub fn check_component(field: &str, component: &str) -> Result<(), MetainfoError> {
    let reason = if component.is_empty() {
        Some("is empty")
    } else if component == "." || component == ".." {
        Some("is a relative reference")
    } else if component.starts_with('/') {
        Some("is absolute")
    } else if component.contains('/') {
        Some("holds `/`")
    } else if component.contains('\\') {
        Some("holds `\\`")
    } else if component.contains('\0') {
        Some("holds NUL")
    } else if component.len() > MAX_COMPONENT_BYTES {
        Some("is over 255 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(MetainfoError::BadPath {
            field: field.to_owned(),
            component: component.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

pub(super) fn check_total_length(field: &str, path: &[String]) -> Result<(), MetainfoError> {
    let bytes: usize = path.iter().map(|c| c.len() + 1).sum();
    if bytes > MAX_PATH_BYTES {
        return Err(MetainfoError::PathTooLong {
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// No path may repeat, and no file may be a folder of another (`a` and `a/b`).
pub(super) fn check_no_conflicts(files: &[FileEntry]) -> Result<(), MetainfoError> {
    let mut paths: Vec<&[String]> = files.iter().map(|f| f.path.as_slice()).collect();
    paths.sort_unstable();
    // In sorted order a path's extensions follow it directly, so comparing
    // neighbours finds every duplicate and every file-inside-a-file.
    for pair in paths.windows(2) {
        if pair[1].starts_with(pair[0]) {
            return Err(MetainfoError::PathConflict(pair[0].join("/")));
        }
    }
    Ok(())
}
