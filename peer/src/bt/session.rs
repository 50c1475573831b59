//! One peer connection, from handshake to close, over any [`Transport`].
//!
//! The session does the I/O; what each message means for the connection's
//! state (choking, interest, requests in flight, what the peer has) is
//! decided by the pure [`PeerState`], and for the torrent by `shared`.
//! The stream is split: a writer task owns the sending half (our messages,
//! then the blocks the peer asked for, read from disk just before they are
//! sent), and the session loop owns the receiving half. Reading never waits
//! on writing, so two peers uploading to each other cannot deadlock on full
//! socket buffers. The peer's requests wait in a bounded `UploadQueue`
//! (`uploads`, with the writer task); a peer that queues more than
//! [`MAX_QUEUED_REQUESTS`] is dropped. How a session starts (dialling, the
//! handshake, registering) and ends is in `start`.
//!
//! Anything malformed from the peer (see `common::wire`) ends this session
//! only, with the reason logged; the torrent goes on.

use std::{
    net::SocketAddr,
    sync::{atomic::Ordering, Arc, Mutex},
    time::Duration,
};

use common::{
    bitfield::Bitfield,
    wire::{BlockRef, Message, MessageCodec, WireError},
};
use futures::StreamExt;
use tokio::{
    sync::mpsc,
    time::{sleep_until, timeout, Instant},
};
use tokio_util::codec::FramedRead;
use tracing::info;

use crate::dht::service::Dht;

mod start;
pub use start::{incoming, our_handshake, outgoing, over, SessionEnd};

use super::{
    delay::{self, OneWay, SharedOneWay},
    events::Event,
    extensions::{ExtensionFault, Handled, PeerExtensions},
    fast::FastPeer,
    peer_state::PeerState,
    pex::PEX_INTERVAL,
    picker::PeerKey,
    shared::{Command, Refusal, Shared},
    transport::{HandshakeError, Transport},
    uploads::{write_loop, UploadQueue},
};

pub const KEEPALIVE_EVERY: Duration = Duration::from_secs(90);
pub const MAX_QUEUED_REQUESTS: usize = 1024;
/// How often a session looks for blocks to request without being prompted:
/// blocks return to the pool when another peer chokes us or leaves, and no
/// message of this peer's would wake us to ask for them.
pub const REFILL_EVERY: Duration = Duration::from_millis(500);
/// Our `have`s go to a peer at most this often, together: in a swarm of
/// dozens every host completes pieces every few milliseconds, and sending
/// each at once costs every peer one tiny packet (and a wake-up of every
/// session) per piece, more packets than the data itself at low rates.
/// The peers that sent us a piece hear of it at once (`Command::SendHaves`):
/// a super-seeder waits for that `have` before it offers the next piece.
/// With fewer peers than [`HAVE_BATCH_PEERS`] the cost is small and every
/// `have` goes at once: in a short run of a few hosts 200 ms is a large
/// part of the time.
pub const HAVE_BATCH: Duration = Duration::from_millis(200);
/// (The session's unit tests batch from one peer, to see the batching.)
pub const HAVE_BATCH_PEERS: usize = if cfg!(test) { 1 } else { 10 };
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

impl From<HandshakeError> for SessionError {
    fn from(e: HandshakeError) -> Self {
        match e {
            HandshakeError::Wire(e) => SessionError::Wire(e),
            HandshakeError::Deadline => SessionError::Timeout("handshake"),
        }
    }
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
    peer: PeerState,
    /// How many entries of the shared have-log this peer has been told.
    have_cursor: usize,
    /// We super-seed (`superseed`): the peer is told of pieces by `offer`.
    super_seeding: bool,
    out: Option<mpsc::Sender<Message>>,
    uploads: Arc<UploadQueue>,
    /// Both sides run a DHT node (BEP 5): ours, and the peer's address; the
    /// first PORT message the peer sends is taken, later ones ignored.
    dht: Option<(Dht, SocketAddr)>,
    /// The `ledbat_delay` exchange, shared with the writer task.
    one_way: SharedOneWay,
}

impl Session {
    fn new(shared: Arc<Shared>, key: PeerKey) -> Self {
        Session {
            peer: PeerState::new(shared.geometry.piece_count as usize, Instant::now()),
            shared,
            key,
            fast: None,
            extensions: None,
            have_cursor: 0,
            super_seeding: false,
            out: None,
            uploads: Arc::new(UploadQueue::default()),
            dht: None,
            one_way: Arc::new(Mutex::new(OneWay::new(std::time::Instant::now()))),
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

    async fn run<T: Transport>(
        &mut self,
        stream: T,
        mut commands: mpsc::Receiver<Command>,
    ) -> Result<(), SessionError> {
        let codec = MessageCodec::new(self.shared.geometry);
        let (read_half, write_half) = stream.split();
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
            self.one_way.clone(),
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
        if let Some((dht, _)) = &self.dht {
            self.send(Message::Port(dht.local_addr().port())).await?;
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
        // The first `have` after a quiet spell goes at once; the ones that
        // follow within HAVE_BATCH wait for the gate and go together.
        let have_gate = sleep_until(Instant::now());
        tokio::pin!(have_gate);
        let mut haves_open = true;
        let result = loop {
            let step = tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                _ = sleep_until(self.peer.deadline()) => break Err(SessionError::Timeout("peer silent")),
                frame = reader.next() => match frame {
                    None => break Ok(()),
                    Some(Err(e)) => break Err(e.into()),
                    Some(Ok(message)) => self.handle(message).await,
                },
                command = commands.recv() => match command {
                    Some(Command::Choke(choke)) => self.set_choke(choke).await,
                    Some(Command::Cancel(block)) => {
                        if self.peer.forget(&block) {
                            self.send(Message::Cancel(block)).await
                        } else {
                            Ok(())
                        }
                    }
                    Some(Command::SendHaves) => self.send_haves().await,
                    Some(Command::Close) | None => break Ok(()),
                },
                Ok(()) = haves.changed(), if haves_open => {
                    if self.shared.state().peers.len() >= HAVE_BATCH_PEERS {
                        haves_open = false;
                        have_gate.as_mut().reset(Instant::now() + HAVE_BATCH);
                    }
                    self.send_haves().await
                },
                () = &mut have_gate, if !haves_open => {
                    haves_open = true;
                    Ok(())
                },
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
        if !self.peer.set_we_choke(choke) {
            return Ok(());
        }
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
        self.shared.record_for(self.key, |to| {
            if choke {
                Event::Choke { to }
            } else {
                Event::Unchoke { to }
            }
        });
        self.offer().await
    }

    /// Super-seeding: tells the peer, with `have` (and `suggest` when it
    /// speaks the fast extension), of the pieces newly offered to it (see
    /// `superseed`). Nothing when not super-seeding.
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
                &self.peer.has,
                !self.peer.we_choke,
                |index| picker.availability(index),
                &mut state.rng,
            )
        };
        for &index in &tell {
            self.shared
                .record_for(self.key, |to| Event::Offer { piece: index, to });
        }
        for index in tell {
            self.send(Message::Have(index)).await?;
            if self.fast.is_some() {
                // BEP 6 lets a super-seeder point at the piece it wants
                // this peer to take and pass on.
                self.send(Message::Suggest(index)).await?;
            }
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
        if complete && self.peer.has.is_complete() {
            return Err(SessionError::Protocol("both sides are seeders"));
        }
        self.update_interest().await
    }

    async fn update_interest(&mut self) -> Result<(), SessionError> {
        let wanted = self.shared.state().picker.wants_any(&self.peer.has);
        if let Some(message) = self.peer.set_interest(wanted) {
            tracing::trace!(wanted, "interest changes");
            self.send(message).await?;
        }
        self.fill_pipeline().await
    }

    /// Asks for more blocks while unchoked and interested.
    async fn fill_pipeline(&mut self) -> Result<(), SessionError> {
        let want = self.peer.requests_wanted();
        if want == 0 {
            return Ok(());
        }
        let blocks = {
            let mut state = self.shared.state();
            let state = &mut *state;
            state
                .picker
                .pick(self.key, &self.peer.has, want, &mut state.rng)
        };
        self.peer.requested(&blocks, Instant::now());
        for block in blocks {
            self.send(Message::Request(block)).await?;
        }
        Ok(())
    }

    /// A fast-extension message is an error from a peer without the bit.
    fn fast_only(&self) -> Result<(), SessionError> {
        match self.fast {
            Some(_) => Ok(()),
            None => Err(SessionError::Protocol(
                "a fast-extension message without the bit",
            )),
        }
    }

    async fn handle(&mut self, message: Message) -> Result<(), SessionError> {
        // BEP 6: `have_all` and `have_none` are bitfields in short.
        let pieces = self.shared.geometry.piece_count as usize;
        let message = match message {
            Message::HaveAll if self.fast.is_some() => Message::Bitfield(Bitfield::full(pieces)),
            Message::HaveNone if self.fast.is_some() => Message::Bitfield(Bitfield::new(pieces)),
            other => other,
        };
        if !matches!(message, Message::Piece { .. } | Message::Request(_)) {
            tracing::trace!(?message, "received");
        }
        let first = self.peer.received(&message, Instant::now());
        match message {
            Message::Port(port) => {
                if let Some((dht, addr)) = self.dht.take().filter(|_| port != 0) {
                    dht.add_node(SocketAddr::new(addr.ip(), port));
                }
            }
            Message::KeepAlive | Message::Unknown(_) => {}
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
                        delay::lock(&self.one_way).set_their_id(extensions.delay_id());
                        if let Some(port) = port {
                            self.shared.set_listen_port(self.key, port);
                        }
                        // The peer's extension ids are known now: tell it
                        // our peers at once rather than at the next tick.
                        self.send_pex().await?;
                    }
                    Handled::Delay(message) => {
                        if let Some(sample) = delay::lock(&self.one_way).received(message, now) {
                            self.shared.set_delay(self.key, sample);
                        }
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
                    state.picker.add_availability(&field);
                    state
                        .picker
                        .remove_availability(&self.peer.replace_has(field));
                    if let Some(slot) = state.peers.get_mut(&self.key) {
                        // What it had when it came is not growth this round.
                        let growth = slot.pieces.saturating_sub(slot.pieces_round);
                        slot.pieces = self.peer.has.count() as u32;
                        slot.pieces_round = slot.pieces.saturating_sub(growth);
                    }
                }
                if self.peer.has.is_complete() && self.shared.state().picker.is_complete() {
                    return Err(SessionError::Protocol("both sides are seeders"));
                }
                self.update_interest().await?;
                self.offer().await?;
            }
            Message::Have(index) => {
                if self.peer.peer_has(index) {
                    let mut state = self.shared.state();
                    state.picker.add_have(index);
                    if let Some(slot) = state.peers.get_mut(&self.key) {
                        slot.pieces += 1;
                    }
                }
                if !self.peer.am_interested && self.shared.state().picker.wants(index) {
                    self.update_interest().await?;
                }
                self.offer().await?;
            }
            Message::Choke => {
                self.peer.choked();
                self.shared.state().picker.release(self.key);
            }
            Message::Unchoke => {
                self.peer.unchoked();
                self.fill_pipeline().await?;
            }
            Message::Interested => {
                if let Some(choke) = self.shared.set_interested(self.key, true) {
                    self.set_choke(choke).await?;
                }
            }
            Message::NotInterested => {
                if let Some(choke) = self.shared.set_interested(self.key, false) {
                    self.set_choke(choke).await?;
                }
            }
            Message::Request(block) => {
                let have = self.shared.state().picker.have().get(block.index as usize);
                match &self.fast {
                    // Requests while choked, or for pieces we lack, are
                    // ignored (BEP 3).
                    None => {
                        if !self.peer.we_choke && have && !self.uploads.push(block) {
                            return Err(SessionError::Protocol("too many queued requests"));
                        }
                    }
                    // BEP 6: served (an allowed-fast piece even while
                    // choked) or rejected, never ignored.
                    Some(fast) => {
                        let may = !self.peer.we_choke || fast.allowed.contains(&block.index);
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
                self.fast_only()?;
                if self.peer.forget(&block) {
                    self.shared.state().picker.release_block(self.key, block);
                    self.fill_pipeline().await?;
                }
            }
            // Hints we do not act on: we ask for pieces only when unchoked,
            // and choose them by rarity.
            Message::Suggest(_) | Message::AllowedFast(_) => self.fast_only()?,
            Message::Cancel(block) => self.uploads.remove(&block),
            Message::Piece { index, begin, data } => {
                let block = BlockRef {
                    index,
                    begin,
                    length: data.len() as u32,
                };
                let now = Instant::now();
                self.peer.block_arrived(block, now);
                if let Some(waits) = self.peer.take_waits(now) {
                    self.shared.record_for(self.key, |from| Event::Requests {
                        from,
                        blocks: waits.blocks,
                        mean_ms: waits.mean.as_secs_f64() * 1e3,
                        max_ms: waits.max.as_secs_f64() * 1e3,
                        in_flight: waits.in_flight,
                    });
                }
                self.shared.download_limit.acquire(data.len() as u64).await;
                self.shared
                    .downloaded
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                if let Some(piece) = self.shared.store_block(self.key, block, &data) {
                    self.shared.finish_piece(piece).await;
                }
                self.fill_pipeline().await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
