//! What a peer session runs over: any byte stream that reads and writes.
//!
//! A session reads on one task and writes on another, so its stream must
//! split in two halves. TCP splits for free; any other stream (an encrypted
//! one, uTP, an in-memory pipe in a test) is wrapped in [`Stream`] and split
//! with tokio's lock. The BitTorrent handshake, the first thing said on any
//! of them, is exchanged here too, by a deadline.

use std::time::Duration;

use common::wire::{Handshake, WireError, HANDSHAKE_LEN};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpStream,
    },
    time::{timeout_at, Instant},
};

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The time a peer has to complete its handshake: libtorrent's
/// `handshake_timeout`. For an accepted connection it counts from accept
/// (`bt::listener`), so a peer that sends nothing at all, or a few bytes and
/// stops, is closed by then; for a dialled one, from the connect.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("no handshake by the deadline")]
    Deadline,
}

/// [`handshake`], given up at `deadline`.
pub async fn handshake_by<S: AsyncRead + AsyncWrite + Unpin>(
    deadline: Instant,
    stream: &mut S,
    ours: &Handshake,
    dialed: bool,
) -> Result<Handshake, HandshakeError> {
    match timeout_at(deadline, handshake(stream, ours, dialed)).await {
        Ok(exchanged) => Ok(exchanged?),
        Err(_) => Err(HandshakeError::Deadline),
    }
}

/// Exchanges handshakes on `stream` and returns the peer's, which must be
/// for our torrent (`ours.info_hash`).
///
/// The initiator (`dialed`) sends its handshake first; we answer an
/// incoming one only once it has shown itself a plaintext handshake for our
/// torrent. A peer that opens with an encrypted (MSE) handshake, as
/// Transmission does by default, then sees the connection closed before any
/// byte of ours, its cue to retry in plaintext. Had we answered at once,
/// Transmission would take our handshake as a plaintext reply, see the close
/// as a failure, and never connect (`integration/tests/peer_interop_dialled.rs`).
/// A foreign or encrypted handshake is refused as soon as its first bytes
/// show it. No time limit here: [`handshake_by`] puts one around it.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    ours: &Handshake,
    dialed: bool,
) -> Result<Handshake, WireError> {
    if dialed {
        stream.write_all(&ours.encode()).await?;
    }
    let mut bytes = [0u8; HANDSHAKE_LEN];
    stream.read_exact(&mut bytes[..20]).await?;
    Handshake::check_prefix(&bytes[..20])?;
    stream.read_exact(&mut bytes[20..]).await?;
    let theirs = Handshake::decode(&bytes)?;
    if theirs.info_hash != ours.info_hash {
        return Err(WireError::WrongInfoHash(theirs.info_hash));
    }
    if !dialed {
        stream.write_all(&ours.encode()).await?;
    }
    Ok(theirs)
}

/// A connection to a peer that a session can run over.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type Read: AsyncRead + Unpin + Send + 'static;
    type Write: AsyncWrite + Unpin + Send + 'static;

    /// The receiving and the sending half.
    fn split(self) -> (Self::Read, Self::Write);
}

impl Transport for TcpStream {
    type Read = OwnedReadHalf;
    type Write = OwnedWriteHalf;

    fn split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.into_split()
    }
}

/// Any stream, as a [`Transport`].
#[derive(Debug)]
pub struct Stream<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for Stream<S> {
    type Read = ReadHalf<S>;
    type Write = WriteHalf<S>;

    fn split(self) -> (ReadHalf<S>, WriteHalf<S>) {
        tokio::io::split(self.0)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
