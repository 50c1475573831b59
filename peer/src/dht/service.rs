//! The DHT node on a real UDP socket: one tokio task owns the socket and the
//! [`Node`], feeds it datagrams and ticks, sends what it queues, and answers
//! the handle's requests (searches, a snapshot of the table). The routing
//! table is saved to the state file when the node stops and every few
//! minutes.

use std::{collections::HashMap, io, net::SocketAddr, path::PathBuf, time::Duration};

use common::{
    krpc::{NodeId, MAX_PACKET},
    InfoHash,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;
use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot},
    time::{self, Instant},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    node::{Counters, Event, Node, SearchId, Target},
    state::{self, State},
};

/// How often the node's clock ticks (timeouts, searches, upkeep) while it
/// waits for replies, and while it does not (a node in a swarm of a hundred
/// peers on one machine should cost next to nothing when idle).
const TICK: Duration = Duration::from_millis(100);
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How often the routing table is saved while running.
const SAVE_EVERY: Duration = Duration::from_secs(5 * 60);

/// How to start a node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address and port to listen on (port 0: any free port).
    pub bind: SocketAddr,
    /// Nodes to ask first (`--dht-bootstrap`), already resolved.
    pub bootstrap: Vec<SocketAddr>,
    /// Where the id and table are kept between runs.
    pub state_file: Option<PathBuf>,
}

/// What a search reports to whoever started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Peers(Vec<SocketAddr>),
    Done {
        queries: u32,
        peers: usize,
        announced: usize,
    },
}

/// One node of the table, for people watching.
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    pub id: String,
    pub addr: SocketAddr,
    pub good: bool,
    pub failures: u8,
}

/// The node as it is now.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub id: String,
    pub addr: SocketAddr,
    pub buckets: usize,
    pub nodes: Vec<NodeView>,
    pub searches: usize,
    pub counters: Counters,
}

#[derive(Debug)]
enum Request {
    Search(Target, mpsc::UnboundedSender<Found>),
    Ping(SocketAddr),
    Snapshot(oneshot::Sender<Snapshot>),
}

/// A running node; dropping every handle does not stop it, the shutdown
/// token does.
#[derive(Debug, Clone)]
pub struct Dht {
    requests: mpsc::Sender<Request>,
    addr: SocketAddr,
    id: NodeId,
    has_start: bool,
}

impl Dht {
    /// Binds the socket, loads the state file if any, and starts the node's
    /// task, which runs until `shutdown`.
    pub async fn start(config: Config, shutdown: CancellationToken) -> io::Result<Dht> {
        let socket = UdpSocket::bind(config.bind).await?;
        let addr = socket.local_addr()?;
        let mut rng = StdRng::from_os_rng();
        let saved = match config.state_file.as_deref().map(state::load) {
            Some(Ok(saved)) => saved,
            Some(Err(error)) => {
                warn!(%error, "DHT state file unreadable; starting without it");
                None
            }
            None => None,
        };
        let id = saved
            .as_ref()
            .map_or_else(|| NodeId(rng.random()), |s| s.id);
        let has_start =
            !config.bootstrap.is_empty() || saved.as_ref().is_some_and(|s| !s.nodes.is_empty());
        let now = Instant::now();
        let mut node = Node::new(id, now, StdRng::from_rng(&mut rng));
        for addr in &config.bootstrap {
            node.add_bootstrap(*addr);
        }
        for known in saved.iter().flat_map(|s| s.nodes.iter()) {
            node.add_known(known.addr, now);
        }
        node.tick(now);
        info!(%addr, id = %id.to_hex(), known = saved.map_or(0, |s| s.nodes.len()), "DHT node started");
        let (requests, inbox) = mpsc::channel(64);
        tokio::spawn(run(socket, node, inbox, config.state_file, shutdown));
        Ok(Dht {
            requests,
            addr,
            id,
            has_start,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Whether the node was given a way into a DHT (bootstrap nodes, or
    /// nodes from its state file). Without one it only answers those who
    /// find it, and a search of its own finds nothing.
    pub fn has_start(&self) -> bool {
        self.has_start
    }

    /// Looks up peers of `info_hash`, then announces us with `announce`
    /// (0: our datagrams' source port) when given. Peers arrive on the
    /// receiver as found, then [`Found::Done`]; the receiver closes early
    /// when the node stops or is running too many searches.
    pub async fn get_peers(
        &self,
        info_hash: InfoHash,
        announce: Option<u16>,
    ) -> mpsc::UnboundedReceiver<Found> {
        self.search(Target::Peers {
            info_hash,
            announce,
        })
        .await
    }

    /// Looks up the nodes closest to `target`.
    pub async fn find_node(&self, target: NodeId) -> mpsc::UnboundedReceiver<Found> {
        self.search(Target::Node(target)).await
    }

    async fn search(&self, target: Target) -> mpsc::UnboundedReceiver<Found> {
        let (found, receiver) = mpsc::unbounded_channel();
        let _ = self.requests.send(Request::Search(target, found)).await;
        receiver
    }

    /// A node heard of outside the DHT (a peer's PORT message, BEP 5): it is
    /// pinged, and enters the table if it answers. Dropped when the node is
    /// busy; never waits.
    pub fn add_node(&self, addr: SocketAddr) {
        let _ = self.requests.try_send(Request::Ping(addr));
    }

    /// The node's table and counters; `None` once it has stopped.
    pub async fn snapshot(&self) -> Option<Snapshot> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(Request::Snapshot(reply)).await.ok()?;
        answer.await.ok()
    }
}

async fn run(
    socket: UdpSocket,
    mut node: Node<StdRng>,
    mut inbox: mpsc::Receiver<Request>,
    state_file: Option<PathBuf>,
    shutdown: CancellationToken,
) {
    let addr = socket.local_addr().ok();
    let mut buffer = vec![0u8; MAX_PACKET + 1];
    let mut next_tick = Instant::now() + TICK;
    let mut last_save = Instant::now();
    let mut searches: HashMap<SearchId, mpsc::UnboundedSender<Found>> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            received = socket.recv_from(&mut buffer) => match received {
                // A datagram longer than the buffer arrives cut to it, and
                // then is over the decoder's limit: refused.
                Ok((len, from)) => {
                    node.handle(from, &buffer[..len], Instant::now());
                    next_tick = next_tick.min(Instant::now() + TICK);
                }
                Err(error) => debug!(%error, "DHT receive failed"),
            },
            _ = time::sleep_until(next_tick) => {
                let now = Instant::now();
                node.tick(now);
                next_tick = now + if node.is_idle() { IDLE_TICK } else { TICK };
                if now.saturating_duration_since(last_save) >= SAVE_EVERY {
                    last_save = now;
                    save(&node, state_file.as_ref());
                }
            }
            request = inbox.recv() => match request {
                Some(Request::Search(target, found)) => {
                    if let Some(search) = node.search(target, Instant::now()) {
                        searches.insert(search, found);
                    }
                    next_tick = next_tick.min(Instant::now() + TICK);
                }
                Some(Request::Ping(addr)) => {
                    node.add_known(addr, Instant::now());
                    next_tick = next_tick.min(Instant::now() + TICK);
                }
                Some(Request::Snapshot(reply)) => {
                    let _ = reply.send(snapshot(&node, addr));
                }
                None => {}
            },
        }
        while let Some((to, datagram)) = node.poll_transmit() {
            if let Err(error) = socket.send_to(&datagram, to).await {
                debug!(%to, %error, "DHT send failed");
            }
        }
        while let Some(event) = node.poll_event() {
            match event {
                Event::Peers { search, peers } => {
                    if let Some(found) = searches.get(&search) {
                        let _ = found.send(Found::Peers(peers));
                    }
                }
                Event::Done {
                    search,
                    queries,
                    peers,
                    announced,
                } => {
                    if let Some(found) = searches.remove(&search) {
                        let _ = found.send(Found::Done {
                            queries,
                            peers,
                            announced,
                        });
                    }
                }
            }
        }
    }
    save(&node, state_file.as_ref());
}

fn save(node: &Node<StdRng>, path: Option<&PathBuf>) {
    let Some(path) = path else { return };
    let state = State {
        id: node.id(),
        nodes: node.table().entries().map(|e| e.info).collect(),
    };
    if let Err(error) = state::save(path, &state) {
        warn!(path = %path.display(), %error, "cannot save the DHT state");
    }
}

fn snapshot(node: &Node<StdRng>, addr: Option<SocketAddr>) -> Snapshot {
    let now = Instant::now();
    Snapshot {
        id: node.id().to_hex(),
        addr: addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
        buckets: node.table().bucket_count(),
        nodes: node
            .table()
            .entries()
            .map(|e| NodeView {
                id: e.info.id.to_hex(),
                addr: e.info.addr,
                good: e.is_good(now),
                failures: e.failures,
            })
            .collect(),
        searches: node.searches_running(),
        counters: node.counters(),
    }
}
