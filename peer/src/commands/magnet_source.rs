//! `peer download MAGNET`: the steps before the download proper. Peers come
//! from the link's `x.pe`, `--peer`, the link's trackers and the DHT; the info
//! dictionary comes from those peers (`bt::magnet`), is validated as a
//! `.torrent` would be, and is saved as one so that the next run needs no
//! swarm to start.

use std::{net::SocketAddr, path::Path, time::Duration};

use common::{magnet::Magnet, tracker_proto::AnnounceEvent, Metainfo};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::create::write_atomically;
use peer::{
    bt::{
        magnet::{fetch_metadata, MetadataError, Request},
        torrent::new_peer_id,
        tracker_client::{Progress, TrackerClient},
    },
    dht::{
        service::Dht,
        swarm::{find_peers, Ask},
    },
};

use crate::exit::{Exit, Failure};

/// How often the link's trackers are asked for peers while the metadata is
/// being fetched.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(15);

/// How long the DHT is searched for a magnet's first peer when nothing
/// else gives one, before the download fails.
const DHT_PATIENCE: Duration = Duration::from_secs(120);

/// `HOST:PORT` strings (already checked for their form) to addresses; one
/// that does not resolve is skipped with a warning.
pub async fn resolve(peers: &[String]) -> Vec<SocketAddr> {
    let mut addrs = Vec::new();
    for peer in peers {
        match tokio::net::lookup_host(peer.as_str()).await {
            Ok(found) => {
                for addr in found {
                    if !addrs.contains(&addr) {
                        addrs.push(addr);
                    }
                }
            }
            Err(error) => warn!(%peer, %error, "cannot resolve peer address; skipped"),
        }
    }
    addrs
}

/// Fetches and validates the torrent a magnet link names. `port` is our
/// listening port, said to trackers and peers.
pub async fn fetch(
    magnet: &Magnet,
    peers: Vec<SocketAddr>,
    port: u16,
    dht: Option<Dht>,
    shutdown: CancellationToken,
) -> Result<Metainfo, Failure> {
    let our_id = new_peer_id();
    let done = shutdown.child_token();
    let (found, more) = mpsc::channel(4);
    if let Ok(tracker) = TrackerClient::new(magnet.trackers.clone(), magnet.info_hash, our_id, port)
    {
        tokio::spawn(announce_for_peers(tracker, found.clone(), done.clone()));
    }
    if let Some(dht) = dht.filter(|dht| {
        if !dht.has_start() {
            info!(
                "no DHT node to start from (--dht-bootstrap or --dht-state): not searching the DHT"
            );
        }
        dht.has_start()
    }) {
        let ask = Ask {
            info_hash: magnet.info_hash,
            announce: None,
            give_up_after: Some(DHT_PATIENCE),
        };
        tokio::spawn(find_peers(dht, ask, found.clone(), done.clone()));
    }
    // With no tracker and no DHT, the peers given are all there is: the
    // channel closes now.
    drop(found);
    info!(info_hash = %magnet.info_hash.to_hex(), peers = peers.len(), "fetching the metadata");
    let request = Request {
        info_hash: magnet.info_hash,
        our_id,
        listen_port: port,
    };
    let fetched = fetch_metadata(request, peers, more, done.clone()).await;
    done.cancel();
    let info = fetched.map_err(|e| match e {
        MetadataError::Cancelled => Failure::new(Exit::Interrupted, e),
        MetadataError::NoPeers | MetadataError::NoMetadata(_) => Failure::new(Exit::Network, e),
    })?;
    Metainfo::from_info_bytes(&info, magnet.trackers.clone()).map_err(|e| {
        Failure::new(
            Exit::InvalidInput,
            format!("the swarm's metadata is not a valid torrent: {e}"),
        )
    })
}

/// Announces to the link's trackers until `done`, passing on their peers.
/// The size is not known yet, so `left` says 1 byte: enough for a tracker to
/// count us as a leecher and return seeders.
async fn announce_for_peers(
    mut tracker: TrackerClient,
    found: mpsc::Sender<Vec<SocketAddr>>,
    done: CancellationToken,
) {
    let progress = Progress {
        uploaded: 0,
        downloaded: 0,
        left: 1,
    };
    let mut event = AnnounceEvent::Started;
    loop {
        match tracker.announce(event, progress).await {
            Ok(reply) => {
                debug!(peers = reply.peers.len(), "peers from the tracker");
                if found
                    .send(reply.peers.iter().map(|p| p.addr).collect())
                    .await
                    .is_err()
                {
                    return;
                }
                event = AnnounceEvent::None;
            }
            Err(error) => debug!(%error, "announce failed while fetching the metadata"),
        }
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(ANNOUNCE_EVERY) => {}
        }
    }
}

/// Writes `meta` as a `.torrent` file at `path`, atomically, replacing an
/// older copy.
pub fn save(meta: &Metainfo, path: &Path) -> Result<(), Failure> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::new(Exit::Io, format!("{}: {e}", dir.display())))?;
    }
    write_atomically(path, &meta.to_bytes(), true)?;
    info!(path = %path.display(), "saved the torrent");
    Ok(())
}
