//! Pieces to files and back: where every byte of the torrent lives on disk.
//!
//! Storage owns the download directory. Files are created sparse at their
//! final length (`set_len`), and every read and write is positional
//! (`pread`/`pwrite`), so pieces that span files need no whole-file
//! buffering and any number of tasks can use the same handles at once.
//!
//! Safety: the metainfo layer already guarantees every path is a list of
//! plain names (no `..`, no absolute path). Storage adds that no directory
//! or file on the way may be a symbolic link, and opens files with
//! `O_NOFOLLOW`, so the download directory cannot be escaped through a link
//! planted inside it.
//!
//! Writes go one at a time ([`Storage::write_at`] holds a mutex): the kernel
//! serializes writes to one file anyway (the inode lock), and a writer
//! waiting there spins on a CPU the network and the hashing need. Reads and
//! hashing stay parallel.
//!
//! Only verified pieces are written (the caller hashes first), so whatever is
//! on disk is either a whole verified piece or untouched; a restart finds
//! what it has by hashing ([`Storage::verify_existing`]).

use std::{
    fs::{File, OpenOptions},
    io::{self, IoSliceMut},
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Mutex,
};

use common::{bitfield::Bitfield, geometry::Geometry, metainfo::Info};
use rayon::prelude::*;
use sha1::{Digest, Sha1};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}: is a symbolic link; refusing to follow it out of the download directory")]
    Symlink(PathBuf),
    #[error("read or write outside the torrent (offset {offset}, length {length})")]
    OutOfRange { offset: u64, length: u64 },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

struct StoredFile {
    path: PathBuf,
    offset: u64,
    length: u64,
    /// Created empty by this run: it holds no data yet, so checking it is moot.
    fresh: bool,
    handle: File,
}

/// The torrent's files under one directory.
pub struct Storage {
    files: Vec<StoredFile>,
    geometry: Geometry,
    hashes: Vec<[u8; 20]>,
    /// Held while writing (see the module documentation).
    writing: Mutex<()>,
}

/// Checks that no existing component of `relative` below `root` is a link.
fn refuse_links(root: &Path, relative: &Path) -> Result<(), StorageError> {
    let mut path = root.to_owned();
    for component in relative.components() {
        path.push(component);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(StorageError::Symlink(path)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StorageError::Io { path, source: e }),
        }
    }
    Ok(())
}

impl Storage {
    /// Opens (creating if asked) every file of `info` under `root`. With
    /// `create`, missing files are made sparse at full length; without, a
    /// missing file is an error (seeding needs the data).
    pub fn open(root: &Path, info: &Info, create: bool) -> Result<Storage, StorageError> {
        if create {
            std::fs::create_dir_all(root).map_err(io_at(root))?;
        }
        let mut files = Vec::with_capacity(info.files.len());
        for entry in &info.files {
            let relative = entry.relative_path();
            refuse_links(root, &relative)?;
            let path = root.join(&relative);
            if create {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io_at(parent))?;
                    refuse_links(root, &relative)?; // nothing raced a link in
                }
            }
            let existed = std::fs::symlink_metadata(&path).is_ok_and(|m| m.len() > 0);
            let handle = OpenOptions::new()
                .read(true)
                .write(create)
                .create(create)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| {
                    if e.raw_os_error() == Some(libc::ELOOP) {
                        StorageError::Symlink(path.clone())
                    } else {
                        StorageError::Io {
                            path: path.clone(),
                            source: e,
                        }
                    }
                })?;
            if create && handle.metadata().map_err(io_at(&path))?.len() != entry.length {
                handle.set_len(entry.length).map_err(io_at(&path))?;
            }
            files.push(StoredFile {
                path,
                offset: entry.offset,
                length: entry.length,
                fresh: !existed,
                handle,
            });
        }
        Ok(Storage {
            files,
            geometry: Geometry::of(info),
            hashes: info.pieces.clone(),
            writing: Mutex::new(()),
        })
    }

    pub fn piece_count(&self) -> usize {
        self.hashes.len()
    }

    /// Where piece `index` starts, and its length (`None`: no such piece).
    fn piece_span(&self, index: u32) -> Option<(u64, u64)> {
        Some((
            self.geometry.piece_offset(index)?,
            self.geometry.piece_size(index)?,
        ))
    }

    /// The index of the file holding torrent byte `offset` (empty files
    /// before it are skipped).
    fn first_file(&self, offset: u64) -> usize {
        self.files
            .partition_point(|file| file.offset + file.length <= offset)
    }

    /// Calls `f(file, offset_in_file, range_in_buffer)` for each file segment
    /// of the torrent range `[offset, offset + length)`.
    fn segments(
        &self,
        offset: u64,
        length: u64,
        mut f: impl FnMut(&StoredFile, u64, std::ops::Range<usize>) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let end = offset
            .checked_add(length)
            .filter(|&e| e <= self.geometry.total_length);
        let Some(end) = end else {
            return Err(StorageError::OutOfRange { offset, length });
        };
        for file in &self.files[self.first_file(offset)..] {
            if file.offset >= end {
                break;
            }
            let start = offset.max(file.offset);
            let stop = end.min(file.offset + file.length);
            if stop > start {
                f(
                    file,
                    start - file.offset,
                    (start - offset) as usize..(stop - offset) as usize,
                )?;
            }
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at torrent offset `offset`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        self.segments(offset, buf.len() as u64, |file, at, range| {
            file.handle
                .read_exact_at(&mut buf[range], at)
                .map_err(io_at(&file.path))
        })
    }

    /// Reads the torrent bytes from `offset` on into `bufs`, one after the
    /// other, as if they were one buffer. When the range lies in one file
    /// this is one `preadv` system call for all of them: a seeder sends runs
    /// of consecutive blocks this way, with each block's message header
    /// between the buffers.
    pub fn read_vectored_at(
        &self,
        offset: u64,
        bufs: &mut [&mut [u8]],
    ) -> Result<(), StorageError> {
        let length: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        let mut files = 0;
        self.segments(offset, length, |_, _, _| {
            files += 1;
            Ok(())
        })?;
        match self.files.get(self.first_file(offset)) {
            Some(file) if files == 1 => {
                let mut slices: Vec<IoSliceMut<'_>> =
                    bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                let mut rest = &mut slices[..];
                let mut at = offset - file.offset;
                while !rest.is_empty() {
                    let read = rustix::io::preadv(&file.handle, rest, at)
                        .map_err(|e| io_at(&file.path)(e.into()))?;
                    if read == 0 {
                        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
                        return Err(io_at(&file.path)(eof));
                    }
                    at += read as u64;
                    IoSliceMut::advance_slices(&mut rest, read);
                }
                Ok(())
            }
            _ => {
                let mut at = offset;
                for buf in bufs.iter_mut() {
                    self.read_at(at, buf)?;
                    at += buf.len() as u64;
                }
                Ok(())
            }
        }
    }

    /// Writes `data` at torrent offset `offset`.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        // Nothing is left half-done under the lock, so a poisoned one is usable.
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        self.segments(offset, data.len() as u64, |file, at, range| {
            file.handle
                .write_all_at(&data[range], at)
                .map_err(io_at(&file.path))
        })
    }

    /// Whether `data` is piece `index` (SHA-1 matches).
    pub fn piece_matches(&self, index: u32, data: &[u8]) -> bool {
        self.hashes
            .get(index as usize)
            .is_some_and(|hash| <[u8; 20]>::from(Sha1::digest(data)) == *hash)
    }

    /// Hashes `data` and, if it is piece `index`, writes it. Blocking: call it
    /// off the async runtime. Returns whether the piece verified.
    pub fn verify_and_write(&self, index: u32, data: &[u8]) -> Result<bool, StorageError> {
        let Some((offset, size)) = self.piece_span(index) else {
            return Ok(false);
        };
        if data.len() as u64 != size || !self.piece_matches(index, data) {
            return Ok(false);
        }
        self.write_at(offset, data)?;
        Ok(true)
    }

    /// Whether any byte of `[offset, offset + length)` lies in a file that
    /// existed with data before this run.
    fn touches_old_data(&self, offset: u64, length: u64) -> bool {
        let mut old = false;
        let _ = self.segments(offset, length, |file, _, _| {
            old |= !file.fresh;
            Ok(())
        });
        old
    }

    /// Hashes every piece already on disk (in parallel) and returns which
    /// verify. Blocking: call it off the async runtime. A piece whose bytes
    /// lie in a file that is shorter than expected counts as missing, and a
    /// piece wholly inside files this run created is not read at all.
    pub fn verify_existing(&self, progress: &(dyn Fn(u64) + Sync)) -> Bitfield {
        let count = self.piece_count();
        let good: Vec<bool> = (0..count as u32)
            .into_par_iter()
            .map_init(
                || vec![0u8; self.geometry.piece_length as usize],
                |buf, index| {
                    let (offset, size) = self.piece_span(index).unwrap_or_default();
                    let size = size as usize;
                    let ok = self.touches_old_data(offset, size as u64)
                        && self.read_at(offset, &mut buf[..size]).is_ok()
                        && self.piece_matches(index, &buf[..size]);
                    progress(size as u64);
                    ok
                },
            )
            .collect();
        let mut field = Bitfield::new(count);
        for (index, ok) in good.into_iter().enumerate() {
            if ok {
                field.set(index);
            }
        }
        field
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::metainfo::FileEntry;

    /// Three files of 5, 0 and 11 bytes in pieces of 4.
    fn info(data: &[u8]) -> Info {
        let files = vec![
            FileEntry {
                path: vec!["t".into(), "a".into()],
                length: 5,
                offset: 0,
            },
            FileEntry {
                path: vec!["t".into(), "empty".into()],
                length: 0,
                offset: 5,
            },
            FileEntry {
                path: vec!["t".into(), "sub".into(), "b".into()],
                length: 11,
                offset: 5,
            },
        ];
        Info {
            name: "t".into(),
            piece_length: 4,
            pieces: data.chunks(4).map(|c| Sha1::digest(c).into()).collect(),
            multi_file: true,
            files,
            total_length: 16,
            private: false,
            source: None,
            extra: Default::default(),
        }
    }

    #[test]
    fn pieces_spanning_files_are_written_read_and_verified() {
        let data: Vec<u8> = (0..16u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), &info(&data), true).unwrap();
        assert_eq!(
            storage.verify_existing(&|_| {}).count(),
            0,
            "fresh sparse files hold nothing"
        );
        assert!(
            !storage.verify_and_write(1, b"xxxx").unwrap(),
            "a bad piece is refused"
        );
        for (index, chunk) in data.chunks(4).enumerate() {
            assert!(storage.verify_and_write(index as u32, chunk).unwrap());
        }
        assert_eq!(std::fs::read(dir.path().join("t/a")).unwrap(), &data[..5]);
        assert_eq!(
            std::fs::read(dir.path().join("t/sub/b")).unwrap(),
            &data[5..]
        );
        let mut back = [0u8; 7];
        storage.read_at(3, &mut back).unwrap();
        assert_eq!(back, data[3..10]);
        // Vectored, within one file (one preadv) and across all three.
        let (mut x, mut y) = ([0u8; 2], [0u8; 3]);
        storage.read_vectored_at(6, &mut [&mut x, &mut y]).unwrap();
        assert_eq!((x, y), ([6, 7], [8, 9, 10]));
        let (mut x, mut y, mut z) = ([0u8; 4], [0u8; 1], [0u8; 11]);
        storage
            .read_vectored_at(0, &mut [&mut x, &mut y, &mut z])
            .unwrap();
        assert_eq!([&x[..], &y[..], &z[..]].concat(), data);
        assert!(matches!(
            storage.read_vectored_at(10, &mut [&mut [0u8; 3], &mut [0u8; 4]]),
            Err(StorageError::OutOfRange { .. })
        ));
        assert!(matches!(
            storage.read_at(10, &mut [0u8; 7]),
            Err(StorageError::OutOfRange { .. })
        ));

        // Reopened, it finds every piece; with one byte damaged, all but one.
        let again = Storage::open(dir.path(), &info(&data), true).unwrap();
        assert!(again.verify_existing(&|_| {}).is_complete());
        again.write_at(6, b"!").unwrap();
        let found = again.verify_existing(&|_| {});
        assert_eq!(found.count(), 3);
        assert!(!found.get(1));
    }

    #[test]
    fn links_inside_the_download_directory_are_not_followed() {
        let data: Vec<u8> = (0..16u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("t/sub")).unwrap();
        assert!(matches!(
            Storage::open(dir.path(), &info(&data), true),
            Err(StorageError::Symlink(_))
        ));
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "nothing written outside"
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim"), dir.path().join("t/a")).unwrap();
        assert!(matches!(
            Storage::open(dir.path(), &info(&data), true),
            Err(StorageError::Symlink(_))
        ));
        assert!(!outside.path().join("victim").exists());
    }

    #[test]
    fn seeding_needs_the_files_to_exist() {
        let data: Vec<u8> = (0..16u8).collect();
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Storage::open(dir.path(), &info(&data), false),
            Err(StorageError::Io { .. })
        ));
    }
}
