//! One peer connection, from handshake to close.
//!
//! The socket is split: a writer task owns the sending half (our messages,
//! then the blocks the peer asked for, read from disk just before they are
//! sent), and the session loop owns the receiving half. Reading never waits
//! on writing, so two peers uploading to each other cannot deadlock on full
//! socket buffers. The peer's requests wait in a bounded `UploadQueue`
//! (`uploads`, with the writer task); a peer that queues more than
//! [`MAX_QUEUED_REQUESTS`] is dropped.
//!
//! Anything malformed from the peer (see `common::wire`) ends this session
//! only, with the reason logged; the torrent goes on.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use common::{
    bitfield::Bitfield,
    wire::{BlockRef, Handshake, Message, MessageCodec, WireError, HANDSHAKE_LEN, MAX_BLOCK_LEN},
};
use futures::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
    time::{sleep_until, timeout, Instant},
};
use tokio_util::codec::FramedRead;
use tracing::{debug, info};

use super::{
    extensions::{ExtensionFault, Handled, PeerExtensions},
    fast::FastPeer,
    pex::PEX_INTERVAL,
    picker::PeerKey,
    shared::{Command, Refusal, Shared},
    uploads::{write_loop, UploadQueue},
};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer silent this long is dropped (BEP 3 peers send keep-alives every two minutes).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(150);
/// A peer that holds our requests this long without sending a block is dropped.
pub const SNUB_TIMEOUT: Duration = Duration::from_secs(60);
pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(90);
pub const MAX_QUEUED_REQUESTS: usize = 1024;
/// Requests kept outstanding per peer: half a second of its measured rate,
/// within these bounds.
pub const MIN_PIPELINE: usize = 32;
pub const MAX_PIPELINE: usize = 250;
/// How often a session looks for blocks to request without being prompted:
/// blocks return to the pool when another peer chokes us or leaves, and no
/// message of this peer's would wake us to ask for them.
pub const REFILL_EVERY: Duration = Duration::from_millis(500);
/// Socket-side buffers: large reads and writes mean fewer system calls.
pub const IO_BUFFER: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    #[error("timed out ({0})")]
    Timeout(&'static str),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("disk: {0}")]
    Disk(String),
    #[error("{0}")]
    Extension(#[from] ExtensionFault),
}

impl From<std::io::Error> for SessionError {
    fn from(e: std::io::Error) -> Self {
        SessionError::Wire(WireError::Io(e))
    }
}

/// How a session ended, for the coordinator's bookkeeping.
pub struct SessionEnd {
    /// The address we dialled, for outgoing sessions.
    pub dialed: Option<SocketAddr>,
    pub was_ourselves: bool,
}

/// Dials `addr` and runs the session.
pub async fn outgoing(shared: Arc<Shared>, addr: SocketAddr) -> SessionEnd {
    let result = async {
        let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| SessionError::Timeout("connect"))??;
        run(&shared, stream, addr, true).await
    }
    .await;
    finish(addr, Some(addr), result)
}

/// Runs the session of an accepted connection.
pub async fn incoming(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) -> SessionEnd {
    let result = run(&shared, stream, addr, false).await;
    finish(addr, None, result)
}

fn finish(
    addr: SocketAddr,
    dialed: Option<SocketAddr>,
    result: Result<(), SessionError>,
) -> SessionEnd {
    let was_ourselves = matches!(result, Err(SessionError::Refused(Refusal::Ourselves)));
    match result {
        Ok(()) => debug!(%addr, "connection closed"),
        Err(error) => debug!(%addr, %error, "connection ended"),
    }
    SessionEnd {
        dialed,
        was_ourselves,
    }
}

async fn run(
    shared: &Arc<Shared>,
    mut stream: TcpStream,
    addr: SocketAddr,
    dialed: bool,
) -> Result<(), SessionError> {
    stream.set_nodelay(true)?;
    // The initiator sends its handshake first; we answer an incoming one only
    // once it has shown itself a plaintext handshake for our torrent. A peer
    // that opens with an encrypted (MSE) handshake, as Transmission does by
    // default, then sees the connection closed before any byte of ours, its
    // cue to retry in plaintext. Had we answered at once, Transmission would
    // take our handshake as a plaintext reply, see the close as a failure,
    // and never connect (`integration/tests/peer_interop_dialled.rs`).
    // We speak the extension protocol (BEP 10), to serve metadata.
    let handshake = Handshake::new(shared.info_hash, shared.our_id)
        .with_extensions(true)
        .with_fast(true);
    let ours = handshake.encode();
    if dialed {
        stream.write_all(&ours).await?;
    }
    let theirs = timeout(HANDSHAKE_TIMEOUT, read_handshake(&mut stream))
        .await
        .map_err(|_| SessionError::Timeout("handshake"))??;
    if theirs.info_hash != shared.info_hash {
        return Err(WireError::WrongInfoHash(theirs.info_hash).into());
    }
    if !dialed {
        stream.write_all(&ours).await?;
    }
    let (key, commands) = shared.register(addr, theirs.peer_id, dialed)?;
    // A plaintext handshake (we speak no other), for logs and interop tests.
    debug!(
        %addr,
        dialed,
        peer_id = ?theirs.peer_id,
        fast = handshake.supports_fast() && theirs.supports_fast(),
        extensions = handshake.supports_extensions() && theirs.supports_extensions(),
        "handshake complete"
    );
    let mut session = Session::new(shared.clone(), key);
    if handshake.supports_extensions() && theirs.supports_extensions() {
        session.extensions = Some((PeerExtensions::default(), addr));
    }
    // The fast extension (BEP 6), when both sides set its bit.
    let fast = handshake.supports_fast() && theirs.supports_fast();
    session.fast = fast.then(|| FastPeer::new(shared, addr));
    let result = session.run(stream, commands).await;
    shared.unregister(key, &session.peer_has);
    result
}

/// Reads the 68-byte handshake, refusing a foreign or encrypted one as soon
/// as its first bytes show it.
async fn read_handshake(stream: &mut TcpStream) -> Result<Handshake, SessionError> {
    let mut bytes = [0u8; HANDSHAKE_LEN];
    stream.read_exact(&mut bytes[..20]).await?;
    Handshake::check_prefix(&bytes[..20])?;
    stream.read_exact(&mut bytes[20..]).await?;
    Ok(Handshake::decode(&bytes)?)
}

struct Session {
    shared: Arc<Shared>,
    key: PeerKey,
    /// Both sides speak the fast extension: the pieces this peer may ask
    /// for while choked.
    fast: Option<FastPeer>,
    /// The peer speaks the extension protocol: its side of it, and its
    /// address as we see it (its IP is our `yourip`).
    extensions: Option<(PeerExtensions, SocketAddr)>,
    peer_has: Bitfield,
    peer_choking: bool,
    am_interested: bool,
    we_choke: bool,
    outstanding: HashSet<BlockRef>,
    /// How many entries of the shared have-log this peer has been told.
    have_cursor: usize,
    /// We super-seed (`superseed`): the peer is told of pieces by `offer`.
    super_seeding: bool,
    got_first_message: bool,
    last_received: Instant,
    last_block: Instant,
    /// Payload bytes in the current one-second window, and the last full one.
    window_start: Instant,
    window_bytes: u64,
    rate: u64,
    out: Option<mpsc::Sender<Message>>,
    uploads: Arc<UploadQueue>,
}

impl Session {
    fn new(shared: Arc<Shared>, key: PeerKey) -> Self {
        let now = Instant::now();
        Session {
            peer_has: Bitfield::new(shared.geometry.piece_count as usize),
            shared,
            key,
            fast: None,
            extensions: None,
            peer_choking: true,
            am_interested: false,
            we_choke: true,
            outstanding: HashSet::new(),
            have_cursor: 0,
            super_seeding: false,
            got_first_message: false,
            last_received: now,
            last_block: now,
            window_start: now,
            window_bytes: 0,
            rate: 0,
            out: None,
            uploads: Arc::new(UploadQueue::default()),
        }
    }

    async fn send(&self, message: Message) -> Result<(), SessionError> {
        match &self.out {
            Some(out) => out
                .send(message)
                .await
                .map_err(|_| SessionError::Protocol("writer stopped")),
            None => Ok(()),
        }
    }

    async fn run(
        &mut self,
        stream: TcpStream,
        mut commands: mpsc::Receiver<Command>,
    ) -> Result<(), SessionError> {
        let codec = MessageCodec::new(self.shared.geometry);
        let (read_half, write_half) = stream.into_split();
        let mut reader = FramedRead::with_capacity(read_half, codec.clone(), IO_BUFFER);
        let (out, out_rx) = mpsc::channel(1024);
        self.out = Some(out);
        let mut writer = tokio::spawn(write_loop(
            self.shared.clone(),
            self.key,
            write_half,
            codec,
            out_rx,
            self.uploads.clone(),
        ));

        let (bitfield, cursor, super_seeding) = {
            let state = self.shared.state();
            (
                state.picker.have().clone(),
                state.have_log.len(),
                state.offers.is_some(),
            )
        };
        self.have_cursor = cursor;
        self.super_seeding = super_seeding;
        if let Some((_, addr)) = &self.extensions {
            self.send(self.shared.offered.handshake(addr.ip())).await?;
        }
        if let Some(fast) = &self.fast {
            // BEP 6: `have_all` and `have_none` stand for the obvious
            // bitfields; a super-seeder shows none, then offers with `have`.
            let allowed = fast.allowed_of(&bitfield);
            let first = if super_seeding || bitfield.count() == 0 {
                Message::HaveNone
            } else if bitfield.is_complete() {
                Message::HaveAll
            } else {
                Message::Bitfield(bitfield.clone())
            };
            self.send(first).await?;
            for index in allowed {
                self.send(Message::AllowedFast(index)).await?;
            }
            if super_seeding {
                self.offer().await?;
            }
        } else if super_seeding {
            self.offer().await?; // `have`s for a few pieces instead of the bitfield
        } else if bitfield.count() > 0 {
            self.send(Message::Bitfield(bitfield)).await?;
        }
        let mut haves = self.shared.have_count.subscribe();
        let shutdown = self.shared.shutdown.clone();
        let mut refill = tokio::time::interval(REFILL_EVERY);
        // Peer exchange: checked every few seconds, sent at most once a
        // minute (`pex`), the first time soon after the handshakes.
        let mut pex_tick = tokio::time::interval(PEX_INTERVAL / 12);
        let result = loop {
            let idle_deadline = self.last_received + IDLE_TIMEOUT;
            let snub_deadline = if self.outstanding.is_empty() {
                idle_deadline
            } else {
                self.last_block + SNUB_TIMEOUT
            };
            let step = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                _ = sleep_until(idle_deadline.min(snub_deadline)) => break Err(SessionError::Timeout("peer silent")),
                frame = reader.next() => match frame {
                    None => break Ok(()),
                    Some(Err(e)) => break Err(e.into()),
                    Some(Ok(message)) => self.handle(message).await,
                },
                command = commands.recv() => match command {
                    Some(Command::Choke(choke)) => self.set_choke(choke).await,
                    Some(Command::Cancel(block)) => {
                        if self.outstanding.remove(&block) {
                            self.send(Message::Cancel(block)).await
                        } else {
                            Ok(())
                        }
                    }
                    Some(Command::Close) | None => break Ok(()),
                },
                Ok(()) = haves.changed() => self.send_haves().await,
                _ = refill.tick() => self.fill_pipeline().await,
                _ = pex_tick.tick() => self.send_pex().await,
                ended = &mut writer => break match ended {
                    Ok(Err(e)) => Err(e),
                    _ => Ok(()),
                },
            };
            if let Err(e) = step {
                break Err(e);
            }
        };
        self.out = None;
        if !writer.is_finished() {
            // Give the writer a moment to flush what is queued, then stop it.
            if timeout(Duration::from_millis(200), &mut writer)
                .await
                .is_err()
            {
                writer.abort();
            }
        }
        result
    }

    async fn send_pex(&mut self) -> Result<(), SessionError> {
        let Some((extensions, _)) = &mut self.extensions else {
            return Ok(());
        };
        let connected = self.shared.connected_listeners(self.key);
        let now = std::time::Instant::now();
        match extensions.pex_due(&self.shared.offered, &connected, now) {
            Some(message) => self.send(message).await,
            None => Ok(()),
        }
    }

    async fn set_choke(&mut self, choke: bool) -> Result<(), SessionError> {
        if choke == self.we_choke {
            return Ok(());
        }
        self.we_choke = choke;
        if choke {
            // BEP 3: a choke discards the peer's pending requests; BEP 6
            // says so request by request.
            let dropped = self.uploads.clear();
            if self.fast.is_some() {
                for block in dropped {
                    self.send(Message::Reject(block)).await?;
                }
            }
        }
        self.send(if choke {
            Message::Choke
        } else {
            Message::Unchoke
        })
        .await?;
        self.offer().await
    }

    /// Super-seeding: tells the peer, with `have`, of the pieces newly
    /// offered to it (see `superseed`). Nothing when not super-seeding.
    async fn offer(&mut self) -> Result<(), SessionError> {
        if !self.super_seeding {
            return Ok(()); // no lock taken on every `have` of a plain peer
        }
        let tell = {
            let mut state = self.shared.state();
            let state = &mut *state;
            let Some(offers) = state.offers.as_mut() else {
                return Ok(());
            };
            let picker = &state.picker;
            offers.top_up(
                self.key,
                &self.peer_has,
                !self.we_choke,
                |index| picker.availability(index),
                &mut state.rng,
            )
        };
        for index in tell {
            self.send(Message::Have(index)).await?;
        }
        Ok(())
    }

    /// Tells the peer about pieces verified since the last call, and
    /// reconsiders our interest; two seeders have nothing to say and part.
    async fn send_haves(&mut self) -> Result<(), SessionError> {
        let (new, complete) = {
            let state = self.shared.state();
            (
                state.have_log[self.have_cursor..].to_vec(),
                state.picker.is_complete(),
            )
        };
        self.have_cursor += new.len();
        for index in new {
            self.send(Message::Have(index)).await?;
        }
        if complete && self.peer_has.is_complete() {
            return Err(SessionError::Protocol("both sides are seeders"));
        }
        self.update_interest().await
    }

    async fn update_interest(&mut self) -> Result<(), SessionError> {
        let wanted = self.shared.state().picker.wants_any(&self.peer_has);
        if wanted != self.am_interested {
            tracing::trace!(wanted, "interest changes");
            self.am_interested = wanted;
            self.send(if wanted {
                Message::Interested
            } else {
                Message::NotInterested
            })
            .await?;
        }
        self.fill_pipeline().await
    }

    fn pipeline_depth(&self) -> usize {
        ((self.rate / 2) as usize / MAX_BLOCK_LEN as usize).clamp(MIN_PIPELINE, MAX_PIPELINE)
    }

    /// Asks for more blocks while unchoked and interested.
    async fn fill_pipeline(&mut self) -> Result<(), SessionError> {
        if self.peer_choking || !self.am_interested {
            return Ok(());
        }
        let want = self.pipeline_depth().saturating_sub(self.outstanding.len());
        if want == 0 {
            return Ok(());
        }
        let blocks = {
            let mut state = self.shared.state();
            let state = &mut *state;
            state
                .picker
                .pick(self.key, &self.peer_has, want, &mut state.rng)
        };
        if self.outstanding.is_empty() {
            self.last_block = Instant::now(); // the snub clock starts with the first request
        }
        for block in blocks {
            self.outstanding.insert(block);
            self.send(Message::Request(block)).await?;
        }
        Ok(())
    }

    async fn handle(&mut self, message: Message) -> Result<(), SessionError> {
        // BEP 6: `have_all` and `have_none` are bitfields in short.
        let pieces = self.shared.geometry.piece_count as usize;
        let message = match message {
            Message::HaveAll if self.fast.is_some() => Message::Bitfield(Bitfield::full(pieces)),
            Message::HaveNone if self.fast.is_some() => Message::Bitfield(Bitfield::new(pieces)),
            other => other,
        };
        self.last_received = Instant::now();
        if !matches!(message, Message::Piece { .. } | Message::Request(_)) {
            tracing::trace!(?message, "received");
        }
        let first = !self.got_first_message;
        if message != Message::KeepAlive {
            self.got_first_message = true;
        }
        match message {
            Message::KeepAlive | Message::Port(_) | Message::Unknown(_) => {}
            Message::Extended { id, payload } => {
                let Some((extensions, addr)) = &mut self.extensions else {
                    return Ok(());
                };
                let addr = *addr;
                let now = std::time::Instant::now();
                match extensions.on_message(&self.shared.offered, id, &payload, now)? {
                    Handled::Nothing => {}
                    Handled::Reply(reply) => self.send(reply).await?,
                    Handled::Handshake(port) => {
                        if let Some(port) = port {
                            self.shared.set_listen_port(self.key, port);
                        }
                        // The peer's extension ids are known now: tell it
                        // our peers at once rather than at the next tick.
                        self.send_pex().await?;
                    }
                    Handled::Peers(peers) => {
                        info!(from = %addr, ?peers, "peers from peer exchange");
                        // Dropped when the coordinator is busy: the next
                        // message names them again.
                        let _ = self.shared.discovered.try_send(peers);
                    }
                }
            }
            Message::Bitfield(field) => {
                // BEP 3 allows it only first, but aria2c sends it after
                // `interested`, sometimes twice: a later one replaces the last.
                if !first {
                    tracing::debug!("bitfield after the first message; taking it");
                }
                {
                    let mut state = self.shared.state();
                    state.picker.remove_availability(&self.peer_has);
                    state.picker.add_availability(&field);
                }
                self.peer_has = field;
                if self.peer_has.is_complete() && self.shared.state().picker.is_complete() {
                    return Err(SessionError::Protocol("both sides are seeders"));
                }
                self.update_interest().await?;
                self.offer().await?;
            }
            Message::Have(index) => {
                if self.peer_has.set(index as usize) {
                    self.shared.state().picker.add_have(index);
                }
                if !self.am_interested && self.shared.state().picker.wants(index) {
                    self.update_interest().await?;
                }
                self.offer().await?;
            }
            Message::Choke => {
                self.peer_choking = true;
                self.outstanding.clear();
                self.shared.state().picker.release(self.key);
            }
            Message::Unchoke => {
                self.peer_choking = false;
                self.fill_pipeline().await?;
            }
            Message::Interested => {
                let unchoke_now = {
                    let mut state = self.shared.state();
                    let unchoked = state.peers.values().filter(|p| p.unchoked).count();
                    match state.peers.get_mut(&self.key) {
                        Some(slot) => {
                            slot.interested = true;
                            // A free slot is given at once rather than at the next round.
                            let free = unchoked < self.shared.unchoke_slots && !slot.unchoked;
                            if free {
                                slot.unchoked = true;
                            }
                            free
                        }
                        None => false,
                    }
                };
                if unchoke_now {
                    self.set_choke(false).await?;
                }
            }
            Message::NotInterested => {
                if let Some(slot) = self.shared.state().peers.get_mut(&self.key) {
                    slot.interested = false;
                }
            }
            Message::Request(block) => {
                let have = self.shared.state().picker.have().get(block.index as usize);
                match &self.fast {
                    // Requests while choked, or for pieces we lack, are
                    // ignored (BEP 3).
                    None => {
                        if !self.we_choke && have && !self.uploads.push(block) {
                            return Err(SessionError::Protocol("too many queued requests"));
                        }
                    }
                    // BEP 6: served (an allowed-fast piece even while
                    // choked) or rejected, never ignored.
                    Some(fast) => {
                        let may = !self.we_choke || fast.allowed.contains(&block.index);
                        if !(may && have && self.uploads.push(block)) {
                            self.send(Message::Reject(block)).await?;
                        }
                    }
                }
            }
            // With the fast extension these became a bitfield above.
            Message::HaveAll | Message::HaveNone => {
                return Err(SessionError::Protocol(
                    "a fast-extension message without the bit",
                ));
            }
            Message::Reject(block) => {
                if self.fast.is_none() {
                    return Err(SessionError::Protocol(
                        "a fast-extension message without the bit",
                    ));
                }
                if self.outstanding.remove(&block) {
                    self.shared.state().picker.release_block(self.key, block);
                    self.fill_pipeline().await?;
                }
            }
            // Hints we do not act on: we ask for pieces only when unchoked,
            // and choose them by rarity.
            Message::Suggest(_) | Message::AllowedFast(_) => {
                if self.fast.is_none() {
                    return Err(SessionError::Protocol(
                        "a fast-extension message without the bit",
                    ));
                }
            }
            Message::Cancel(block) => self.uploads.remove(&block),
            Message::Piece { index, begin, data } => {
                let block = BlockRef {
                    index,
                    begin,
                    length: data.len() as u32,
                };
                self.outstanding.remove(&block);
                self.last_block = Instant::now();
                self.count_rate(data.len() as u64);
                self.shared.download_limit.acquire(data.len() as u64).await;
                self.shared
                    .downloaded
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                let outcome = {
                    let mut state = self.shared.state();
                    if let Some(slot) = state.peers.get_mut(&self.key) {
                        slot.down_round += data.len() as u64;
                    }
                    let outcome = state.picker.received(self.key, block, &data);
                    if outcome.stored {
                        if let Some(slot) = state.peers.get(&self.key) {
                            let id = slot.id;
                            state.senders.insert(id);
                        }
                    }
                    for other in &outcome.cancel {
                        if let Some(slot) = state.peers.get(other) {
                            let _ = slot.commands.try_send(Command::Cancel(block));
                        }
                    }
                    outcome
                };
                if let Some(piece) = outcome.complete {
                    self.shared.finish_piece(piece).await;
                }
                self.fill_pipeline().await?;
            }
        }
        Ok(())
    }

    fn count_rate(&mut self, bytes: u64) {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.rate = self.window_bytes;
            self.window_bytes = 0;
            self.window_start = now;
        }
        self.window_bytes += bytes;
        self.rate = self.rate.max(self.window_bytes);
    }
}
