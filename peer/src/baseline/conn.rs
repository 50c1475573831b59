//! One connection: read a request head ([`super::http1`]), get its reply
//! ([`super::respond`]) on the blocking pool, write it, and go on while the
//! client keeps the connection and the server is not shutting down.
//!
//! A file body goes from the page cache to the socket with `sendfile(2)`: no
//! copy through our memory and one system call per chunk, as nginx does with
//! `sendfile on`. Each chunk first waits for the server's rate limiter. A
//! chunk is [`Shared::chunk`] bytes, sent in as many calls as the socket
//! takes. Like nginx, a read from a cold disk inside `sendfile` holds the
//! worker thread until the disk answers.
//!
//! Time limits: while a connection waits for a request head (a new one, or
//! an idle keep-alive one) its [`Slot`] may be taken back, when the head is
//! late or a newer connection needs the slot ([`super::slots`] decides). A
//! connection told so closes at once: with a reset if part of a head had
//! arrived (nginx's `reset_timedout_connection`: no 408 the client may
//! never read, no lingering socket), plainly if nothing had. Once a head is
//! complete the slot is busy and is never taken back. A write that makes no
//! progress for [`STALL_TIMEOUT`] ends the connection, so a client that stops
//! reading cannot hold a slot forever either.

use std::{
    fs::File,
    io,
    net::SocketAddr,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, Interest},
    net::TcpStream,
    time::timeout,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{
    gate::Slot,
    http1::{self, Parsed, RequestHead},
    respond::{self, Body, Reply, Shared},
};

/// The longest a write may wait for the client to read.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long, and how many bytes, a closing connection still reads.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;
/// Free room in the head buffer below which it grows before a read.
const READ_AT_LEAST: usize = 512;

/// What the next request head turned out to be.
enum Next {
    Request(RequestHead),
    /// Answer with this status and close.
    Refuse(u16),
    /// Close without answering: the client left, sent nothing in time, or
    /// the server is shutting down.
    Close,
    /// Close with a reset: part of a head came, and no more in time, or the
    /// slot went to a newer connection.
    Reset,
}

/// Serves requests on `stream` until one side closes it or `slot` is taken
/// back; the slot is freed when this returns.
pub async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    client: SocketAddr,
    cancel: CancellationToken,
    mut slot: Slot,
) -> io::Result<()> {
    let mut buffer = Vec::new();
    loop {
        let head = match next_head(&mut stream, &mut buffer, &cancel, &mut slot).await? {
            Next::Request(head) => head,
            Next::Close => return Ok(()),
            Next::Reset => return stream.set_zero_linger(),
            Next::Refuse(status) => {
                let reply = respond::text(status, false);
                send(&shared, &mut stream, client, reply, false).await?;
                return close(stream).await;
            }
        };
        shared.stats.requests.fetch_add(1, Relaxed);
        let keep_alive = head.keep_alive;
        let reply = {
            let shared = Arc::clone(&shared);
            tokio::task::spawn_blocking(move || respond::reply(&shared, &head))
                .await
                .unwrap_or_else(|_| respond::text(500, false))
        };
        // Shutdown lets the reply in progress finish, then closes.
        let keep_alive = keep_alive && !cancel.is_cancelled();
        send(&shared, &mut stream, client, reply, keep_alive).await?;
        if !keep_alive {
            return close(stream).await;
        }
        slot.wait_for_head(buffer.len());
    }
}

/// Closes after a reply: our side first, then whatever the client still sends
/// (a request body, a pipelined request) is read and dropped for a moment.
/// Closing with unread input would make the kernel reset the connection, and
/// the client could lose the reply it has not read yet.
async fn close(mut stream: TcpStream) -> io::Result<()> {
    stream.shutdown().await?;
    // On the heap, not in the task (see `next_head`).
    let mut sink = vec![0u8; 4096];
    let drain = async {
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = timeout(LINGER, drain).await;
    Ok(())
}

/// Reads until `buffer` starts with a whole request head, and takes it out.
/// The slot is busy from the moment a head (or a refusal) is decided.
async fn next_head(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    cancel: &CancellationToken,
    slot: &mut Slot,
) -> io::Result<Next> {
    loop {
        let next = match http1::parse(buffer) {
            Parsed::Complete(head, used) => {
                buffer.drain(..used);
                Some(Next::Request(head))
            }
            Parsed::Invalid => Some(Next::Refuse(400)),
            Parsed::Partial if buffer.len() >= http1::MAX_HEAD => Some(Next::Refuse(431)),
            Parsed::Partial => None,
        };
        if let Some(next) = next {
            // Taken back a moment ago: the eviction stands.
            return Ok(if slot.head_complete() {
                next
            } else {
                Next::Reset
            });
        }
        // Wait for bytes before taking room for them, then read straight
        // into the buffer, which grows by doubling: a connection that never
        // speaks holds no buffer, and one that does holds no read array in
        // its task (each of the hundreds waiting for a head would).
        let ready = tokio::select! {
            () = cancel.cancelled() => return Ok(Next::Close),
            why = slot.closed() => {
                debug!(?why, received = buffer.len(), "closing while waiting for a request head");
                return Ok(if buffer.is_empty() { Next::Close } else { Next::Reset });
            }
            ready = stream.readable() => ready,
        };
        ready?;
        if buffer.capacity() - buffer.len() < READ_AT_LEAST {
            buffer.reserve(buffer.len().max(READ_AT_LEAST * 2));
        }
        let read = match stream.try_read_buf(buffer) {
            Ok(0) => return Ok(Next::Close),
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        slot.received(read);
    }
}

/// Writes a reply: the head, then the body.
async fn send(
    shared: &Arc<Shared>,
    stream: &mut TcpStream,
    client: SocketAddr,
    reply: Reply,
    keep_alive: bool,
) -> io::Result<()> {
    let mut head = http1::response_head(reply.status, &reply.headers, reply.length, keep_alive);
    match reply.body {
        Body::None => write_all(stream, &head).await,
        Body::Page(page) => {
            head.extend_from_slice(&page);
            write_all(stream, &head).await
        }
        Body::File { file, start, name } => {
            write_all(stream, &head).await?;
            let mut transfer = Transfer {
                shared: Arc::clone(shared),
                client,
                name,
                expected: reply.length,
                sent: 0,
                started: Instant::now(),
            };
            send_file(shared, stream, &file, start, &mut transfer).await
        }
    }
}

async fn write_all(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    timeout(STALL_TIMEOUT, stream.write_all(bytes))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"))?
}

/// Sends `transfer.expected` bytes of `file` from `start`, chunk by chunk,
/// each chunk paced by the rate limiter.
async fn send_file(
    shared: &Shared,
    stream: &TcpStream,
    file: &File,
    start: u64,
    transfer: &mut Transfer,
) -> io::Result<()> {
    let end = start + transfer.expected;
    let mut offset = start;
    while offset < end {
        let goal = offset + (end - offset).min(shared.chunk.max(1));
        shared.limiter.acquire(goal - offset).await;
        while offset < goal {
            let count = (goal - offset) as usize;
            let call = stream.async_io(Interest::WRITABLE, || {
                let mut at = offset;
                rustix::fs::sendfile(stream, file, Some(&mut at), count).map_err(io::Error::from)
            });
            let sent = timeout(STALL_TIMEOUT, call).await.map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")
            })??;
            if sent == 0 {
                // The file is shorter than when it was opened: close rather than send short data.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank",
                ));
            }
            offset += sent as u64;
            transfer.add(sent as u64);
        }
    }
    Ok(())
}

/// One body on its way: counts bytes and logs one line when dropped.
struct Transfer {
    shared: Arc<Shared>,
    client: SocketAddr,
    name: String,
    expected: u64,
    sent: u64,
    started: Instant,
}

impl Transfer {
    fn add(&mut self, bytes: u64) {
        self.sent += bytes;
        self.shared.stats.bytes_sent.fetch_add(bytes, Relaxed);
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        let complete = self.sent == self.expected;
        let counter = if complete {
            &self.shared.stats.transfers
        } else {
            &self.shared.stats.aborted
        };
        counter.fetch_add(1, Relaxed);
        info!(
            client = %self.client,
            file = %self.name,
            bytes = self.sent,
            seconds = format_args!("{:.3}", self.started.elapsed().as_secs_f64()),
            "{}",
            if complete { "transfer complete" } else { "transfer aborted" }
        );
    }
}

#[cfg(test)]
mod tests;
