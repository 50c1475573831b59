//! The coordinator of one torrent: it accepts and dials peers, runs the
//! tracker announces and the choking rounds, and ends the run.
//!
//! Tasks: the coordinator loop (this module), one task per accepted
//! connection in its handshake (`listener`), one task per peer session
//! (`session`), a writer task inside each session, the tracker task, and
//! blocking jobs that hash pieces. All stop on the shared cancellation
//! token; the loop then closes the listener, waits for the sessions (at most
//! a few seconds) and the tracker task announces `stopped`.

use std::{
    collections::HashSet,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use crate::dht::{
    service::Dht,
    swarm::{find_peers, Ask},
};
use common::{bitfield::Bitfield, tracker_proto::AnnounceEvent, wire::Geometry, Metainfo, PeerId};
use serde::Serialize;
use thiserror::Error;
use tokio::{net::TcpListener, sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use super::{
    admission,
    choke::{Candidate, Choker, Slots},
    dialer::Dialer,
    events::{self, Event, EventLog},
    extensions::Offered,
    listener::Listener,
    session::{self, SessionEnd},
    shared::{Limits, Shared},
    storage::Storage,
    superseed,
    tracker_client::{Progress, TrackerClient, TrackerError},
    uplink::{self, Uplink},
};

/// Seconds between choking rounds (BEP 3 practice).
pub const CHOKE_ROUND: Duration = Duration::from_secs(10);
/// Announce attempts at start before giving up.
const FIRST_ANNOUNCE_TRIES: u32 = 3;

#[derive(Debug, Clone)]
pub struct Settings {
    pub port: u16,
    /// Registered sessions at once; connections still in their handshake
    /// do not count (they have `admission`'s limits).
    pub max_peers: usize,
    /// The listener's limits: handshakes in progress, connections per address.
    pub admission: admission::Limits,
    pub upload_rate: Option<u64>,
    pub download_rate: Option<u64>,
    /// Keep seeding after the download completes (until cancelled).
    pub keep_seeding: bool,
    /// Peers unchoked at once (`choke::Slots`).
    pub unchoke_slots: Slots,
    /// Super-seed (BEP 16): show each peer only pieces chosen for it.
    pub super_seed: bool,
    /// Peers to dial from the start (`--peer`, a magnet link's `x.pe`),
    /// besides those the trackers give.
    pub peers: Vec<SocketAddr>,
    /// Trade peer addresses with peers (BEP 11); never for a private torrent.
    pub pex: bool,
    /// Record each piece's arrival, offers and chokes (`--events`).
    pub events: Option<Arc<EventLog>>,
    /// Find peers through this DHT node and announce to it; never for a
    /// private torrent (BEP 27).
    pub dht: Option<Dht>,
}

#[derive(Debug, Error)]
pub enum TorrentError {
    #[error("cannot listen on port {port}: {source}")]
    Listen { port: u16, source: std::io::Error },
    #[error("tracker: {0}")]
    Tracker(#[from] TrackerError),
    #[error("disk: {0}")]
    Disk(String),
    #[error("cannot start the piece verification threads: {0}")]
    Threads(std::io::Error),
}

/// What a finished download prints as its JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub event: &'static str,
    pub info_hash: String,
    /// Payload bytes received in this run.
    pub bytes: u64,
    pub size: u64,
    pub seconds: f64,
    /// `bytes / seconds`.
    pub rate: f64,
    /// Distinct peers that sent us data.
    pub peers: usize,
    pub hash_failures: u64,
    pub uploaded: u64,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Set when the download completed in this run.
    pub completed: Option<Summary>,
    /// Payload bytes sent to peers.
    pub uploaded: u64,
    pub seconds: f64,
}

/// A progress snapshot for the terminal.
pub struct Status {
    pub have: u64,
    pub peers: usize,
}

/// A fresh peer id: Azureus style, `-PL0100-` and twelve random characters.
pub fn new_peer_id() -> PeerId {
    use rand::{distr::Alphanumeric, Rng};
    let mut id = *b"-PL0100-............";
    for (byte, random) in id[8..]
        .iter_mut()
        .zip(rand::rng().sample_iter(Alphanumeric))
    {
        *byte = random;
    }
    PeerId(id)
}

/// The listening socket for peers, on every IPv4 address, `port` 0 for
/// any free one.
pub async fn listen(port: u16) -> Result<TcpListener, TorrentError> {
    let listen_error = |source| TorrentError::Listen { port, source };
    match dual_stack(port) {
        Ok(listener) => Ok(listener),
        // No IPv6 on this host (disabled, or a namespace without it): IPv4.
        Err(e) if ipv6_missing(&e) => TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
            .await
            .map_err(listen_error),
        Err(e) => Err(listen_error(e)),
    }
}

/// A listener on `[::]:port` that takes IPv4 peers too (`IPV6_V6ONLY` off,
/// whatever the system's default), so peers from `peers6`, `added6` and
/// IPv6 trackers can reach us as well as IPv4 ones.
fn dual_stack(port: u16) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)).into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

fn ipv6_missing(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) | Some(libc::EPROTONOSUPPORT)
    )
}

/// Runs the torrent on `listener` until it completes (unless seeding) or
/// `shutdown` fires. `on_complete` is called once, when the last piece
/// verifies; `on_status` twice a second. Times in the summary count from
/// `started`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    started: Instant,
    meta: &Metainfo,
    storage: Storage,
    have: Bitfield,
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
    on_complete: impl FnOnce(&Summary),
    on_status: impl Fn(Status),
) -> Result<Outcome, TorrentError> {
    let port = listener
        .local_addr()
        .map_err(|source| TorrentError::Listen {
            port: settings.port,
            source,
        })?
        .port();
    let our_id = new_peer_id();
    let limits = Limits {
        upload_rate: settings.upload_rate,
        download_rate: settings.download_rate,
        max_peers: settings.max_peers,
        unchoke_slots: settings.unchoke_slots,
        super_seed: settings.super_seed,
        events: settings.events.clone(),
    };
    // Peers to dial: from the trackers, from peer exchange, and by hand.
    let (peers_tx, mut peers_rx) = mpsc::channel::<Vec<SocketAddr>>(16);
    let private = meta.info.private;
    let shared = Shared::new(
        meta.info_hash,
        our_id,
        Geometry::of(&meta.info),
        storage,
        have,
        limits,
        Offered {
            // BEP 27: a private torrent's metadata goes only through trackers.
            metadata: (!private).then(|| Arc::from(meta.raw_info())),
            listen_port: port,
            reqq: session::MAX_QUEUED_REQUESTS as u32,
            pex: settings.pex && !private,
        },
        peers_tx.clone(),
        shutdown.clone(),
    )
    .map_err(TorrentError::Threads)?;
    let start_have = meta.info.total_length - shared.left();
    let mut listener = Listener::new(
        listener,
        session::our_handshake(&shared),
        settings.admission,
    );
    info!(port, "listening for peers");
    if let Some(log) = &shared.events {
        log.record(Event::Start {
            peer_id: events::id(&our_id),
            port,
            pieces: shared.geometry.piece_count,
            piece_length: shared.geometry.piece_length,
        });
    }

    let _ = peers_tx.try_send(settings.peers.clone());
    let dht = settings.dht.clone().filter(|_| !private);
    if let Some(dht) = dht.clone() {
        let _ = shared.dht.set(dht.clone());
        let ask = Ask {
            info_hash: meta.info_hash,
            announce: Some(port),
            give_up_after: None,
        };
        tokio::spawn(find_peers(dht, ask, peers_tx.clone(), shutdown.clone()));
    }
    // Without a tracker the peers given by hand and the DHT's are all there
    // is; with none of them, the torrent cannot start.
    let tracker_task = match TrackerClient::new(meta.tracker_tiers(), meta.info_hash, our_id, port)
    {
        Err(TrackerError::NoTracker) if !settings.peers.is_empty() || dht.is_some() => {
            info!(
                peers = settings.peers.len(),
                dht = dht.is_some(),
                "no tracker: dialling the peers given and those of the DHT"
            );
            None
        }
        Err(error) => return Err(error.into()),
        Ok(mut tracker) => {
            let first = first_announce(&mut tracker, &shared).await?;
            let _ = peers_tx.try_send(first.peers.iter().map(|p| p.addr).collect());
            let interval = Duration::from_secs(u64::from(first.interval.clamp(5, 3600)));
            Some(tokio::spawn(
                tracker_loop(tracker, shared.clone(), interval, peers_tx)
                    .instrument(tracing::info_span!("tracker")),
            ))
        }
    };

    let mut sessions: JoinSet<SessionEnd> = JoinSet::new();
    let mut dialer = Dialer::default();
    let mut choker = Choker::new(settings.unchoke_slots);
    let mut uploaded_before = 0;
    let mut choke_tick = tokio::time::interval(CHOKE_ROUND);
    let mut uplink = (Uplink::new(settings.upload_rate), 0);
    let mut uplink_tick = tokio::time::interval(uplink::STEP);
    let mut redial_tick = tokio::time::interval(Duration::from_secs(2));
    let mut status_tick = tokio::time::interval(Duration::from_millis(500));
    let mut complete = shared.complete.subscribe();
    let mut summary = None;
    let mut on_complete = Some(on_complete);

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            // Only peers whose handshake is in; `shared::register` then
            // holds them to --max-peers.
            peer = listener.next() => {
                let span = tracing::debug_span!("peer", addr = %peer.addr);
                let session = session::incoming(shared.clone(), peer.stream, peer.addr, peer.theirs);
                listener.started(sessions.spawn(session.instrument(span)).id(), peer.ticket);
            }
            Some(found) = peers_rx.recv() => {
                debug!(peers = found.len(), "peers from the tracker");
                dialer.learn(found);
                dial(&shared, &mut sessions, &mut dialer, settings.max_peers);
            }
            _ = redial_tick.tick() => dial(&shared, &mut sessions, &mut dialer, settings.max_peers),
            Some(ended) = sessions.join_next_with_id() => {
                listener.ended(match &ended {
                    Ok((id, _)) => *id,
                    Err(error) => error.id(),
                });
                if let Ok((_, end)) = ended {
                    if let Some(addr) = end.dialed {
                        dialer.ended(addr, end.was_ourselves);
                    }
                }
            }
            _ = choke_tick.tick() => choke_round(&shared, &mut choker, &mut uploaded_before),
            _ = uplink_tick.tick() => uplink_step(&shared, &mut uplink.0, &mut uplink.1),
            _ = status_tick.tick() => {
                if let Some(log) = &shared.events {
                    log.flush();
                }
                let peers = shared.state().peers.len();
                on_status(Status { have: meta.info.total_length - shared.left(), peers });
            }
            // At once when everything was already on disk, else when the last piece verifies.
            reached = complete.wait_for(|done| *done), if summary.is_none() => {
                if reached.is_ok() {
                    let done = make_summary(&shared, meta, started, start_have);
                    if let Some(callback) = on_complete.take() {
                        callback(&done);
                    }
                    summary = Some(done);
                    if !settings.keep_seeding {
                        break;
                    }
                }
            }
        }
    }

    shutdown.cancel();
    // No more peers: the listening socket and the handshakes in progress close.
    drop(listener);
    // Sessions see the token and close; give them a moment, then drop them.
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    sessions.abort_all();
    // Pieces already being verified are finished and written, not cut off
    // by the exit (the worker threads would not hold the process open).
    let _ = tokio::time::timeout(Duration::from_secs(10), shared.finish_verifications()).await;
    let fatal = shared
        .fatal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(log) = &shared.events {
        log.flush();
    }
    if let Some(task) = tracker_task {
        // It announces `stopped` on the way out.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    // No fsync: written pieces are in the page cache and the kernel writes
    // them back; after a crash, the resume check finds what reached the disk.
    match fatal {
        Some(message) => Err(TorrentError::Disk(message)),
        None => Ok(Outcome {
            completed: summary,
            uploaded: shared.uploaded.load(Ordering::Relaxed),
            seconds: started.elapsed().as_secs_f64(),
        }),
    }
}

fn progress(shared: &Shared) -> Progress {
    Progress {
        uploaded: shared.uploaded.load(Ordering::Relaxed),
        downloaded: shared.downloaded.load(Ordering::Relaxed),
        left: shared.left(),
    }
}

/// The `started` announce: a few quick tries, then the torrent cannot start.
async fn first_announce(
    tracker: &mut TrackerClient,
    shared: &Shared,
) -> Result<common::tracker_proto::AnnounceResponse, TrackerError> {
    let mut attempt = 0;
    loop {
        match tracker
            .announce(AnnounceEvent::Started, progress(shared))
            .await
        {
            Ok(response) => return Ok(response),
            Err(error) if attempt + 1 >= FIRST_ANNOUNCE_TRIES => return Err(error),
            Err(error) => {
                debug!(%error, "first announce failed, retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
        }
    }
}

/// Regular announces at the tracker's interval, `completed` when the last
/// piece verifies, `stopped` at shutdown; while every tracker is down it
/// retries with growing delays and the torrent goes on with the peers it knows.
async fn tracker_loop(
    mut tracker: TrackerClient,
    shared: Arc<Shared>,
    interval: Duration,
    found: mpsc::Sender<Vec<SocketAddr>>,
) {
    let mut complete = shared.complete.subscribe();
    let mut announced_complete = *complete.borrow();
    let mut wait = interval;
    let mut failures = 0u32;
    loop {
        let event = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => AnnounceEvent::None,
            Ok(()) = complete.changed(), if !announced_complete => {
                if !*complete.borrow_and_update() { continue; }
                announced_complete = true;
                AnnounceEvent::Completed
            }
        };
        match tracker.announce(event, progress(&shared)).await {
            Ok(response) => {
                failures = 0;
                wait = Duration::from_secs(u64::from(response.interval.clamp(5, 3600)));
                let _ = found.try_send(response.peers.iter().map(|p| p.addr).collect());
            }
            Err(error) => {
                failures += 1;
                wait = Duration::from_secs(5u64 << failures.min(6)).min(interval);
                warn!(%error, retry_in = ?wait, "announce failed");
            }
        }
    }
    // A download that completes and ends the run at once (no --seed) wakes
    // both branches above, and the shutdown may win: the tracker must still
    // hear `completed` before `stopped`, or it never counts the download.
    if !announced_complete && *complete.borrow() {
        if let Err(error) = tracker
            .announce(AnnounceEvent::Completed, progress(&shared))
            .await
        {
            debug!(%error, "completed announce failed");
        }
    }
    if let Err(error) = tracker
        .announce(AnnounceEvent::Stopped, progress(&shared))
        .await
    {
        debug!(%error, "stopped announce failed");
    }
}

/// Dials what the dialer says is due (`dialer`: whom, and how many).
fn dial(
    shared: &Arc<Shared>,
    sessions: &mut JoinSet<SessionEnd>,
    dialer: &mut Dialer,
    max_peers: usize,
) {
    let connected: HashSet<SocketAddr> = {
        let state = shared.state();
        state
            .peers
            .values()
            .map(|p| p.addr)
            .chain(state.banned_addrs.iter().copied())
            .collect()
    };
    for addr in dialer.due(&connected, sessions.len(), max_peers, Instant::now()) {
        let span = tracing::debug_span!("peer", %addr);
        sessions.spawn(session::outgoing(shared.clone(), addr).instrument(span));
    }
}

/// Sets our upload rate from what our peers measure of our queue (`uplink`).
fn uplink_step(shared: &Shared, uplink: &mut Uplink, uploaded_before: &mut u64) {
    let uploaded = shared.uploaded.load(Ordering::Relaxed);
    let bytes = uploaded.saturating_sub(std::mem::replace(uploaded_before, uploaded));
    let per_second = (bytes as f64 / uplink::STEP.as_secs_f64()) as u64;
    let before = shared.upload_limit.rate();
    let samples = shared.uplink_samples();
    let downloading = !shared.state().picker.is_complete();
    let rate = uplink.step(std::time::Instant::now(), &samples, per_second, downloading);
    if rate != before {
        let queues: Vec<u128> = samples.iter().map(|s| s.queue.as_millis()).collect();
        debug!(?rate, uploaded = per_second, ?queues, "upload limit");
        shared.upload_limit.set_rate(rate);
    }
}

/// One choking round: rank, then tell each session whose state changes.
fn choke_round(shared: &Shared, choker: &mut Choker, uploaded_before: &mut u64) {
    let uploaded = shared.uploaded.load(Ordering::Relaxed);
    let ours = uploaded.saturating_sub(std::mem::replace(uploaded_before, uploaded));
    let mut state = shared.state();
    let seeding = state.picker.is_complete();
    let super_seeding = state.offers.is_some();
    let seconds = CHOKE_ROUND.as_secs_f64();
    let candidates: Vec<Candidate> = state
        .peers
        .iter()
        .map(|(&key, slot)| Candidate {
            key,
            interested: slot.interested,
            rate: if super_seeding {
                // New pieces go to the peers furthest behind, who then have
                // what every other peer wants (see `choke`).
                f64::from(shared.geometry.piece_count.saturating_sub(slot.pieces))
            } else {
                (if seeding {
                    slot.up_round
                } else {
                    slot.down_round
                }) as f64
                    / seconds
            },
        })
        .collect();
    let state = &mut *state;
    if let Some(offers) = state.offers.as_mut() {
        let gained: u64 = state
            .peers
            .values()
            .map(|slot| u64::from(slot.pieces.saturating_sub(slot.pieces_round)))
            .sum();
        let gained = gained * shared.geometry.piece_length;
        offers.set_extra_copies(superseed::seeder_is_faster(ours, gained, state.peers.len()));
    }
    // A super-seeder keeps the least slots (see `choke`).
    let rate = if super_seeding {
        0.0
    } else {
        ours as f64 / seconds
    };
    let unchoke = choker.round(&candidates, rate, &mut state.rng);
    shared
        .unchoke_slots
        .store(choker.slots(), Ordering::Relaxed);
    for (key, slot) in state.peers.iter_mut() {
        slot.down_round = 0;
        slot.up_round = 0;
        slot.pieces_round = slot.pieces;
        slot.set_unchoked(unchoke.contains(key));
    }
}

fn make_summary(shared: &Shared, meta: &Metainfo, started: Instant, start_have: u64) -> Summary {
    let seconds = started.elapsed().as_secs_f64();
    let bytes = meta.info.total_length - start_have;
    Summary {
        event: "complete",
        info_hash: meta.info_hash.to_hex(),
        bytes,
        size: meta.info.total_length,
        seconds,
        rate: if seconds > 0.0 {
            bytes as f64 / seconds
        } else {
            0.0
        },
        peers: shared.state().senders.len(),
        hash_failures: shared.hash_failures.load(Ordering::Relaxed),
        uploaded: shared.uploaded.load(Ordering::Relaxed),
    }
}
