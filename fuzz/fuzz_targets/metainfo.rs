//! `Metainfo::from_bytes` on arbitrary bytes.
//!
//! Holds for every torrent that validates: no file path leaves the download
//! directory (each component is one plain name, and joining the components to
//! a root and normalising stays under that root); no two files collide; the
//! piece count matches the total length; offsets add up; the info-hash is the
//! SHA-1 of the raw `info` bytes; and `to_bytes()` re-parses to the same
//! torrent (so the same info-hash).
#![no_main]

use std::path::{Component, Path, PathBuf};

use common::{
    metainfo::{
        piece_count_for, MAX_COMPONENT_BYTES, MAX_PATH_BYTES, MAX_PIECE_LENGTH, MAX_TOTAL_LENGTH,
    },
    InfoHash, Metainfo,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(torrent) = Metainfo::from_bytes(data) else {
        return;
    };
    let info = &torrent.info;

    assert_eq!(
        torrent.info_hash,
        InfoHash::of_info_bytes(torrent.raw_info())
    );
    assert!((1..=MAX_PIECE_LENGTH).contains(&info.piece_length));
    assert!((1..=MAX_TOTAL_LENGTH).contains(&info.total_length));
    assert_eq!(
        info.pieces.len() as u64,
        piece_count_for(info.total_length, info.piece_length)
    );
    assert_plain_name(&info.name);

    assert!(!info.files.is_empty());
    let mut offset = 0;
    for file in &info.files {
        assert_eq!(
            file.offset, offset,
            "offsets are the sum of the lengths before"
        );
        offset += file.length;
        assert!(!file.path.is_empty());
        if info.multi_file {
            assert_eq!(
                file.path[0], info.name,
                "a folder torrent's files are under its name"
            );
            assert!(file.path.len() >= 2);
        } else {
            assert_eq!(file.path, std::slice::from_ref(&info.name));
        }
        for component in &file.path {
            assert_plain_name(component);
        }
        assert!(file.path.iter().map(|c| c.len() + 1).sum::<usize>() <= MAX_PATH_BYTES);
        assert_stays_inside(&file.path);
    }
    assert_eq!(offset, info.total_length);

    let mut paths: Vec<&[String]> = info.files.iter().map(|f| f.path.as_slice()).collect();
    paths.sort_unstable();
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            assert!(!b.starts_with(a), "{a:?} collides with {b:?}");
        }
    }

    let bytes = torrent.to_bytes();
    let again = Metainfo::from_bytes(&bytes).expect("to_bytes re-parses");
    assert_eq!(again.info_hash, torrent.info_hash);
    assert_eq!(again, torrent, "to_bytes keeps every field");
    assert_eq!(again.to_bytes(), bytes, "to_bytes is stable");
});

/// One plain file name: nothing a filesystem would read as a separator, a
/// reference to a parent, or a root.
fn assert_plain_name(component: &str) {
    assert!(!component.is_empty());
    assert!(component != "." && component != "..", "{component:?}");
    assert!(!component.contains(['/', '\\', '\0']), "{component:?}");
    assert!(component.len() <= MAX_COMPONENT_BYTES);
    let mut parts = Path::new(component).components();
    assert_eq!(parts.next(), Some(Component::Normal(component.as_ref())));
    assert_eq!(parts.next(), None);
}

/// Joins the path to a root and normalises it lexically, as a client that
/// resolved `..` itself would: the result must stay strictly under the root.
fn assert_stays_inside(path: &[String]) {
    let root = Path::new("/download/root");
    let joined: PathBuf = path.iter().fold(root.to_path_buf(), |p, c| p.join(c));
    let mut normal = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    assert!(
        normal.starts_with(root) && normal != root,
        "{path:?} -> {normal:?}"
    );
    assert_eq!(
        normal.components().count(),
        root.components().count() + path.len()
    );
}
