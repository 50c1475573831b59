//! The server: an accept loop over an already-bound listener, one task per
//! connection ([`super::conn`]), the connection slots ([`super::gate`]), and
//! an orderly shutdown.
//!
//! The loop accepts only while a slot can be had: one is free, or one holds a
//! connection still waiting for its request head, which the newcomer then
//! evicts. When every slot is busy replying, new clients wait in the listen
//! backlog. The same loop closes connections whose head is late, at the
//! earliest deadline [`Gate::next_deadline`] names; the slots wake it when
//! that may have changed.
//!
//! Shutdown, when the `shutdown` future completes: stop accepting (the
//! listener is dropped), ask every connection to close after its current
//! response, wait up to [`GRACE`] for them, abort the rest, and return the
//! totals. No task outlives [`Server::run`].

use std::{
    future::Future,
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use common::serving::AcceptBackoff;
use serde::Serialize;
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn, Instrument};

use super::{
    conn,
    gate::{Gate, Slot},
    respond::{Shared, Stats},
};
use crate::rate::RateLimiter;

/// How long connections may take to finish their response after shutdown begins.
pub const GRACE: Duration = Duration::from_secs(5);
/// Bytes per `sendfile` chunk when the rate is not limited.
pub const CHUNK: u64 = 1024 * 1024;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub root: PathBuf,
    /// Serve an HTML listing for directories.
    pub list: bool,
    /// Upload limit for the whole server, bytes per second.
    pub rate: Option<u64>,
    /// Connection slots. A new connection takes the slot of the one that
    /// has waited longest for its request head when none is free; when every
    /// connection is replying, more wait in the listen backlog.
    pub max_connections: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{path}: {source}")]
    Root { path: PathBuf, source: io::Error },
    #[error("{0}: not a directory")]
    NotADirectory(PathBuf),
}

/// The totals printed when the server exits.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Body bytes handed to connections (an aborted transfer may count up to
    /// two chunks the client never received).
    pub bytes_sent: u64,
    /// Bodies sent to the end.
    pub transfers: u64,
    pub aborted: u64,
    pub requests: u64,
    /// Connections closed to give their slot to a new one.
    pub evicted: u64,
    /// Connections closed because their request head was late.
    pub head_timeouts: u64,
    pub seconds: f64,
}

pub struct Server {
    shared: Arc<Shared>,
    max_connections: usize,
}

impl Server {
    pub fn new(options: ServeOptions) -> Result<Self, ServeError> {
        let root = canonical_dir(&options.root)?;
        let limiter = RateLimiter::new(options.rate);
        // A chunk never exceeds the burst, so a limited server sends evenly.
        let chunk = limiter.burst().map_or(CHUNK, |burst| burst.min(CHUNK));
        Ok(Server {
            shared: Arc::new(Shared {
                root,
                list: options.list,
                limiter,
                chunk,
                stats: Stats::default(),
            }),
            max_connections: options.max_connections.max(1),
        })
    }

    /// Serves `listener` until `shutdown` completes, then shuts down as the
    /// module documentation says and returns the totals.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Summary {
        let started = Instant::now();
        info!(
            root = %self.shared.root.display(),
            upload_limit = ?self.shared.limiter.rate(),
            "serving"
        );
        let gate = Gate::new(self.max_connections);
        let cancel = CancellationToken::new();
        let mut connections = JoinSet::new();
        let mut backoff = AcceptBackoff::default();
        let mut shutdown = std::pin::pin!(shutdown);
        // Accepted, and waiting for a slot: only when every slot turned busy
        // between the check for room and the accept.
        let mut waiting: Option<(TcpStream, SocketAddr)> = None;
        loop {
            if let Some((stream, client)) = waiting.take() {
                match gate.admit(Instant::now()) {
                    Some(slot) => {
                        let task = connection(
                            Arc::clone(&self.shared),
                            stream,
                            client,
                            cancel.clone(),
                            slot,
                        );
                        connections
                            .spawn(task.instrument(tracing::debug_span!("connection", %client)));
                    }
                    None => waiting = Some((stream, client)),
                }
            }
            let room = waiting.is_none() && gate.has_room();
            let sweep = gate.next_deadline();
            tokio::select! {
                () = &mut shutdown => break,
                Some(joined) = connections.join_next() => report_panic(joined),
                () = gate.changed() => {}
                () = tokio::time::sleep_until(sweep.unwrap_or_else(Instant::now)), if sweep.is_some() => {
                    gate.sweep(Instant::now());
                }
                accepted = listener.accept(), if room => match accepted {
                    Ok(connection) => {
                        backoff.succeeded();
                        waiting = Some(connection);
                    }
                    // Usually out of file descriptors: back off instead of spinning.
                    Err(e) => tokio::time::sleep(backoff.failed(&e)).await,
                },
            }
        }
        drop(waiting);
        drop(listener);
        cancel.cancel();
        let drained = tokio::time::timeout(GRACE, async {
            while let Some(joined) = connections.join_next().await {
                report_panic(joined);
            }
        })
        .await;
        if drained.is_err() {
            warn!(
                "{} connections still busy after {GRACE:?}; closing them",
                connections.len()
            );
            connections.abort_all();
            while let Some(joined) = connections.join_next().await {
                report_panic(joined);
            }
        }
        let stats = &self.shared.stats;
        let (evicted, head_timeouts) = gate.closed_counts();
        Summary {
            bytes_sent: stats.bytes_sent.load(Relaxed),
            transfers: stats.transfers.load(Relaxed),
            aborted: stats.aborted.load(Relaxed),
            requests: stats.requests.load(Relaxed),
            evicted,
            head_timeouts,
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

fn canonical_dir(path: &Path) -> Result<PathBuf, ServeError> {
    let root = std::fs::canonicalize(path).map_err(|source| ServeError::Root {
        path: path.to_owned(),
        source,
    })?;
    if root.is_dir() {
        Ok(root)
    } else {
        Err(ServeError::NotADirectory(path.to_owned()))
    }
}

/// Serves one connection, holding its slot until it ends.
async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    client: SocketAddr,
    cancel: CancellationToken,
    slot: Slot,
) {
    if let Err(e) = conn::serve(shared, stream, client, cancel, slot).await {
        debug!("connection ended: {e}");
    }
}

fn report_panic(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if e.is_panic() {
            error!("a connection task panicked: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
        sync::oneshot,
    };

    use super::*;

    /// Sends a whole keep-alive request for `/x` on `stream` and reads the
    /// whole reply: proof that the server accepted the connection and now
    /// waits on it for the next request.
    async fn one_request(stream: &mut TcpStream, body: &[u8]) {
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let mut chunk = [0u8; 1024];
        let whole = tokio::time::timeout(Duration::from_secs(10), async {
            while !reply.ends_with(body) || !reply.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the server closed before replying");
                reply.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
        assert!(whole.is_ok(), "no whole reply: {reply:?}");
        assert!(reply.starts_with(b"HTTP/1.1 200"), "{reply:?}");
    }

    /// Reads until the server closes `stream`; fails if it sends a byte or
    /// does not close within `within`. A connection closed with our bytes
    /// still unread is reset by the kernel, which counts as closed.
    async fn closed_by_server(stream: &mut TcpStream, within: Duration) {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(within, stream.read(&mut byte))
            .await
            .expect("the server closed the connection");
        match read {
            Ok(n) => assert_eq!(n, 0, "nothing more was sent before the close"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }

    #[tokio::test]
    async fn shutdown_closes_idle_and_half_sent_connections_without_waiting_out_the_grace() {
        let root = tempfile::tempdir().unwrap();
        let body = b"the body of x";
        std::fs::write(root.path().join("x"), body).unwrap();
        let server = Server::new(ServeOptions {
            root: root.path().to_owned(),
            list: false,
            rate: None,
            max_connections: 4,
        })
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        // Each connection first gets a whole reply, so the server has
        // accepted both before the stop: the stop must close them, not the
        // listener's backlog.
        let mut idle = TcpStream::connect(address).await.unwrap();
        one_request(&mut idle, body).await;
        let mut half = TcpStream::connect(address).await.unwrap();
        one_request(&mut half, body).await;
        half.write_all(b"GET /x HTTP/1.1\r\nHo").await.unwrap();
        let stopping = Instant::now();
        stop.send(()).unwrap();
        let summary = tokio::time::timeout(GRACE / 2, task)
            .await
            .expect("shutdown finished before the grace period")
            .unwrap();
        assert_eq!((summary.requests, summary.transfers), (2, 2), "{summary:?}");
        let left = (GRACE / 2).saturating_sub(stopping.elapsed());
        closed_by_server(&mut idle, left).await;
        closed_by_server(&mut half, left).await;
    }

    #[test]
    fn the_root_must_be_a_directory() {
        let file = tempfile::NamedTempFile::new().unwrap();
        for root in [file.path(), Path::new("/no/such/dir")] {
            let options = ServeOptions {
                root: root.to_owned(),
                list: false,
                rate: None,
                max_connections: 1,
            };
            assert!(Server::new(options).is_err());
        }
    }
}
