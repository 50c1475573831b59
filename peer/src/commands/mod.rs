//! One module per subcommand, plus what several of them share.

pub mod create;
pub mod dht;
pub mod download;
pub mod fetch;
pub mod info;
pub mod magnet_source;
pub mod serve;

use std::{io::Read, path::Path};

use common::{metainfo::MAX_TORRENT_BYTES, Metainfo};

use crate::exit::{Exit, Failure};

/// Reads and validates a `.torrent` file, reading at most the size limit.
pub fn load_torrent(path: &Path) -> Result<Metainfo, Failure> {
    let io_failure = |e: std::io::Error| Failure::new(Exit::Io, format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io_failure)?;
    let mut bytes = Vec::new();
    file.take(MAX_TORRENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_failure)?;
    Metainfo::from_bytes(&bytes)
        .map_err(|e| Failure::new(Exit::InvalidInput, format!("{}: {e}", path.display())))
}
