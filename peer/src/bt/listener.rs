//! The listening socket for peers: accepts connections, holds each until
//! the peer's handshake is in, and hands it to the coordinator, which starts
//! its session.
//!
//! Each accepted connection is first put to [`Admission`] (pure): one over
//! `--max-per-ip` connections from its address is closed at once; at the
//! cap on handshakes in progress, the oldest connection still in its
//! handshake is closed to make room. The handshake then runs in a task of
//! its own, by a deadline that counts from accept ([`HANDSHAKE_TIMEOUT`]): a
//! connection that sends nothing, or 4 bytes and stops, is closed after
//! 10 s at most, sooner when newer ones push it out. Only a handshaken peer
//! reaches the coordinator, and only a registered session counts against
//! `--max-peers`; the peer's address stays counted until its session ends.
//!
//! The coordinator awaits nothing per connection: [`Listener::next`] is one
//! branch of its `select!`, and each accept costs it a few map operations
//! and a spawn. So half-open connections never hold up the choking rounds,
//! the dialling, or the sessions, which run the picker. When `accept` fails
//! (out of descriptors), accepting pauses (`common::serving::AcceptBackoff`).

use std::{collections::HashMap, net::SocketAddr};

use common::wire::{Handshake, WireError};
use tokio::{
    net::{TcpListener, TcpStream},
    task::{AbortHandle, Id, JoinError, JoinSet},
    time::{sleep_until, Instant},
};
use tracing::{debug, info, warn, Instrument};

use super::{
    admission::{Admission, Limits, Report, Ticket, Verdict},
    transport::{self, HandshakeError, HANDSHAKE_TIMEOUT},
};
use common::serving::AcceptBackoff;

/// A peer whose handshake is in (ours has been sent back), for the
/// coordinator to start a session with; then [`Listener::started`].
pub struct Handshaken {
    pub stream: TcpStream,
    pub addr: SocketAddr,
    pub theirs: Handshake,
    pub ticket: Ticket,
}

type Exchanged = Option<(TcpStream, SocketAddr, Handshake)>;

pub struct Listener {
    socket: TcpListener,
    ours: Handshake,
    admission: Admission,
    /// One task per connection in its handshake.
    handshakes: JoinSet<Exchanged>,
    /// Each handshake task's ticket, and the handle that closes it early.
    tickets: HashMap<Id, Ticket>,
    aborts: HashMap<Ticket, AbortHandle>,
    /// The session tasks of accepted peers, by task: their tickets.
    sessions: HashMap<Id, Ticket>,
    backoff: AcceptBackoff,
    paused: Option<Instant>,
}

impl Listener {
    /// Accepts on `socket` and answers with `ours`, within `limits`.
    pub fn new(socket: TcpListener, ours: Handshake, limits: Limits) -> Self {
        Listener {
            socket,
            ours,
            admission: Admission::new(limits),
            handshakes: JoinSet::new(),
            tickets: HashMap::new(),
            aborts: HashMap::new(),
            sessions: HashMap::new(),
            backoff: AcceptBackoff::default(),
            paused: None,
        }
    }

    /// The next peer whose handshake is in. Cancel-safe: the coordinator's
    /// `select!` drops it whenever another branch is ready, and nothing is
    /// lost, since every await in it is cancel-safe and nothing is held
    /// across one.
    pub async fn next(&mut self) -> Handshaken {
        loop {
            tokio::select! {
                accepted = self.socket.accept(), if self.paused.is_none() => match accepted {
                    Ok((stream, addr)) => {
                        self.backoff.succeeded();
                        // The socket is dual-stack: an IPv4 peer arrives as
                        // ::ffff:a.b.c.d, and is known everywhere else (the
                        // tracker's lists, bans, the per-address limit) as
                        // a.b.c.d.
                        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
                        self.admit(stream, addr);
                    }
                    // Out of descriptors, say: pause accepting, not the loop.
                    Err(e) => self.paused = Some(Instant::now() + self.backoff.failed(&e)),
                },
                _ = sleep_until(self.paused.unwrap_or_else(Instant::now)), if self.paused.is_some() => {
                    self.paused = None;
                }
                Some(done) = self.handshakes.join_next_with_id(), if !self.handshakes.is_empty() => {
                    if let Some(peer) = self.finished(done) {
                        return peer;
                    }
                }
            }
        }
    }

    /// The coordinator runs `peer`'s session as task `id`: its address stays
    /// counted until [`Listener::ended`].
    pub fn started(&mut self, id: Id, ticket: Ticket) {
        self.sessions.insert(id, ticket);
    }

    /// The session task `id` ended (returned, panicked or was aborted); any
    /// task id is welcome, a dialled session's is ignored.
    pub fn ended(&mut self, id: Id) {
        if let Some(ticket) = self.sessions.remove(&id) {
            self.admission.close(ticket);
        }
    }

    fn admit(&mut self, stream: TcpStream, addr: SocketAddr) {
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let verdict = self.admission.admit(addr.ip());
        while let Some(report) = self.admission.report(std::time::Instant::now()) {
            say(report);
        }
        let Verdict::Admit { ticket, evict } = verdict else {
            debug!(%addr, "refused: too many connections from its address");
            return; // dropping the stream closes it
        };
        if let Some(oldest) = evict.and_then(|t| self.aborts.remove(&t)) {
            oldest.abort();
        }
        let span = tracing::debug_span!("handshake", %addr);
        let task = self
            .handshakes
            .spawn(handshake(self.ours, stream, addr, deadline).instrument(span));
        self.tickets.insert(task.id(), ticket);
        self.aborts.insert(ticket, task);
    }

    fn finished(&mut self, done: Result<(Id, Exchanged), JoinError>) -> Option<Handshaken> {
        let (id, exchanged) = match done {
            Ok((id, exchanged)) => (id, exchanged),
            Err(error) => (error.id(), None), // closed to make room, or panicked
        };
        let ticket = self.tickets.remove(&id)?;
        self.aborts.remove(&ticket);
        match exchanged {
            Some((stream, addr, theirs)) if self.admission.handshaken(ticket) => Some(Handshaken {
                stream,
                addr,
                theirs,
                ticket,
            }),
            _ => {
                self.admission.close(ticket);
                None
            }
        }
    }
}

/// One accepted connection's handshake, by `deadline`.
async fn handshake(
    ours: Handshake,
    mut stream: TcpStream,
    addr: SocketAddr,
    deadline: Instant,
) -> Exchanged {
    let exchanged = async {
        stream
            .set_nodelay(true)
            .map_err(|e| HandshakeError::Wire(WireError::Io(e)))?;
        transport::handshake_by(deadline, &mut stream, &ours, false).await
    }
    .await;
    match exchanged {
        Ok(theirs) => Some((stream, addr, theirs)),
        Err(error) => {
            debug!(%addr, %error, "no handshake");
            None
        }
    }
}

fn say(report: Report) {
    match report {
        Report::HandshakesFull { cap } => warn!(
            cap,
            "handshake slots are full: each new connection now closes the oldest one still in its handshake"
        ),
        Report::PerIpFull { ip, limit } => warn!(
            %ip,
            limit,
            "refusing connections over --max-per-ip from an address ({ip} first)"
        ),
        Report::Shed { evicted, refused } => info!(
            evicted,
            refused,
            "the listener is still shedding connections (counts since the last report)"
        ),
    }
}

#[cfg(test)]
mod tests;
