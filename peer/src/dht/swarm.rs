//! What a torrent asks of the DHT: its peers, again and again, and an
//! announce of our own listening port (BEP 5). A search that found nobody
//! is repeated soon (10 s, doubling to 5 min); one that found peers is
//! repeated every 15 min, which also renews our announce before the
//! 30-minute expiry of the nodes' peer stores.

use std::{net::SocketAddr, time::Duration};

use common::InfoHash;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::service::{Dht, Found};

/// Between searches that found peers (and announces).
pub const REANNOUNCE_EVERY: Duration = Duration::from_secs(15 * 60);
/// After a search that found nobody: first wait, doubled up to the most.
const RETRY_FIRST: Duration = Duration::from_secs(10);
const RETRY_MOST: Duration = Duration::from_secs(5 * 60);

/// What to do for one torrent.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub info_hash: InfoHash,
    /// Announce this port as ours after each search (0: the DHT socket's
    /// port, `implied_port`); `None` to only look (a magnet without its
    /// metadata has nothing to serve yet).
    pub announce: Option<u16>,
    /// Stop when no peer at all was found in this long, closing `found`
    /// (a magnet with no other source then fails instead of waiting
    /// forever); `None` to go on until `stop`.
    pub give_up_after: Option<Duration>,
}

/// Runs until `stop` (or `give_up_after`), sending each search's peers to
/// `found`; returns when `found` is closed.
pub async fn find_peers(
    dht: Dht,
    ask: Ask,
    found: mpsc::Sender<Vec<SocketAddr>>,
    stop: CancellationToken,
) {
    let started = tokio::time::Instant::now();
    let mut retry = RETRY_FIRST;
    let mut any = false;
    loop {
        let mut search = dht.get_peers(ask.info_hash, ask.announce).await;
        let mut this_time = 0;
        loop {
            let update = tokio::select! {
                _ = stop.cancelled() => return,
                update = search.recv() => update,
            };
            match update {
                Some(Found::Peers(peers)) => {
                    if this_time == 0 {
                        info!(info_hash = %ask.info_hash.to_hex(), peers = peers.len(), "first peers from the DHT");
                    }
                    this_time += peers.len();
                    if found.send(peers).await.is_err() {
                        return;
                    }
                }
                Some(Found::Done {
                    queries,
                    peers,
                    announced,
                }) => {
                    info!(info_hash = %ask.info_hash.to_hex(), queries, peers, announced, "DHT search done");
                    break;
                }
                // The node stopped, or had too many searches: try later.
                None => break,
            }
        }
        any |= this_time > 0;
        let mut wait = if this_time > 0 {
            retry = RETRY_FIRST;
            REANNOUNCE_EVERY
        } else {
            let wait = retry;
            retry = (retry * 2).min(RETRY_MOST);
            wait
        };
        if let (Some(limit), false) = (ask.give_up_after, any) {
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                debug!("no peer from the DHT; giving up");
                return;
            }
            wait = wait.min(left);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
