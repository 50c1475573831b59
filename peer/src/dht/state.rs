//! The state file on disk: `common::krpc::state`'s format, read at most
//! [`MAX_STATE_BYTES`] and written whole or not at all. A bad file is an
//! error the caller logs before starting cold.

use std::{
    io::{self, Read, Write},
    path::Path,
};

pub use common::krpc::state::{State, MAX_SAVED_NODES};

/// Largest state file read.
pub const MAX_STATE_BYTES: u64 = 64 * 1024;

/// Reads a state file; `Ok(None)` when there is none yet.
pub fn load(path: &Path) -> Result<Option<State>, String> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(format!("{}: over {MAX_STATE_BYTES} bytes", path.display()));
    }
    State::decode(&bytes)
        .map(Some)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a state file whole or not at all (a temporary file beside it,
/// then a rename).
pub fn save(path: &Path, state: &State) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(&state.encode())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use common::krpc::{NodeId, NodeInfo};

    use super::*;

    #[test]
    fn a_state_round_trips_through_a_file_and_hostile_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dht.dat");
        assert_eq!(load(&path).unwrap(), None);
        let state = State {
            id: NodeId([3; 20]),
            nodes: (1..=20u16)
                .map(|p| NodeInfo {
                    id: NodeId([p as u8; 20]),
                    addr: SocketAddr::from(([127, 0, 0, 1], p)),
                })
                .chain([NodeInfo {
                    id: NodeId([99; 20]),
                    addr: "[::1]:7".parse().unwrap(),
                }])
                .collect(),
        };
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
        for junk in [
            &b"garbage"[..],
            b"d2:id3:abce",
            b"d2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes5:abcdee",
        ] {
            std::fs::write(&path, junk).unwrap();
            assert!(load(&path).is_err());
        }
        std::fs::write(&path, vec![b'l'; MAX_STATE_BYTES as usize + 1]).unwrap();
        assert!(load(&path).unwrap_err().contains("over"));
    }
}
