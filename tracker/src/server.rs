//! Serving: the accept loop, the connection limit, graceful shutdown, and
//! which path each connection takes.
//!
//! Announces arrive one per connection, so what a connection costs is what
//! the tracker's rate is made of, and most of that is in the kernel. The
//! loop accepts with mio, without registering the socket with the reactor,
//! and reads at once: with `TCP_DEFER_ACCEPT` the kernel queues a connection
//! for accept only once its first bytes are there. If those bytes are a
//! whole `GET /announce` that asks to close ([`crate::fast`]), the reply is
//! written and the socket closed right there: four system calls (accept,
//! read, write, close), no task, no allocation. A connection with nothing to
//! read yet gets a task that waits for its first bytes and then does the
//! same. Every other connection (another route, keep-alive, a partial head)
//! goes to hyper and axum with whatever was read put back in front
//! (`Prefixed`), so it is served exactly as if hyper had read it.
//!
//! Threads: one accept loop per thread, each on its own listening socket
//! ([`bind`], `SO_REUSEPORT`) in a single-threaded runtime; a connection is
//! served where it was accepted. [`serve`] adds the sweeper; the other
//! threads run [`serve_connections`].
//!
//! Shutdown: stop accepting, tell the connections still waiting for their
//! first bytes to close, let hyper finish the requests in flight (at most
//! five seconds). A waiting connection holds a graceful-shutdown watcher, so
//! the wait covers it too.
//!
//! The fast path is synchronous and short (parse, one shard lock, encode),
//! and the loop handles at most `ACCEPT_BATCH` connections before yielding,
//! so hyper's connections and the sweeper still get their turn.

use std::{
    future::Future,
    io::{self, Read},
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{extract::ConnectInfo, Router};
use common::serving::AcceptBackoff;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::{GracefulShutdown, Watcher},
};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::{
    io::{unix::AsyncFd, AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpListener,
    sync::{watch, OwnedSemaphorePermit, Semaphore},
};
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::{app, fast, AppState};

/// Most connections served at once; beyond it new connections are closed
/// at once rather than queued, so a flood cannot exhaust memory or file
/// descriptors.
pub const MAX_CONNECTIONS: usize = 8192;
/// A client must send its request headers within this time.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pending connections the kernel keeps per listening socket.
pub const BACKLOG: i32 = 4096;
/// Connections accepted in a row before the loop yields to other tasks.
const ACCEPT_BATCH: usize = 32;
/// Bytes of the first read: a request head of up to [`MAX_QUERY_BYTES`]
/// of query and a few headers. A longer head is hyper's.
///
/// [`MAX_QUERY_BYTES`]: common::tracker_proto::query::MAX_QUERY_BYTES
const FIRST_READ: usize = 16 * 1024;
/// Bytes of the first read of a connection that had to wait for it: enough
/// for any real announce; a longer head goes on to hyper.
const WAITED_READ: usize = 4096;

/// Serves on `listener` until `shutdown` completes, then finishes the
/// requests in flight (for at most five seconds). Expired peers are swept
/// every few seconds meanwhile.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let sweeper = tokio::spawn(sweep_expired(state.clone()));
    let served = serve_connections(listener, state, shutdown).await;
    sweeper.abort();
    let _ = sweeper.await;
    info!("tracker stopped");
    served
}

/// Listening sockets for `count` accept loops on `addr`, one per thread,
/// each with a backlog of [`BACKLOG`]. With more than one, they share the
/// port with SO_REUSEPORT and the kernel spreads connections over them, so
/// no two threads contend for one accept queue. With port 0 the first
/// socket picks the port and the others take the same.
///
/// SO_REUSEPORT would also let this tracker share a port with another
/// process of the same user that listens there with it (another tracker):
/// each would then see half the swarm. So a fixed port is first bound once
/// without it, which fails with "address in use" as a plain bind would.
pub fn bind(addr: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    if count > 1 && addr.port() != 0 {
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
    }
    let mut addr = addr;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if count > 1 {
            socket.set_reuse_port(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        socket.set_nonblocking(true)?;
        let listener = std::net::TcpListener::from(socket);
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Raises the soft limit on open descriptors (`RLIMIT_NOFILE`) towards what
/// `threads` accept loops may hold, [`MAX_CONNECTIONS`] each, as far as the
/// hard limit allows; warns once when that is still short. A shell's soft
/// limit is often 1,024 while the hard one is far higher: left there, 1,024
/// idle connections took every descriptor, and honest announces waited in
/// the backlog until the header timeout closed some (5,000 idle partial
/// requests held an announce 8 s).
#[cfg(unix)]
pub fn raise_descriptor_limit(threads: usize) {
    let wanted = (threads.max(1) * MAX_CONNECTIONS + 256) as libc::rlim_t;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write the one struct they are
    // given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted.min(limit.rlim_max),
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    if limit.rlim_cur < wanted {
        warn!(
            limit = limit.rlim_cur,
            wanted,
            "open-file limit below the connection limit: idle connections can lock announces out"
        );
    }
}

#[cfg(not(unix))]
pub fn raise_descriptor_limit(_threads: usize) {}

/// The accept loop alone, without the sweeper: [`serve`] runs one, and a
/// server with an accept loop per thread runs this on the others.
pub async fn serve_connections(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let listener = mio::net::TcpListener::from_std(listener.into_std()?);
    // SAFETY: `register` needs the descriptor to stay open and the same for
    // the `AsyncFd`'s lifetime. The mio listener owns it, closes it only when
    // dropped (after the `AsyncFd` lets go of it), and never replaces it.
    let listener = unsafe { AsyncFd::register(listener) }.map_err(io::Error::from)?;
    if let Err(e) = defer_accept(listener.get_ref(), HEADER_TIMEOUT) {
        debug!("TCP_DEFER_ACCEPT: {e}");
    }
    let mut connections = Connections {
        router: app(state.clone()),
        state,
        graceful: GracefulShutdown::new(),
        closing: watch::Sender::new(()),
        slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        input: vec![0; FIRST_READ].into_boxed_slice(),
        body: Vec::new(),
        reply: Vec::new(),
    };
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    'serving: loop {
        let mut ready = tokio::select! {
            ready = listener.readable() => ready?,
            _ = &mut shutdown => break,
        };
        for _ in 0..ACCEPT_BATCH {
            match ready.get_inner().accept() {
                Ok((stream, remote)) => {
                    backoff.succeeded();
                    connections.take(stream, remote);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready.clear_ready();
                    continue 'serving;
                }
                Err(e) => {
                    // Out of file descriptors: pause rather than spin, and
                    // say so once.
                    let pause = backoff.failed(&e);
                    drop(ready);
                    tokio::time::sleep(pause).await;
                    continue 'serving;
                }
            }
        }
        drop(ready);
        tokio::task::yield_now().await;
    }
    drop(listener);
    let _ = connections.closing.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.graceful.shutdown()).await;
    Ok(())
}

/// What the accept loop needs per connection, and its reused buffers.
struct Connections {
    state: Arc<AppState>,
    router: Router,
    graceful: GracefulShutdown,
    /// Tells connections still waiting for their first bytes to give up.
    closing: watch::Sender<()>,
    slots: Arc<Semaphore>,
    /// The first read of each connection.
    input: Box<[u8]>,
    /// The fast path's bencoded body and whole response.
    body: Vec<u8>,
    reply: Vec<u8>,
}

impl Connections {
    /// Answers a closing announce on the spot; a connection with nothing to
    /// read yet waits in a task of its own; anything else goes to hyper.
    fn take(&mut self, stream: mio::net::TcpStream, remote: SocketAddr) {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return; // over the limit: the stream is dropped, closing it
        };
        let read = match (&stream).read(&mut self.input) {
            Ok(0) => return, // the client hung up
            Ok(n) => &self.input[..n],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                return self.wait_for_request(stream, remote, permit);
            }
            Err(_) => return,
        };
        if fast::announce(&self.state, remote, read, &mut self.body, &mut self.reply) {
            // MSG_MORE holds the reply back until the close right after, so
            // the FIN rides in the same segment: one packet for the client
            // to take in and acknowledge instead of two.
            let written = match SockRef::from(&stream).send_with_flags(&self.reply, MSG_MORE) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(_) => return,
            };
            if written < self.reply.len() {
                // A long reply (dictionary peers) and a full socket buffer.
                let rest = self.reply[written..].to_vec();
                if let Ok(stream) = tokio_stream(stream) {
                    tokio::spawn(write_and_close(stream, rest, permit));
                }
            }
            return; // dropping the stream closes it
        }
        let read = read.to_vec();
        if let Ok(stream) = tokio_stream(stream) {
            let watcher = self.graceful.watcher();
            serve_with_hyper(stream, remote, read, permit, self.router.clone(), watcher);
        }
    }

    /// A client connected but has not sent its request yet: a task waits for
    /// it (up to [`HEADER_TIMEOUT`], or until shutdown), then takes the fast
    /// path or hyper's as [`Connections::take`] would have.
    fn wait_for_request(
        &self,
        stream: mio::net::TcpStream,
        remote: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        let Ok(stream) = tokio_stream(stream) else {
            return;
        };
        let state = self.state.clone();
        let router = self.router.clone();
        // Held until the connection is done, so shutdown waits for it.
        let watcher = self.graceful.watcher();
        let mut closing = self.closing.subscribe();
        tokio::spawn(async move {
            let mut input = vec![0; WAITED_READ];
            let first = async {
                loop {
                    stream.readable().await?;
                    match stream.try_read(&mut input) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        read => return read,
                    }
                }
            };
            let n = tokio::select! {
                read = tokio::time::timeout(HEADER_TIMEOUT, first) => match read {
                    Ok(Ok(n)) if n > 0 => n,
                    _ => return, // silent, hung up or failed
                },
                _ = closing.changed() => return,
            };
            input.truncate(n);
            let (mut body, mut reply) = (Vec::new(), Vec::new());
            if fast::announce(&state, remote, &input, &mut body, &mut reply) {
                write_and_close(stream, reply, permit).await;
            } else {
                serve_with_hyper(stream, remote, input, permit, router, watcher);
            }
        });
    }
}

/// Writes `reply` and closes the connection, giving up after [`HEADER_TIMEOUT`].
async fn write_and_close(
    mut stream: tokio::net::TcpStream,
    reply: Vec<u8>,
    permit: OwnedSemaphorePermit,
) {
    let _ = tokio::time::timeout(HEADER_TIMEOUT, stream.write_all(&reply)).await;
    drop(permit);
}

/// Serves the connection with hyper and axum in a task, `read` first.
fn serve_with_hyper(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    read: Vec<u8>,
    permit: OwnedSemaphorePermit,
    router: Router,
    watcher: Watcher,
) {
    let _ = stream.set_nodelay(true);
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            router.clone().oneshot(request)
        });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(Prefixed::new(read, stream)), service);
    let connection = watcher.watch(connection);
    tokio::spawn(async move {
        let _ = connection.await;
        drop(permit);
    });
}

/// Asks the kernel to queue a connection for accept only once its first
/// bytes have arrived (or `wait` has passed, when it is queued anyway), so
/// the accept loop's first read nearly always finds the request; without it,
/// under load a quarter of the connections needed a task to wait.
#[cfg(target_os = "linux")]
fn defer_accept(listener: &impl std::os::fd::AsRawFd, wait: Duration) -> io::Result<()> {
    let seconds = libc::c_int::try_from(wait.as_secs()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `listener` holds an open socket; the option's value is an int,
    // passed by a pointer valid for the call with its exact size.
    let result = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::from_ref(&seconds).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn defer_accept(_: &impl std::os::fd::AsRawFd, _: Duration) -> io::Result<()> {
    Ok(())
}

#[cfg(target_os = "linux")]
const MSG_MORE: libc::c_int = libc::MSG_MORE;
#[cfg(not(target_os = "linux"))]
const MSG_MORE: libc::c_int = 0;

/// Registers an accepted socket with tokio's reactor.
fn tokio_stream(stream: mio::net::TcpStream) -> io::Result<tokio::net::TcpStream> {
    tokio::net::TcpStream::from_std(std::net::TcpStream::from(stream))
}

/// A stream whose first bytes were already read: reads return them first,
/// then the stream's own. Writes go straight to the stream.
struct Prefixed<S> {
    prefix: Vec<u8>,
    consumed: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix,
            consumed: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rest = &this.prefix[this.consumed..];
        if rest.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.consumed += n;
        if this.consumed == this.prefix.len() {
            this.prefix = Vec::new(); // free it for the connection's lifetime
            this.consumed = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Drops peers silent for longer than the interval and grace, every few
/// seconds, forever; one per server.
pub async fn sweep_expired(state: Arc<AppState>) {
    let period = Duration::from_secs(u64::from(state.config.interval.clamp(1, 30)));
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        let removed = state.swarms.expire(state.now(), state.peer_timeout());
        if removed > 0 {
            debug!(removed, "expired silent peers");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn listeners_for_several_threads_share_one_port() {
        let listeners = bind("127.0.0.1:0".parse().unwrap(), 3).unwrap();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(
            ports[0] != 0 && ports.iter().all(|&p| p == ports[0]),
            "{ports:?}"
        );
    }

    #[test]
    fn a_port_another_tracker_listens_on_is_refused_not_shared() {
        // Another tracker on all cores: its sockets share the port with SO_REUSEPORT.
        let other = bind("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let taken = other[0].local_addr().unwrap();
        for count in [1, 2] {
            let error = bind(taken, count).expect_err("the port is taken");
            assert_eq!(error.kind(), io::ErrorKind::AddrInUse, "{count} threads");
        }
    }

    #[tokio::test]
    async fn a_prefixed_stream_reads_the_prefix_then_the_stream() {
        let (mut near, far) = tokio::io::duplex(64);
        near.write_all(b" world").await.unwrap();
        drop(near);
        let mut stream = Prefixed::new(b"hello".to_vec(), far);
        let mut small = [0; 3];
        stream.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"hel");
        let mut rest = String::new();
        stream.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "lo world");
    }
}
