//! Resolving a magnet link: dial the peers it names (and those its trackers
//! give), speak the extension protocol (BEP 10), and fetch the info
//! dictionary (BEP 9) from several of them at once, with [`MetadataFetch`]
//! deciding whom to ask what. The connections close once the dictionary is
//! verified; the download then starts as for a `.torrent`, with the same
//! peers, which redial in a few milliseconds.
//!
//! A connection here runs over any `AsyncRead + AsyncWrite` stream, decodes
//! with [`MessageCodec::before_metadata`] (no geometry yet), and reads only
//! extended messages; everything else a peer sends (its bitfield, haves) is
//! skipped. A peer that misbehaves (see [`Misbehaviour`]) is dropped, a peer
//! whose pieces fail the hash alone is never dialled again.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use common::{
    extension::{
        handshake::{ExtHandshake, ExtensionIds, UT_METADATA},
        metadata::MetadataMessage,
        HANDSHAKE_ID,
    },
    wire::{Handshake, Message, MessageCodec, WireError},
    InfoHash, PeerId,
};
use futures::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    sync::{mpsc, watch},
    task::JoinSet,
    time::{timeout, Instant},
};
use tokio_util::{
    codec::{FramedRead, FramedWrite},
    sync::CancellationToken,
};
use tracing::{debug, info, warn, Instrument};

use super::{
    metadata::{MetadataFetch, Misbehaviour, Progress, PIECE_TIMEOUT},
    picker::PeerKey,
    transport::{self, CONNECT_TIMEOUT, HANDSHAKE_TIMEOUT},
};

/// Connections open at once while fetching metadata.
pub const MAX_CONNECTIONS: usize = 16;
/// Most peer addresses kept to try while fetching the metadata.
pub const MAX_KNOWN: usize = 500;
/// A peer that sends nothing useful for this long is dropped.
const SILENCE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("no peer is known for this magnet link (it names no `x.pe`, no `--peer` was given, and its trackers gave none)")]
    NoPeers,
    #[error("none of the {0} peers tried could send the metadata")]
    NoMetadata(usize),
    #[error("stopped before the metadata arrived")]
    Cancelled,
}

/// Who to ask, and what we say about ourselves.
pub struct Request {
    pub info_hash: InfoHash,
    pub our_id: PeerId,
    /// Our listening port, for the `p` of our extension handshake.
    pub listen_port: u16,
}

/// The state the connections share: the pure fetch, the verified result,
/// and the peers found along the way (from trackers).
struct Fetching {
    request: Request,
    fetch: Mutex<MetadataFetch>,
    done: watch::Sender<Option<Vec<u8>>>,
}

/// Fetches the info dictionary from `peers`, and from more peers as they
/// arrive on `more` (a tracker's replies), until it verifies or `cancel`.
/// Returns the dictionary's bytes, whose SHA-1 is the info-hash.
pub async fn fetch_metadata(
    request: Request,
    peers: Vec<SocketAddr>,
    mut more: mpsc::Receiver<Vec<SocketAddr>>,
    cancel: CancellationToken,
) -> Result<Vec<u8>, MetadataError> {
    let (done, mut result) = watch::channel(None);
    let shared = Arc::new(Fetching {
        fetch: Mutex::new(MetadataFetch::new(request.info_hash)),
        request,
        done,
    });
    let mut known: Vec<SocketAddr> = Vec::new();
    let mut dialed: HashSet<SocketAddr> = HashSet::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut next_key: PeerKey = 0;
    let mut more_open = true;
    known.extend(peers);
    loop {
        // Dial what is known and not yet tried, within the connection cap.
        for &addr in &known {
            if tasks.len() >= MAX_CONNECTIONS {
                break;
            }
            if dialed.insert(addr) {
                next_key += 1;
                let (shared, key) = (shared.clone(), next_key);
                let span = tracing::debug_span!("metadata", %addr);
                tasks.spawn(
                    async move {
                        match connect(&shared, key, addr).await {
                            Ok(()) => debug!("connection closed"),
                            // A lie is worth a line at the default level.
                            Err(ConnectionError::Misbehaved(lie)) => info!(%addr, "dropped: {lie}"),
                            Err(ConnectionError::Extension(e)) => info!(%addr, "dropped: {e}"),
                            Err(e) => debug!(error = %e, "connection ended"),
                        }
                        shared.lock().peer_left(key);
                    }
                    .instrument(span),
                );
            }
        }
        // A connection that verified the dictionary may end before its
        // result is seen below.
        if let Some(info) = result.borrow_and_update().clone() {
            tasks.abort_all();
            return Ok(info);
        }
        if tasks.is_empty() && !more_open {
            return Err(match dialed.len() {
                0 => MetadataError::NoPeers,
                tried => MetadataError::NoMetadata(tried),
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(MetadataError::Cancelled),
            // Checked at the top of the loop.
            _ = result.changed() => {}
            found = more.recv(), if more_open => match found {
                Some(found) => {
                    // A tracker answering every 15 s cannot grow this without end.
                    let room = MAX_KNOWN.saturating_sub(known.len());
                    let fresh: Vec<SocketAddr> =
                        found.into_iter().filter(|a| !known.contains(a)).take(room).collect();
                    known.extend(fresh);
                }
                None => more_open = false,
            },
            Some(_) = tasks.join_next() => {}
        }
    }
}

impl Fetching {
    fn lock(&self) -> std::sync::MutexGuard<'_, MetadataFetch> {
        self.fetch.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("timed out ({0})")]
    Timeout(&'static str),
    #[error("{0}")]
    Misbehaved(#[from] Misbehaviour),
    #[error("{0}")]
    Extension(#[from] common::extension::ExtensionError),
    #[error("the peer cannot send metadata ({0})")]
    Useless(&'static str),
}

impl From<std::io::Error> for ConnectionError {
    fn from(e: std::io::Error) -> Self {
        ConnectionError::Wire(WireError::Io(e))
    }
}

async fn connect(shared: &Fetching, key: PeerKey, addr: SocketAddr) -> Result<(), ConnectionError> {
    let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectionError::Timeout("connect"))??;
    stream.set_nodelay(true)?;
    run(shared, key, stream).await
}

/// One connection, over any stream: handshakes, then metadata requests
/// until the fetch is done or this peer is of no more use.
async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Fetching,
    key: PeerKey,
    mut stream: S,
) -> Result<(), ConnectionError> {
    let request = &shared.request;
    let ours = Handshake::new(request.info_hash, request.our_id).with_extensions(true);
    let theirs = timeout(
        HANDSHAKE_TIMEOUT,
        transport::handshake(&mut stream, &ours, true),
    )
    .await
    .map_err(|_| ConnectionError::Timeout("handshake"))??;
    if theirs.peer_id == request.our_id {
        return Err(ConnectionError::Useless("it is ourselves"));
    }
    if !theirs.supports_extensions() {
        return Err(ConnectionError::Useless("no extension protocol"));
    }
    let (reader, writer) = tokio::io::split(stream);
    let mut reader = FramedRead::new(reader, MessageCodec::before_metadata());
    let mut writer = FramedWrite::new(writer, MessageCodec::before_metadata());
    let handshake = ExtHandshake {
        extensions: vec![(UT_METADATA.to_owned(), ExtensionIds::OUR_METADATA)],
        client: Some(concat!("peer/", env!("CARGO_PKG_VERSION")).to_owned()),
        listen_port: (request.listen_port != 0).then_some(request.listen_port),
        reqq: Some(250),
        metadata_size: None,
        your_ip: None,
    };
    writer
        .send(Message::Extended {
            id: HANDSHAKE_ID,
            payload: Bytes::from(handshake.encode()),
        })
        .await?;

    let mut their_id = None;
    let mut last_useful = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        // Ask for what the fetch gives this peer.
        if let Some(id) = their_id {
            let pieces = shared.lock().requests(key, Instant::now().into_std());
            for piece in pieces {
                let payload = MetadataMessage::Request { piece }.encode();
                writer
                    .send(Message::Extended {
                        id,
                        payload: Bytes::from(payload),
                    })
                    .await?;
            }
        }
        let message = tokio::select! {
            message = reader.next() => match message {
                Some(message) => message?,
                None => return Ok(()),
            },
            _ = tick.tick() => {
                if last_useful.elapsed() > SILENCE.max(PIECE_TIMEOUT) {
                    return Err(ConnectionError::Timeout("no metadata"));
                }
                continue;
            }
        };
        let Message::Extended { id, payload } = message else {
            continue;
        };
        if id == HANDSHAKE_ID {
            let handshake = ExtHandshake::decode(&payload)?;
            their_id = handshake.id_of(UT_METADATA);
            let size = handshake.metadata_size;
            match (their_id, size) {
                (Some(_), Some(size)) => shared.lock().peer_states_size(key, size)?,
                _ => return Err(ConnectionError::Useless("no ut_metadata or no size")),
            }
            debug!(client = ?handshake.client, ?size, "extension handshake");
            last_useful = Instant::now();
        } else if id == ExtensionIds::OUR_METADATA {
            match MetadataMessage::decode(&payload)? {
                MetadataMessage::Data {
                    piece,
                    total_size,
                    data,
                } => {
                    last_useful = Instant::now();
                    let progress = shared.lock().on_data(key, piece, total_size, data)?;
                    match progress {
                        Progress::More => {}
                        Progress::Done(info) => {
                            info!(bytes = info.len(), "metadata verified");
                            shared.done.send_replace(Some(info));
                            return Ok(());
                        }
                        Progress::HashFailed { banned } => {
                            warn!(
                                ?banned,
                                "the metadata failed its hash check; fetching it again"
                            );
                            if banned.contains(&key) {
                                return Err(Misbehaviour::FailedHash.into());
                            }
                        }
                    }
                }
                MetadataMessage::Reject { piece } => {
                    shared.lock().on_reject(key, piece);
                    return Err(ConnectionError::Useless("it rejects metadata requests"));
                }
                // We have no metadata to give yet.
                MetadataMessage::Request { piece } => {
                    if let Some(id) = their_id {
                        let reject = MetadataMessage::Reject { piece }.encode();
                        writer
                            .send(Message::Extended {
                                id,
                                payload: Bytes::from(reject),
                            })
                            .await?;
                    }
                }
            }
        }
        if shared.lock().is_banned(key) {
            return Err(Misbehaviour::FailedHash.into());
        }
    }
}
