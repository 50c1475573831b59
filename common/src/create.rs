//! Torrent creation: choosing the piece length, listing the files of a path,
//! hashing the pieces in parallel, and encoding the metainfo.
//!
//! Hashing reads each piece with positional reads (`read_at`) straight into a
//! buffer owned by the worker thread that hashes it, so the work spreads over
//! every core without a reader thread in front, reads are piece-sized and
//! sequential within a piece, and memory stays at a few pieces per thread
//! whatever the size of the input.
//!
//! File policy: a directory is walked recursively; entries whose name starts
//! with `.` are skipped unless `include_hidden` is set; symbolic links and
//! special files are skipped (a torrent describes regular files, and following
//! links could pull in data from outside the directory). Files are listed in
//! byte order of their path components, so the same tree always gives the
//! same torrent.

use std::{
    collections::HashMap,
    fs::File,
    io,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use rayon::prelude::*;
use serde_bencode::value::Value;
use sha1::{Digest, Sha1};
use thiserror::Error;

use crate::bencode;
use crate::geometry::Geometry;
use crate::metainfo::{
    check_component, piece_count_for, Metainfo, MetainfoError, MAX_TOTAL_LENGTH,
};

/// Smallest piece length `peer create` writes: one block (16 KiB).
pub const MIN_PIECE_LENGTH: u64 = 16 << 10;
/// Largest piece length `peer create` writes.
pub const MAX_CREATE_PIECE_LENGTH: u64 = 16 << 20;
/// The automatic rule aims for at most this many pieces.
pub const TARGET_MAX_PIECES: u64 = 2000;

#[derive(Debug, Error)]
pub enum CreateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}: no files to put in the torrent")]
    NoFiles(PathBuf),
    #[error("{0}: not a regular file or directory")]
    NotAFileOrDirectory(PathBuf),
    #[error("{path}: file name {name:?} cannot go in a torrent: {reason}")]
    BadName {
        path: PathBuf,
        name: String,
        reason: String,
    },
    #[error("piece length {0} must be a power of two from {MIN_PIECE_LENGTH} to {MAX_CREATE_PIECE_LENGTH}")]
    BadPieceLength(u64),
    #[error("the files add up to more than {MAX_TOTAL_LENGTH} bytes")]
    TooLarge,
    #[error("{0}: file changed size while being hashed")]
    FileChanged(PathBuf),
    #[error("a private torrent needs an announce URL (its peers come only from trackers)")]
    NoTracker,
    #[error("the created torrent does not validate: {0}")]
    Invalid(#[from] MetainfoError),
}

/// The piece length for `total_length` bytes: the smallest power of two from
/// 16 KiB that gives at most 2,000 pieces, capped at 16 MiB. Unless the cap or
/// the floor is reached, the torrent has between 1,000 and 2,000 pieces.
pub fn auto_piece_length(total_length: u64) -> u64 {
    let mut length = MIN_PIECE_LENGTH;
    while length < MAX_CREATE_PIECE_LENGTH
        && piece_count_for(total_length, length) > TARGET_MAX_PIECES
    {
        length *= 2;
    }
    length
}

/// Checks an explicit piece length given by the user.
pub fn check_piece_length(length: u64) -> Result<u64, CreateError> {
    if length.is_power_of_two() && (MIN_PIECE_LENGTH..=MAX_CREATE_PIECE_LENGTH).contains(&length) {
        Ok(length)
    } else {
        Err(CreateError::BadPieceLength(length))
    }
}

/// A file found on disk, to be hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Where it is on disk.
    pub disk_path: PathBuf,
    /// Its components inside the torrent (below the torrent's name).
    pub torrent_path: Vec<String>,
    pub length: u64,
}

/// What `path` holds: the torrent name, whether it is a folder, and its files.
#[derive(Debug, Clone)]
pub struct SourceTree {
    pub name: String,
    pub multi_file: bool,
    pub files: Vec<SourceFile>,
}

impl SourceTree {
    pub fn total_length(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CreateError + '_ {
    move |source| CreateError::Io {
        path: path.to_owned(),
        source,
    }
}

fn name_of(path: &Path) -> Result<String, CreateError> {
    let canonical = path.canonicalize().map_err(io_error(path))?;
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    checked_name(path, name)
}

fn checked_name(path: &Path, name: String) -> Result<String, CreateError> {
    check_component("name", &name).map_err(|e| CreateError::BadName {
        path: path.to_owned(),
        name: name.clone(),
        reason: e.to_string(),
    })?;
    Ok(name)
}

/// Lists the files under `path` following the policy in the module docs.
pub fn scan(path: &Path, include_hidden: bool) -> Result<SourceTree, CreateError> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    let name = name_of(path)?;
    if meta.is_file() {
        let file = SourceFile {
            disk_path: path.to_owned(),
            torrent_path: vec![name.clone()],
            length: meta.len(),
        };
        if file.length == 0 {
            return Err(CreateError::NoFiles(path.to_owned()));
        }
        return Ok(SourceTree {
            name,
            multi_file: false,
            files: vec![file],
        });
    }
    if !meta.is_dir() {
        return Err(CreateError::NotAFileOrDirectory(path.to_owned()));
    }
    let mut files = Vec::new();
    walk(path, &mut Vec::new(), include_hidden, &mut files)?;
    files.sort_by(|a, b| a.torrent_path.cmp(&b.torrent_path));
    if files.iter().all(|f| f.length == 0) {
        return Err(CreateError::NoFiles(path.to_owned()));
    }
    Ok(SourceTree {
        name,
        multi_file: true,
        files,
    })
}

fn walk(
    dir: &Path,
    prefix: &mut Vec<String>,
    include_hidden: bool,
    out: &mut Vec<SourceFile>,
) -> Result<(), CreateError> {
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let disk_path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && !include_hidden {
            continue;
        }
        // file_type() does not follow symbolic links, so links are skipped here.
        let kind = entry.file_type().map_err(io_error(&disk_path))?;
        if kind.is_dir() {
            prefix.push(checked_name(&disk_path, name)?);
            walk(&disk_path, prefix, include_hidden, out)?;
            prefix.pop();
        } else if kind.is_file() {
            let length = entry.metadata().map_err(io_error(&disk_path))?.len();
            let mut torrent_path = prefix.clone();
            torrent_path.push(checked_name(&disk_path, name)?);
            out.push(SourceFile {
                disk_path,
                torrent_path,
                length,
            });
        }
    }
    Ok(())
}

/// Hashes every piece of `files` taken as one byte stream, on the current
/// rayon pool. `progress` is called with the byte count of each hashed piece.
pub fn hash_pieces(
    files: &[SourceFile],
    piece_length: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<[u8; 20]>, CreateError> {
    let mut offsets = Vec::with_capacity(files.len());
    let mut total: u64 = 0;
    for file in files {
        offsets.push(total);
        total = total
            .checked_add(file.length)
            .filter(|&t| t <= MAX_TOTAL_LENGTH)
            .ok_or(CreateError::TooLarge)?;
    }
    let geometry = Geometry::new(piece_length, total).ok_or(CreateError::TooLarge)?;
    let buffer_size =
        usize::try_from(piece_length.min(total)).map_err(|_| CreateError::TooLarge)?;
    (0..geometry.piece_count)
        .into_par_iter()
        .map_init(
            || vec![0u8; buffer_size],
            |buffer, index| {
                let start = geometry.piece_offset(index).unwrap_or(0);
                let len = geometry.piece_size(index).unwrap_or(0) as usize;
                let piece = &mut buffer[..len];
                read_stream(files, &offsets, start, piece)?;
                progress(len as u64);
                Ok(<[u8; 20]>::from(Sha1::digest(piece)))
            },
        )
        .collect()
}

/// Fills `buf` with the bytes at `start` of the concatenation of `files`.
fn read_stream(
    files: &[SourceFile],
    offsets: &[u64],
    start: u64,
    buf: &mut [u8],
) -> Result<(), CreateError> {
    // The last file whose offset is <= start holds the first byte.
    let mut index = offsets.partition_point(|&o| o <= start).saturating_sub(1);
    let mut filled = 0;
    while filled < buf.len() {
        let file = files
            .get(index)
            .ok_or_else(|| CreateError::FileChanged(files[files.len() - 1].disk_path.clone()))?;
        let at = start + filled as u64 - offsets[index];
        let want = ((file.length - at.min(file.length)) as usize).min(buf.len() - filled);
        if want > 0 {
            let handle = File::open(&file.disk_path).map_err(io_error(&file.disk_path))?;
            handle
                .read_exact_at(&mut buf[filled..filled + want], at)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => {
                        CreateError::FileChanged(file.disk_path.clone())
                    }
                    _ => CreateError::Io {
                        path: file.disk_path.clone(),
                        source: e,
                    },
                })?;
            filled += want;
        }
        index += 1;
    }
    Ok(())
}

/// Everything `peer create` asks for besides the files themselves.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Tracker tiers; the first URL of the first tier becomes `announce`.
    pub announce_tiers: Vec<Vec<String>>,
    pub piece_length: Option<u64>,
    pub private: bool,
    pub comment: Option<String>,
    pub source: Option<String>,
    pub web_seeds: Vec<String>,
    pub created_by: Option<String>,
    /// Seconds since the epoch; `None` writes no date.
    pub creation_date: Option<i64>,
}

/// Hashes `tree` and builds its validated metainfo.
pub fn create(
    tree: &SourceTree,
    options: &CreateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Metainfo, CreateError> {
    let tiers: Vec<Vec<String>> = options
        .announce_tiers
        .iter()
        .filter(|t| !t.is_empty())
        .cloned()
        .collect();
    // Without a tracker a torrent is found through the DHT, which BEP 27
    // forbids for private ones.
    if tiers.is_empty() && options.private {
        return Err(CreateError::NoTracker);
    }
    let piece_length = match options.piece_length {
        Some(length) => check_piece_length(length)?,
        None => auto_piece_length(tree.total_length()),
    };
    let hashes = hash_pieces(&tree.files, piece_length, progress)?;

    let text = |s: &str| Value::Bytes(s.as_bytes().to_vec());
    let mut info: HashMap<Vec<u8>, Value> = HashMap::new();
    info.insert(b"name".to_vec(), text(&tree.name));
    info.insert(b"piece length".to_vec(), Value::Int(piece_length as i64));
    info.insert(b"pieces".to_vec(), Value::Bytes(hashes.concat()));
    if tree.multi_file {
        let files = tree.files.iter().map(|f| {
            let mut entry = HashMap::new();
            entry.insert(b"length".to_vec(), Value::Int(f.length as i64));
            entry.insert(
                b"path".to_vec(),
                Value::List(f.torrent_path.iter().map(|c| text(c)).collect()),
            );
            Value::Dict(entry)
        });
        info.insert(b"files".to_vec(), Value::List(files.collect()));
    } else {
        info.insert(b"length".to_vec(), Value::Int(tree.total_length() as i64));
    }
    if options.private {
        info.insert(b"private".to_vec(), Value::Int(1));
    }
    if let Some(source) = &options.source {
        info.insert(b"source".to_vec(), text(source));
    }

    let mut root: HashMap<Vec<u8>, Value> = HashMap::new();
    if let Some(first) = tiers.first() {
        root.insert(b"announce".to_vec(), text(&first[0]));
    }
    if tiers.iter().flatten().count() > 1 {
        let list = tiers
            .iter()
            .map(|t| Value::List(t.iter().map(|u| text(u)).collect()));
        root.insert(b"announce-list".to_vec(), Value::List(list.collect()));
    }
    if let Some(comment) = &options.comment {
        root.insert(b"comment".to_vec(), text(comment));
    }
    if let Some(by) = &options.created_by {
        root.insert(b"created by".to_vec(), text(by));
    }
    if let Some(date) = options.creation_date {
        root.insert(b"creation date".to_vec(), Value::Int(date));
    }
    if !options.web_seeds.is_empty() {
        root.insert(
            b"url-list".to_vec(),
            Value::List(options.web_seeds.iter().map(|u| text(u)).collect()),
        );
    }
    root.insert(b"info".to_vec(), Value::Dict(info));
    let bytes = bencode::encode(&Value::Dict(root)).map_err(MetainfoError::from)?;
    Ok(Metainfo::from_bytes(&bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_piece_length_follows_the_documented_rule() {
        assert_eq!(auto_piece_length(1), MIN_PIECE_LENGTH);
        assert_eq!(auto_piece_length(1 << 30), 1 << 20); // the 1 GiB seed: 1,024 pieces of 1 MiB
        assert_eq!(auto_piece_length(100 << 20), 64 << 10); // 1,600 pieces
        assert_eq!(auto_piece_length(1 << 45), MAX_CREATE_PIECE_LENGTH);
        for total in [40_000_000u64, 1 << 33, 3_000_000_000] {
            let pieces = piece_count_for(total, auto_piece_length(total));
            assert!((1000..=2000).contains(&pieces), "{total}: {pieces}");
        }
    }

    #[test]
    fn explicit_piece_length_must_be_a_power_of_two_in_range() {
        assert!(check_piece_length(1 << 18).is_ok());
        for bad in [0, 1000, 8 << 10, 32 << 20, (1 << 18) + 1] {
            assert!(matches!(
                check_piece_length(bad),
                Err(CreateError::BadPieceLength(_))
            ));
        }
    }

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn pieces_span_files_and_match_a_hash_of_the_concatenation() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        let a: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let b: Vec<u8> = (0..30_000u32).map(|i| (i % 13) as u8).collect();
        write(&root.join("b/inner.bin"), &b);
        write(&root.join("a.bin"), &a);
        write(&root.join(".hidden"), b"skipped");
        write(&root.join("empty"), b"");
        std::os::unix::fs::symlink(root.join("a.bin"), root.join("link")).unwrap();

        let tree = scan(&root, false).unwrap();
        let paths: Vec<_> = tree
            .files
            .iter()
            .map(|f| f.torrent_path.join("/"))
            .collect();
        assert_eq!(paths, ["a.bin", "b/inner.bin", "empty"]);
        assert_eq!(scan(&root, true).unwrap().files.len(), 4);

        let options = CreateOptions {
            announce_tiers: vec![vec!["http://t/a".into()]],
            piece_length: Some(16 << 10),
            ..Default::default()
        };
        let meta = create(&tree, &options, &|_| {}).unwrap();
        let stream = [a, b].concat();
        let expected: Vec<[u8; 20]> = stream
            .chunks(16 << 10)
            .map(|c| Sha1::digest(c).into())
            .collect();
        assert_eq!(meta.info.pieces, expected);
        assert_eq!(meta.info.total_length, 100_000);
        assert_eq!(meta.info.files[1].path, ["data", "b", "inner.bin"]);
        assert!(meta.announce_list.is_empty());
    }

    #[test]
    fn single_file_uses_its_name_and_tiers_become_an_announce_list() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("seed.bin");
        write(&file, &[9u8; 50_000]);
        let options = CreateOptions {
            announce_tiers: vec![
                vec!["http://a".into(), "http://b".into()],
                vec!["http://c".into()],
            ],
            private: true,
            source: Some("lab".into()),
            ..Default::default()
        };
        let meta = create(&scan(&file, false).unwrap(), &options, &|_| {}).unwrap();
        assert!(!meta.info.multi_file);
        assert_eq!(meta.info.name, "seed.bin");
        assert_eq!(meta.info.piece_length, MIN_PIECE_LENGTH);
        assert_eq!(meta.announce.as_deref(), Some("http://a"));
        assert_eq!(meta.announce_list.len(), 2);
        assert!(meta.info.private);
        assert!(meta.creation_date.is_none());
    }

    #[test]
    fn refuses_empty_inputs_and_private_torrents_without_trackers() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            scan(dir.path(), false),
            Err(CreateError::NoFiles(_))
        ));
        write(&dir.path().join("x"), b"1");
        let tree = scan(dir.path(), false).unwrap();
        let private = CreateOptions {
            private: true,
            ..CreateOptions::default()
        };
        assert!(matches!(
            create(&tree, &private, &|_| {}),
            Err(CreateError::NoTracker)
        ));
        // A public torrent without a tracker is trackerless (DHT only).
        let trackerless = create(&tree, &CreateOptions::default(), &|_| {}).unwrap();
        assert!(trackerless.tracker_tiers().is_empty());
        let again = crate::Metainfo::from_bytes(&trackerless.to_bytes()).unwrap();
        assert_eq!(again.info_hash, trackerless.info_hash);
        assert!(matches!(
            scan(&dir.path().join("missing"), false),
            Err(CreateError::Io { .. })
        ));
    }

    #[test]
    fn a_file_that_shrinks_while_hashing_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        write(&file, &[1u8; 40_000]);
        let tree = scan(&file, false).unwrap();
        write(&file, &[1u8; 10]);
        let err = hash_pieces(&tree.files, 16 << 10, &|_| {}).unwrap_err();
        assert!(matches!(err, CreateError::FileChanged(_)), "{err}");
    }
}
