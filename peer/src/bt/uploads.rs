//! What we owe one peer, and the task that sends it: the bounded queue of
//! the peer's requests ([`UploadQueue`]) and the writer task that owns the
//! socket's sending half ([`write_loop`]): our messages first, then runs of
//! requested blocks read from disk straight into the send buffer.

use std::{
    collections::VecDeque,
    sync::{atomic::Ordering, Arc, Mutex},
};

use common::wire::{frame_pieces, BlockRef, Message, MessageCodec, MAX_BLOCK_LEN};
use futures::SinkExt;
use tokio::{
    io::AsyncWrite,
    sync::{mpsc, Notify},
    time::{sleep_until, Instant},
};
use tokio_util::codec::FramedWrite;

use super::{
    delay::{self, SharedOneWay},
    picker::PeerKey,
    session::{SessionError, IO_BUFFER, KEEPALIVE_EVERY, MAX_QUEUED_REQUESTS},
    shared::Shared,
};

/// Requests the peer made of us, waiting for the writer.
#[derive(Default)]
pub struct UploadQueue {
    queue: Mutex<VecDeque<BlockRef>>,
    ready: Notify,
}

impl UploadQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<BlockRef>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// False when the queue is full.
    pub fn push(&self, block: BlockRef) -> bool {
        let mut queue = self.lock();
        if queue.len() >= MAX_QUEUED_REQUESTS {
            return false;
        }
        queue.push_back(block);
        drop(queue);
        self.ready.notify_one();
        true
    }

    pub fn remove(&self, block: &BlockRef) {
        self.lock().retain(|b| b != block);
    }

    /// Drops every queued request, and says which.
    pub fn clear(&self) -> Vec<BlockRef> {
        self.lock().drain(..).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Waits for a request, then takes it with the requests right behind it
    /// that continue it in the same piece, up to `max_bytes` in all, so that
    /// one read from disk serves them all.
    pub async fn next_run(&self, max_bytes: u32, run: &mut Vec<BlockRef>) {
        run.clear();
        loop {
            {
                let mut queue = self.lock();
                if let Some(first) = queue.pop_front() {
                    let (mut end, mut bytes) = (first.begin + first.length, first.length);
                    run.push(first);
                    while let Some(&next) = queue.front() {
                        let continues = next.index == first.index && next.begin == end;
                        if !continues || bytes + next.length > max_bytes {
                            break;
                        }
                        queue.pop_front();
                        run.push(next);
                        end += next.length;
                        bytes += next.length;
                    }
                    return;
                }
            }
            self.ready.notified().await;
        }
    }
}

/// Sends our messages first, then the blocks the peer asked for; flushes when
/// there is nothing more to send; a keep-alive when idle.
pub async fn write_loop<W: AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    key: PeerKey,
    half: W,
    codec: MessageCodec,
    mut messages: mpsc::Receiver<Message>,
    uploads: Arc<UploadQueue>,
    one_way: SharedOneWay,
) -> Result<(), SessionError> {
    let mut sink = FramedWrite::new(half, codec);
    sink.set_backpressure_boundary(IO_BUFFER);
    let mut last_sent = Instant::now();
    let mut run = Vec::new();
    // Our clock for the peer (`delay`), when one is due, just before what
    // it goes with: it waits in the same queues.
    let delay_due =
        |uploading: bool| delay::lock(&one_way).due(uploading, std::time::Instant::now());
    loop {
        // Runs of blocks read at once; one block at a time under a rate
        // limit, so that the limit paces single blocks, as a peer expects
        // (the limit comes and goes with our uplink's queue: `uplink`).
        let limited = shared.upload_limit.rate().is_some();
        let max_run = if limited {
            MAX_BLOCK_LEN
        } else {
            IO_BUFFER as u32
        };
        tokio::select! {
            biased;
            message = messages.recv() => match message {
                Some(message) => {
                    if let Some(delay) = delay_due(false) {
                        sink.feed(delay).await?;
                    }
                    sink.feed(message).await?
                }
                None => {
                    sink.flush().await?;
                    return Ok(());
                }
            },
            () = uploads.next_run(max_run, &mut run) => {
                let bytes: u64 = run.iter().map(|b| u64::from(b.length)).sum();
                shared.upload_limit.acquire(bytes).await;
                if let Some(delay) = delay_due(true) {
                    sink.feed(delay).await?;
                }
                write_blocks(&shared, &mut sink, &run)?;
                shared.uploaded.fetch_add(bytes, Ordering::Relaxed);
                if let Some(slot) = shared.state().peers.get_mut(&key) {
                    slot.up_round += bytes;
                }
                // Under a rate limit each block goes out as it is paid
                // for: left in the buffer until 256 KiB had gathered, a
                // block waited 16 s at 16 KiB/s.
                if limited || sink.write_buffer().len() >= IO_BUFFER {
                    sink.flush().await?;
                }
            },
            _ = sleep_until(last_sent + KEEPALIVE_EVERY) => sink.feed(Message::KeepAlive).await?,
        }
        last_sent = Instant::now();
        if messages.is_empty() && uploads.is_empty() {
            sink.flush().await?;
        }
    }
}

/// Frames a `piece` message for each block of `run` (consecutive blocks of
/// one piece), with the data read from disk straight into the send buffer
/// between the headers: one copy instead of two, one system call per run.
fn write_blocks<W>(
    shared: &Shared,
    sink: &mut FramedWrite<W, MessageCodec>,
    run: &[BlockRef],
) -> Result<(), SessionError> {
    let Some(first) = run.first() else {
        return Ok(());
    };
    let buffer = sink.write_buffer_mut();
    let frames_start = buffer.len();
    let mut slices = frame_pieces(buffer, run);
    let offset = shared.geometry.piece_offset(first.index).unwrap_or(0) + u64::from(first.begin);
    let read = shared.storage.read_vectored_at(offset, &mut slices);
    if let Err(e) = read {
        buffer.truncate(frames_start);
        return Err(SessionError::Disk(e.to_string()));
    }
    Ok(())
}
