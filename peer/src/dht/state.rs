//! The state file: our node id and the nodes of the routing table, so a
//! restarted node keeps its id and starts from nodes it knew instead of
//! only the bootstrap nodes. A bencoded dictionary, `id` (20 bytes),
//! `nodes` and `nodes6` (compact, 26 bytes per IPv4 node, 38 per IPv6 node,
//! as in KRPC).
//!
//! The file is read as hostile: at most [`MAX_STATE_BYTES`], checked before
//! a field is read, at most [`MAX_SAVED_NODES`] nodes; a bad file is an
//! error the caller logs before starting cold.

use std::{
    io::{self, Read, Write},
    net::{IpAddr, SocketAddr},
    path::Path,
};

use common::{
    bencode::{self, bytes_of, Writer},
    krpc::{NodeId, NodeInfo},
};

/// Largest state file read.
pub const MAX_STATE_BYTES: u64 = 64 * 1024;
/// Most nodes saved and loaded.
pub const MAX_SAVED_NODES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub id: NodeId,
    pub nodes: Vec<NodeInfo>,
}

impl State {
    pub fn encode(&self) -> Vec<u8> {
        let nodes: Vec<&NodeInfo> = self.nodes.iter().take(MAX_SAVED_NODES).collect();
        let mut w = Writer::with_capacity(64 + 38 * nodes.len());
        w.dict().bytes(b"id").bytes(&self.id.0);
        for (key, v4, width) in [(&b"nodes"[..], true, 26), (b"nodes6", false, 38)] {
            let family: Vec<&&NodeInfo> = nodes.iter().filter(|n| n.addr.is_ipv4() == v4).collect();
            w.bytes(key).bytes_with(width * family.len(), |b| {
                for node in &family {
                    b.extend_from_slice(&node.id.0);
                    put(b, &node.addr);
                }
            });
        }
        w.end();
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<State, String> {
        bencode::check(bytes).map_err(|e| e.to_string())?;
        let spans = bencode::dict_value_spans(bytes).map_err(|e| e.to_string())?;
        let field = |key: &[u8]| {
            spans
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, r)| bytes_of(&bytes[r.clone()]))
        };
        let id = field(b"id")
            .and_then(NodeId::from_slice)
            .ok_or("no 20-byte `id`")?;
        let mut nodes = Vec::new();
        for (key, width) in [(&b"nodes"[..], 26), (b"nodes6", 38)] {
            let compact = field(key).unwrap_or_default();
            if compact.len() % width != 0 {
                return Err("a node list is not whole entries".into());
            }
            for entry in compact
                .chunks_exact(width)
                .take(MAX_SAVED_NODES - nodes.len())
            {
                let id = NodeId::from_slice(&entry[..20]).ok_or("bad node id")?;
                let addr = &entry[20..];
                let ip: IpAddr = match <[u8; 4]>::try_from(addr.get(..4).unwrap_or_default()) {
                    Ok(v4) if width == 26 => v4.into(),
                    _ => <[u8; 16]>::try_from(&addr[..16])
                        .map_err(|_| "bad address")?
                        .into(),
                };
                let port = u16::from_be_bytes([addr[width - 22], addr[width - 21]]);
                if port != 0 {
                    nodes.push(NodeInfo {
                        id,
                        addr: SocketAddr::new(ip, port),
                    });
                }
            }
        }
        Ok(State { id, nodes })
    }
}

fn put(buf: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(v4) => buf.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => buf.extend_from_slice(&v6.octets()),
    }
    buf.extend_from_slice(&addr.port().to_be_bytes());
}

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
