//! The torrents the tracker knows by name: read from the `.torrent` files of
//! `--torrents DIR`. With a catalog the tracker serves only those info-hashes
//! (whitelist mode) and shows their names and sizes on the dashboard.

use std::{collections::HashMap, io::Read, path::Path};

use common::{metainfo::MAX_TORRENT_BYTES, InfoHash, Metainfo};

/// What the dashboard shows of a known torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownTorrent {
    pub name: String,
    pub total_length: u64,
}

pub type Catalog = HashMap<InfoHash, KnownTorrent>;

/// Reads every `*.torrent` in `dir`. A file that is not a valid torrent is
/// an error naming it: a whitelist that silently lost an entry would refuse
/// that swarm's peers with no explanation.
pub fn load(dir: &Path) -> Result<Catalog, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut catalog = Catalog::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().is_none_or(|e| e != "torrent") {
            continue;
        }
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_TORRENT_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let meta = Metainfo::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        catalog.insert(
            meta.info_hash,
            KnownTorrent {
                name: meta.info.name,
                total_length: meta.info.total_length,
            },
        );
    }
    Ok(catalog)
}
