//! How a session starts and ends: dialling, the handshake (by its
//! deadline), registering the peer with `shared` and unregistering it, and
//! what the coordinator learns when the session ends. An accepted
//! connection arrives here handshaken already (`bt::listener`).

use std::{net::SocketAddr, sync::Arc};

use common::wire::Handshake;
use tokio::{
    net::TcpStream,
    time::{timeout, Instant},
};
use tracing::debug;

use super::{
    super::{
        extensions::PeerExtensions,
        fast::FastPeer,
        shared::{Refusal, Shared},
        transport::{self, Transport, CONNECT_TIMEOUT, HANDSHAKE_TIMEOUT},
    },
    Session, SessionError,
};

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
        stream.set_nodelay(true)?;
        run(&shared, stream, addr, true).await
    }
    .await;
    finish(addr, Some(addr), result)
}

/// Runs the session of an accepted connection whose handshake is in
/// (`bt::listener` accepted it and read `theirs`, and answered it).
pub async fn incoming(
    shared: Arc<Shared>,
    stream: TcpStream,
    addr: SocketAddr,
    theirs: Handshake,
) -> SessionEnd {
    let result = serve(&shared, stream, addr, false, theirs).await;
    finish(addr, None, result)
}

/// Runs a session over any stream to the peer at `addr`, which we dialled
/// or which dialled us: the handshake (initiator first), then messages
/// until either side closes.
pub async fn over<T: Transport>(
    shared: Arc<Shared>,
    stream: T,
    addr: SocketAddr,
    dialed: bool,
) -> SessionEnd {
    let result = run(&shared, stream, addr, dialed).await;
    finish(addr, dialed.then_some(addr), result)
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

/// Our handshake: we speak the extension protocol (BEP 10), to serve
/// metadata, and the fast extension (BEP 6).
pub fn our_handshake(shared: &Shared) -> Handshake {
    Handshake::new(shared.info_hash, shared.our_id)
        .with_extensions(true)
        .with_fast(true)
        .with_dht(shared.dht.get().is_some())
}

async fn run<T: Transport>(
    shared: &Arc<Shared>,
    mut stream: T,
    addr: SocketAddr,
    dialed: bool,
) -> Result<(), SessionError> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let theirs =
        transport::handshake_by(deadline, &mut stream, &our_handshake(shared), dialed).await?;
    serve(shared, stream, addr, dialed, theirs).await
}

/// After the handshakes: registers the peer (or says why not), then runs
/// the session until either side closes.
async fn serve<T: Transport>(
    shared: &Arc<Shared>,
    stream: T,
    addr: SocketAddr,
    dialed: bool,
    theirs: Handshake,
) -> Result<(), SessionError> {
    let handshake = our_handshake(shared);
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
    // BEP 5: both run a DHT node; each says its port, and we ping theirs.
    if handshake.supports_dht() && theirs.supports_dht() {
        session.dht = shared.dht.get().cloned().map(|dht| (dht, addr));
    }
    let result = session.run(stream, commands).await;
    shared.unregister(key, &session.peer.has);
    result
}
