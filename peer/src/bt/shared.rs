//! What the coordinator and every peer session share.
//!
//! [`Shared`] is immutable setup plus atomics and one `std::sync::Mutex`
//! around [`State`]. The mutex is held only for bookkeeping (a pick, a
//! received block copied into its piece buffer, a peer joining or leaving),
//! never across an `.await` and never while hashing or doing file I/O, so a
//! blocking mutex is cheaper than an async one; it is the only lock, so there
//! is no lock order to get wrong.
//!
//! Verified pieces are announced to sessions through the append-only
//! `have_log` and a `watch` of its length: each session keeps a cursor and
//! sends the `have`s it has not sent yet, so no channel can overflow and no
//! session misses one.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, OnceLock,
    },
};

use common::{
    bitfield::Bitfield,
    extension::pex::flags as pex_flags,
    wire::{BlockRef, Geometry},
    InfoHash, PeerId,
};
use rand::{rngs::StdRng, seq::IndexedRandom, SeedableRng};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{
    choke::Slots,
    delay::Sample,
    events::{self, Event, EventLog},
    extensions::Offered,
    picker::{CompletePiece, PeerKey, Picker},
    storage::Storage,
    superseed::Offers,
    verdict::{judge, Checked, Strikes, Verdict},
    workers::Workers,
};
use crate::{dht::service::Dht, rate::RateLimiter};

/// Capacity of a session's command channel; commands are rare (choke
/// changes, endgame cancels), and a full channel drops a cancel, which costs
/// only a duplicate block.
pub const COMMAND_CAPACITY: usize = 256;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Two pieces in verification per core keep every core hashing.
fn verify_slots() -> usize {
    2 * cores()
}

/// What the coordinator tells a session.
#[derive(Debug)]
pub enum Command {
    /// Choke (true) or unchoke (false) the peer.
    Choke(bool),
    /// Cancel a request made to this peer (endgame).
    Cancel(BlockRef),
    /// A piece this peer sent us is verified: tell it now, without waiting
    /// for the batch of `have`s (a super-seeder offers its next piece when
    /// it sees our `have` of the last).
    SendHaves,
    Close,
}

/// A connected peer as the coordinator sees it.
pub struct PeerSlot {
    pub addr: SocketAddr,
    /// Where the peer accepts connections: the address we dialled, or its
    /// IP with the port its extension handshake said; told to others by
    /// peer exchange.
    pub listen: Option<SocketAddr>,
    pub dialed: bool,
    pub id: PeerId,
    pub commands: mpsc::Sender<Command>,
    /// The peer is interested in us.
    pub interested: bool,
    /// We let it download.
    pub unchoked: bool,
    /// Payload bytes this choking round, each way.
    pub down_round: u64,
    pub up_round: u64,
    /// Pieces the peer has, as its bitfield and `have`s said.
    pub pieces: u32,
    /// `pieces` at the start of this choking round.
    pub pieces_round: u32,
    /// The peer's latest measure of the queue our messages wait in
    /// (`delay`), for our upload rate (`uplink`).
    pub delay: Option<Sample>,
}

impl PeerSlot {
    /// Tells the session to choke or unchoke its peer, if that changes
    /// anything. `unchoked` follows only a command that was queued: when the
    /// session's queue is full the slot keeps its old state, and the next
    /// round tries again, so the choker and the session never disagree.
    pub fn set_unchoked(&mut self, unchoke: bool) {
        if unchoke != self.unchoked && self.commands.try_send(Command::Choke(!unchoke)).is_ok() {
            self.unchoked = unchoke;
        }
    }
}

pub struct State {
    pub picker: Picker,
    /// Verified pieces in the order they verified.
    pub have_log: Vec<u32>,
    pub peers: HashMap<PeerKey, PeerSlot>,
    /// Who each key was, with whether we dialled its address (so the
    /// address is its listening one), also after it left.
    pub identities: HashMap<PeerKey, (PeerId, SocketAddr, bool)>,
    next_key: PeerKey,
    strikes: Strikes,
    pub banned_ids: HashSet<PeerId>,
    pub banned_addrs: HashSet<SocketAddr>,
    /// Distinct peers that sent us at least one wanted block.
    pub senders: HashSet<PeerId>,
    /// Super-seeding: what each peer was shown (`None`: a plain bitfield).
    pub offers: Option<Offers>,
    pub rng: StdRng,
}

/// Why a handshaken peer is not taken.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("connected to ourselves")]
    Ourselves,
    #[error("already connected to this peer")]
    Duplicate,
    #[error("banned for sending bad data")]
    Banned,
    #[error("connection limit reached")]
    Full,
}

pub struct Shared {
    pub info_hash: InfoHash,
    pub our_id: PeerId,
    /// Peers that sessions learn of (peer exchange), to the coordinator.
    pub discovered: mpsc::Sender<Vec<SocketAddr>>,
    /// What the extension protocol offers peers (the metadata, our port).
    pub offered: Offered,
    pub geometry: Geometry,
    pub storage: Arc<Storage>,
    state: Mutex<State>,
    pub have_count: watch::Sender<usize>,
    pub complete: watch::Sender<bool>,
    pub upload_limit: RateLimiter,
    pub download_limit: RateLimiter,
    pub downloaded: AtomicU64,
    pub uploaded: AtomicU64,
    pub hash_failures: AtomicU64,
    pub max_peers: usize,
    /// Peers unchoked at once now, as the last choking round set it.
    pub unchoke_slots: AtomicUsize,
    pub shutdown: CancellationToken,
    /// Pieces being hashed and written at once. A session with a complete
    /// piece waits for a permit, so it stops reading and TCP slows the
    /// sender: completed pieces can never pile up in memory faster than the
    /// disk and the CPUs take them.
    verify_slots: Arc<Semaphore>,
    verify_permits: u32,
    /// One thread per core hashes and writes complete pieces.
    verifiers: Workers,
    /// Set when the disk fails: the run ends with this error.
    pub fatal: Mutex<Option<String>>,
    /// `--events`: what happened to each piece, for a study.
    pub events: Option<Arc<EventLog>>,
    /// Our DHT node, set once before the first connection when the torrent
    /// uses one: peers are told its port (BEP 5's PORT message) and the
    /// DHT ports they say are given to it.
    pub dht: OnceLock<Dht>,
}

pub struct Limits {
    pub upload_rate: Option<u64>,
    pub download_rate: Option<u64>,
    pub max_peers: usize,
    pub unchoke_slots: Slots,
    /// Super-seed (BEP 16) while we have every piece.
    pub super_seed: bool,
    /// Where to record events (`events`), if anywhere.
    pub events: Option<Arc<EventLog>>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)] // each is one thing the coordinator owns and hands over
    pub fn new(
        info_hash: InfoHash,
        our_id: PeerId,
        geometry: Geometry,
        storage: Storage,
        have: Bitfield,
        limits: Limits,
        offered: Offered,
        discovered: mpsc::Sender<Vec<SocketAddr>>,
        shutdown: CancellationToken,
    ) -> std::io::Result<Arc<Self>> {
        let complete = have.is_complete();
        let permits = verify_slots();
        let offers = (limits.super_seed && complete)
            .then(|| Offers::new(geometry.piece_count as usize, geometry.piece_length));
        Ok(Arc::new(Shared {
            info_hash,
            our_id,
            discovered,
            offered,
            geometry,
            storage: Arc::new(storage),
            state: Mutex::new(State {
                picker: Picker::new(geometry, have),
                have_log: Vec::new(),
                peers: HashMap::new(),
                identities: HashMap::new(),
                next_key: 1,
                strikes: Strikes::default(),
                banned_ids: HashSet::new(),
                banned_addrs: HashSet::new(),
                senders: HashSet::new(),
                offers,
                rng: StdRng::from_os_rng(),
            }),
            have_count: watch::Sender::new(0),
            complete: watch::Sender::new(complete),
            upload_limit: RateLimiter::adjustable(limits.upload_rate),
            download_limit: RateLimiter::new(limits.download_rate),
            downloaded: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            hash_failures: AtomicU64::new(0),
            max_peers: limits.max_peers,
            unchoke_slots: AtomicUsize::new(limits.unchoke_slots.least()),
            shutdown,
            verify_slots: Arc::new(Semaphore::new(permits)),
            verify_permits: permits as u32,
            verifiers: Workers::new("verify", cores())?,
            fatal: Mutex::new(None),
            events: limits.events,
            dht: OnceLock::new(),
        }))
    }

    /// The state lock. A panic elsewhere while it was held leaves plain
    /// bookkeeping behind, still usable: poison is ignored.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a handshaken peer, or says why not.
    pub fn register(
        &self,
        addr: SocketAddr,
        id: PeerId,
        dialed: bool,
    ) -> Result<(PeerKey, mpsc::Receiver<Command>), Refusal> {
        if id == self.our_id {
            return Err(Refusal::Ourselves);
        }
        let mut state = self.state();
        if state.banned_ids.contains(&id) || (dialed && state.banned_addrs.contains(&addr)) {
            return Err(Refusal::Banned);
        }
        if state.peers.values().any(|p| p.id == id) {
            return Err(Refusal::Duplicate);
        }
        if state.peers.len() >= self.max_peers {
            return Err(Refusal::Full);
        }
        let key = state.next_key;
        state.next_key += 1;
        let (commands, receiver) = mpsc::channel(COMMAND_CAPACITY);
        state.peers.insert(
            key,
            PeerSlot {
                addr,
                listen: dialed.then_some(addr),
                dialed,
                id,
                commands,
                interested: false,
                unchoked: false,
                down_round: 0,
                up_round: 0,
                pieces: 0,
                pieces_round: 0,
                delay: None,
            },
        );
        state.identities.insert(key, (id, addr, dialed));
        Ok((key, receiver))
    }

    /// The peer's listening port, from its extension handshake.
    pub fn set_listen_port(&self, key: PeerKey, port: u16) {
        if let Some(slot) = self.state().peers.get_mut(&key) {
            if !slot.dialed {
                slot.listen = Some(SocketAddr::new(slot.addr.ip(), port));
            }
        }
    }

    /// A new measure of our queue from the peer (`delay`).
    pub fn set_delay(&self, key: PeerKey, sample: Sample) {
        if let Some(slot) = self.state().peers.get_mut(&key) {
            slot.delay = Some(sample);
        }
    }

    /// The latest measures of our queue by the peers we upload to, for
    /// `uplink`.
    pub fn uplink_samples(&self) -> Vec<Sample> {
        self.state()
            .peers
            .values()
            .filter(|slot| slot.unchoked)
            .filter_map(|slot| slot.delay)
            .collect()
    }

    /// The listening addresses, with their BEP 11 flags, of the connected
    /// peers other than `except`, for peer exchange.
    pub fn connected_listeners(&self, except: PeerKey) -> Vec<(SocketAddr, u8)> {
        self.state()
            .peers
            .iter()
            .filter(|&(&key, _)| key != except)
            .filter_map(|(_, slot)| {
                let reachable = if slot.dialed { pex_flags::REACHABLE } else { 0 };
                slot.listen.map(|addr| (addr, reachable))
            })
            .collect()
    }

    /// The peer is interested in us (or no longer): recorded for the
    /// choker. Returns the choke to send the peer at once, rather than at
    /// the next round: `Some(false)`, unchoke, when it became interested
    /// and an unchoke slot is free; `Some(true)`, choke, when it lost
    /// interest while unchoked and another peer waits: its slot then goes
    /// at once to a choked interested peer, at random (told through that
    /// peer's command queue), so that our upload does not idle for the rest
    /// of the round while others wait (libtorrent chokes such a peer even
    /// when nobody waits; we leave it be then, to spare a small swarm the
    /// choke and unchoke at every lull). Not while super-seeding (below).
    pub fn set_interested(&self, key: PeerKey, interested: bool) -> Option<bool> {
        let mut state = self.state();
        let state = &mut *state;
        let unchoked = state.peers.values().filter(|p| p.unchoked).count();
        let slot = state.peers.get_mut(&key)?;
        slot.interested = interested;
        if interested {
            let free = unchoked < self.unchoke_slots.load(Ordering::Relaxed) && !slot.unchoked;
            slot.unchoked |= free;
            return free.then_some(false);
        }
        // A super-seeder's peer loses interest whenever it has all it was
        // offered, until our next offer (sent on its `have`) a round trip
        // later: choked, it would lose its open offers to other peers.
        if !slot.unchoked || state.offers.is_some() {
            return None;
        }
        let waiting: Vec<PeerKey> = state
            .peers
            .iter()
            .filter(|(_, p)| p.interested && !p.unchoked)
            .map(|(&k, _)| k)
            .collect();
        let next = *waiting.choose(&mut state.rng)?;
        if let Some(next) = state.peers.get_mut(&next) {
            next.set_unchoked(true);
        }
        if let Some(slot) = state.peers.get_mut(&key) {
            slot.unchoked = false;
        }
        Some(true)
    }

    /// Stores a block from peer `key` in its piece, counts it for the
    /// choker, and tells the other peers it was also asked of (endgame) to
    /// cancel. Returns the piece if this block completed it.
    pub fn store_block(&self, key: PeerKey, block: BlockRef, data: &[u8]) -> Option<CompletePiece> {
        let mut state = self.state();
        let state = &mut *state;
        if let Some(slot) = state.peers.get_mut(&key) {
            slot.down_round += data.len() as u64;
        }
        let outcome = state.picker.received(key, block, data);
        if outcome.stored {
            if let Some(slot) = state.peers.get(&key) {
                state.senders.insert(slot.id);
            }
        }
        for other in &outcome.cancel {
            if let Some(slot) = state.peers.get(other) {
                // A full queue drops the cancel: the block then comes twice.
                let _ = slot.commands.try_send(Command::Cancel(block));
            }
        }
        outcome.complete
    }

    /// Forgets a peer that left: its requests return to the pool and its
    /// pieces no longer count as available.
    pub fn unregister(&self, key: PeerKey, had: &Bitfield) {
        let mut state = self.state();
        state.picker.release(key);
        state.picker.remove_availability(had);
        state.peers.remove(&key);
        if let Some(offers) = state.offers.as_mut() {
            offers.remove(key);
        }
    }

    /// Hashes and writes a complete piece on a verifier thread, then records
    /// the result: a `have` for every session, or a strike for the sender.
    /// Waits first for one of the verification slots.
    pub async fn finish_piece(self: &Arc<Self>, piece: CompletePiece) {
        let Ok(permit) = self.verify_slots.clone().acquire_owned().await else {
            return;
        };
        let shared = self.clone();
        self.verifiers.run(move || {
            let _permit = permit;
            let checked = match shared.storage.verify_and_write(piece.index, &piece.data) {
                Ok(true) => Checked::Verified,
                Ok(false) => Checked::HashFailed,
                Err(e) => Checked::NotWritten(e.to_string()),
            };
            let verdict = judge(checked, &piece.contributors);
            let mut state = shared.state();
            state
                .picker
                .verified(piece.index, verdict == Verdict::Announce);
            state.picker.recycle(piece.data);
            match verdict {
                Verdict::Announce => {
                    state.have_log.push(piece.index);
                    for key in &piece.contributors {
                        if let Some(slot) = state.peers.get(key) {
                            // A full queue drops it: the have then goes with the next batch.
                            let _ = slot.commands.try_send(Command::SendHaves);
                        }
                    }
                    let count = state.have_log.len();
                    let complete = state.picker.is_complete();
                    let from = shared.events.as_ref().map(|_| {
                        piece
                            .contributors
                            .iter()
                            .filter_map(|k| state.identities.get(k))
                            .map(|(id, _, _)| events::id(id))
                            .collect()
                    });
                    drop(state);
                    if let (Some(log), Some(from)) = (&shared.events, from) {
                        log.record(Event::Piece {
                            piece: piece.index,
                            from,
                        });
                    }
                    shared.have_count.send_replace(count);
                    if complete {
                        shared.complete.send_replace(true);
                    }
                }
                Verdict::Stop(error) => {
                    drop(state);
                    error!("cannot write piece {}: {error}", piece.index);
                    *shared.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
                    shared.shutdown.cancel();
                }
                Verdict::Refetch { blame } => {
                    shared.hash_failures.fetch_add(1, Ordering::Relaxed);
                    warn!(
                        piece = piece.index,
                        contributors = piece.contributors.len(),
                        "piece failed its hash check"
                    );
                    let Some(&(id, addr, dialed)) = blame.and_then(|k| state.identities.get(&k))
                    else {
                        return;
                    };
                    if state.strikes.strike(id) {
                        info!(%addr, "banning peer for sending bad data");
                        state.banned_ids.insert(id);
                        if dialed {
                            state.banned_addrs.insert(addr);
                        }
                        if let Some(slot) = blame.and_then(|k| state.peers.get(&k)) {
                            let _ = slot.commands.try_send(Command::Close);
                        }
                    }
                }
            }
        });
    }

    /// Waits until no piece is being hashed or written: every job holds one
    /// verification permit until it has recorded its result.
    pub async fn finish_verifications(&self) {
        let _all = self.verify_slots.acquire_many(self.verify_permits).await;
    }

    /// Records an event about peer `key` (`to`: its id), if events are kept.
    pub fn record_for(&self, key: PeerKey, event: impl FnOnce(String) -> Event) {
        let Some(log) = &self.events else { return };
        let Some(id) = self
            .state()
            .peers
            .get(&key)
            .map(|slot| events::id(&slot.id))
        else {
            return;
        };
        log.record(event(id));
    }

    /// Bytes still missing.
    pub fn left(&self) -> u64 {
        let have = self.state().picker.bytes_have();
        self.geometry.total_length - have
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_choke_that_cannot_be_queued_leaves_the_slot_as_it_was() {
        let (commands, mut queue) = mpsc::channel(1);
        let mut slot = PeerSlot {
            addr: "127.0.0.1:1".parse().unwrap(),
            listen: None,
            dialed: false,
            id: PeerId([1; 20]),
            commands,
            interested: true,
            unchoked: false,
            down_round: 0,
            up_round: 0,
            pieces: 0,
            pieces_round: 0,
            delay: None,
        };
        slot.set_unchoked(true);
        assert!(slot.unchoked);
        assert!(matches!(queue.try_recv(), Ok(Command::Choke(false))));
        slot.set_unchoked(true);
        assert!(queue.try_recv().is_err(), "no command when nothing changes");

        // The queue is full: the choke is not sent, so the slot stays
        // unchoked and the next round sends it.
        slot.commands.try_send(Command::Close).unwrap();
        slot.set_unchoked(false);
        assert!(
            slot.unchoked,
            "the slot must follow what the session was told"
        );
        assert!(matches!(queue.try_recv(), Ok(Command::Close)));
        slot.set_unchoked(false);
        assert!(!slot.unchoked);
        assert!(matches!(queue.try_recv(), Ok(Command::Choke(true))));
    }
}
