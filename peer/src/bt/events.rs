//! The optional record of what happened to each piece (`--events FILE`): one
//! JSON line per event, times in seconds since the run started, peers by
//! their peer id in hex, so that a study can draw when each host got each
//! piece and from whom, and which pieces a super-seeder offered to whom.
//!
//! Lines (`t` on every one):
//! - `{"event":"start","peer_id":…,"port":…,"pieces":…,"piece_length":…}`, first;
//! - `{"event":"piece","piece":i,"from":[peer ids]}`: piece `i` verified,
//!   with every peer that sent one of its blocks;
//! - `{"event":"offer","piece":i,"to":id}`: a super-seeder told `to` of `i`;
//! - `{"event":"unchoke","to":id}` and `{"event":"choke","to":id}`;
//! - `{"event":"requests","from":id,"blocks":n,"mean_ms":…,"max_ms":…,"in_flight":k}`:
//!   every 5 s per peer that sent us blocks, how long our requests to it
//!   waited for them (`peer_state::Waits`).
//!
//! Writing is buffered and never blocks the engine's lock: callers gather
//! what they need, release the lock, then record. A write error is logged
//! once and ends the record; the download goes on.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    sync::Mutex,
    time::Instant,
};

use common::PeerId;
use serde::Serialize;
use tracing::warn;

/// One event, as written (with `t` added).
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Start {
        peer_id: String,
        port: u16,
        pieces: u32,
        piece_length: u64,
    },
    Piece {
        piece: u32,
        from: Vec<String>,
    },
    Offer {
        piece: u32,
        to: String,
    },
    Unchoke {
        to: String,
    },
    Choke {
        to: String,
    },
    Requests {
        from: String,
        blocks: u32,
        mean_ms: f64,
        max_ms: f64,
        in_flight: usize,
    },
}

#[derive(Serialize)]
struct Line<'a> {
    t: f64,
    #[serde(flatten)]
    event: &'a Event,
}

/// The event file of one run.
#[derive(Debug)]
pub struct EventLog {
    started: Instant,
    /// `None` after a write failed.
    out: Mutex<Option<BufWriter<File>>>,
}

/// A peer id as the event file names it.
pub fn id(peer: &PeerId) -> String {
    peer.0.iter().map(|b| format!("{b:02x}")).collect()
}

impl EventLog {
    /// Creates (or truncates) `path`; times count from `started`.
    pub fn create(path: &Path, started: Instant) -> std::io::Result<Self> {
        Ok(EventLog {
            started,
            out: Mutex::new(Some(BufWriter::new(File::create(path)?))),
        })
    }

    pub fn record(&self, event: Event) {
        let line = Line {
            t: self.started.elapsed().as_secs_f64(),
            event: &event,
        };
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let Some(writer) = out.as_mut() else { return };
        let written = serde_json::to_writer(&mut *writer, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| writer.write_all(b"\n"));
        if let Err(error) = written {
            warn!("cannot write the event file, no more events recorded: {error}");
            *out = None;
        }
    }

    /// Writes what is buffered (twice a second and at the end of a run).
    pub fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(writer) = out.as_mut() {
            if let Err(error) = writer.flush() {
                warn!("cannot write the event file, no more events recorded: {error}");
                *out = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_one_json_line_with_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let log = EventLog::create(&path, Instant::now()).unwrap();
        let peer = PeerId(*b"-PL0100-abcdefghijkl");
        log.record(Event::Piece {
            piece: 7,
            from: vec![id(&peer)],
        });
        log.record(Event::Unchoke { to: id(&peer) });
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "piece");
        assert_eq!(lines[0]["piece"], 7);
        assert_eq!(
            lines[0]["from"][0],
            "2d504c303130302d6162636465666768696a6b6c"
        );
        assert!(lines[0]["t"].as_f64().unwrap() >= 0.0);
        assert_eq!(lines[1]["event"], "unchoke");
    }
}
