//! The file a download is written to: `.<name>.part` in the output directory,
//! renamed to `<name>` only when complete, so a partial file is never taken
//! for a whole one; beside it `.<name>.part.meta`, the ETag and length the
//! partial data belongs to, which `--resume` checks against the server's.
//!
//! Received chunks go to a writer thread through a bounded channel, so the
//! network and the disk work at the same time and a slow disk holds the
//! download back instead of filling memory. The thread writes through a
//! 1 MiB buffer.

use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    thread::JoinHandle,
};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// Chunks waiting for the writer (each at most hyper's read buffer, ~400 KiB).
const QUEUE: usize = 16;
const WRITE_BUFFER: usize = 1 << 20;
/// The sidecar is a few hundred bytes; anything longer is not ours.
const MAX_META: u64 = 4096;

/// Where a download named `name` goes in `dir`.
#[derive(Debug, Clone)]
pub struct PartPaths {
    pub done: PathBuf,
    pub part: PathBuf,
    pub meta: PathBuf,
}

impl PartPaths {
    /// `name` must already be a checked plain name.
    pub fn new(dir: &Path, name: &str) -> Self {
        PartPaths {
            done: dir.join(name),
            part: dir.join(format!(".{name}.part")),
            meta: dir.join(format!(".{name}.part.meta")),
        }
    }
}

/// What the partial data was downloaded as.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartMeta {
    /// The server's ETag, if it sent a strong one.
    pub etag: Option<String>,
    /// The whole file's length, if the server said.
    pub length: Option<u64>,
}

/// The sidecar of an earlier run, if there is a readable one.
pub fn read_meta(path: &Path) -> Option<PartMeta> {
    let mut text = String::new();
    File::open(path)
        .ok()?
        .take(MAX_META)
        .read_to_string(&mut text)
        .ok()?;
    serde_json::from_str(&text).ok()
}

pub fn write_meta(path: &Path, meta: &PartMeta) -> io::Result<()> {
    std::fs::write(path, serde_json::to_vec(meta).map_err(io::Error::other)?)
}

/// The length of a partial download, 0 when there is none.
pub fn existing_len(part: &Path) -> io::Result<u64> {
    match std::fs::metadata(part) {
        Ok(meta) if meta.is_file() => Ok(meta.len()),
        Ok(_) => Err(io::Error::other("exists and is not a regular file")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Puts chunks on disk from a thread of its own.
pub struct Writer {
    sender: mpsc::Sender<Bytes>,
    thread: JoinHandle<io::Result<()>>,
}

impl Writer {
    /// Opens `part` for writing from `offset`, dropping anything after it
    /// (offset 0 empties the file).
    pub fn open(part: &Path, offset: u64) -> io::Result<Writer> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(part)?;
        file.set_len(offset)?;
        file.seek(SeekFrom::Start(offset))?;
        let (sender, mut receiver) = mpsc::channel::<Bytes>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("fetch-writer".into())
            .spawn(move || {
                let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
                while let Some(chunk) = receiver.blocking_recv() {
                    out.write_all(&chunk)?;
                }
                out.flush()
            })?;
        Ok(Writer { sender, thread })
    }

    /// Queues a chunk; `false` when the writer has stopped, and then
    /// [`Writer::finish`] says why.
    pub async fn write(&self, chunk: Bytes) -> bool {
        self.sender.send(chunk).await.is_ok()
    }

    /// Writes out what is queued and closes the file.
    pub async fn finish(self) -> io::Result<()> {
        drop(self.sender);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(io::Error::other)?
            .map_err(|_| io::Error::other("the writer thread panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_writer_appends_from_the_offset_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join(".x.part");
        std::fs::write(&part, b"0123456789").unwrap();
        let writer = Writer::open(&part, 4).unwrap();
        assert!(writer.write(Bytes::from_static(b"ab")).await);
        writer.finish().await.unwrap();
        assert_eq!(std::fs::read(&part).unwrap(), b"0123ab");
        assert_eq!(existing_len(&part).unwrap(), 6);
        assert_eq!(existing_len(&dir.path().join("none")).unwrap(), 0);
    }

    #[test]
    fn the_sidecar_round_trips_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PartPaths::new(dir.path(), "seed.bin");
        assert_eq!(paths.part, dir.path().join(".seed.bin.part"));
        let meta = PartMeta {
            etag: Some("\"1-2\"".into()),
            length: Some(10),
        };
        write_meta(&paths.meta, &meta).unwrap();
        assert_eq!(read_meta(&paths.meta), Some(meta));
        std::fs::write(&paths.meta, b"not json").unwrap();
        assert_eq!(read_meta(&paths.meta), None);
    }
}
