//! `peer dht`: a stand-alone DHT node for people studying the DHT. It
//! bootstraps, then prints JSON lines: where it listens, its table's size as
//! it changes, and what each lookup found. Lookups come from the command
//! line (`--get-peers`, `--announce`) or from stdin, one command a line:
//! `table` (print the routing table), `get_peers HASH [PORT]` (with a port:
//! announce us on it afterwards), `find_node ID`, `quit`.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use common::{krpc::NodeId, InfoHash};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use peer::dht::service::{Config, Dht, Found};

use super::{download::cancel_on_signals, magnet_source::resolve};
use crate::exit::{Exit, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// UDP address and port to listen on (port 0: any free port).
    #[arg(long, default_value = "0.0.0.0:6881")]
    listen: SocketAddr,
    /// A node to bootstrap from, HOST:PORT (repeatable). None is assumed:
    /// give the nodes of the DHT you want to join.
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT")]
    bootstrap: Vec<String>,
    /// Keep the node id and routing table in FILE between runs.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Look up the peers of an info-hash (40 hex digits; repeatable) once the
    /// table has nodes.
    #[arg(long = "get-peers", value_name = "HASH", value_parser = parse_hash)]
    get_peers: Vec<InfoHash>,
    /// Look up an info-hash and announce this node's address with PORT as a
    /// peer of it (`HASH:PORT`; repeatable).
    #[arg(long, value_name = "HASH:PORT", value_parser = parse_announce)]
    announce: Vec<(InfoHash, u16)>,
    /// Stop after this many seconds (default: run until Ctrl-C, SIGTERM or
    /// `quit`).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<u64>,
}

fn parse_hash(text: &str) -> Result<InfoHash, String> {
    InfoHash::from_hex(text).ok_or_else(|| "expected 40 hex digits".into())
}

fn parse_announce(text: &str) -> Result<(InfoHash, u16), String> {
    let (hash, port) = text.rsplit_once(':').ok_or("expected HASH:PORT")?;
    let port: u16 = port.parse().map_err(|_| "bad port")?;
    Ok((parse_hash(hash)?, port))
}

fn say(value: serde_json::Value) {
    println!("{value}");
}

pub fn run(args: Args) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::Io, format!("cannot start the runtime: {e}")))?;
    runtime.block_on(node(args))
}

async fn node(args: Args) -> Result<(), Failure> {
    let shutdown = CancellationToken::new();
    cancel_on_signals(shutdown.clone());
    let config = Config {
        bind: args.listen,
        bootstrap: resolve(&args.bootstrap).await,
        state_file: args.state.clone(),
    };
    let dht = Dht::start(config, shutdown.clone())
        .await
        .map_err(|e| Failure::new(Exit::Io, format!("cannot listen on {}: {e}", args.listen)))?;
    let started = Instant::now();
    say(json!({"event": "listening", "addr": dht.local_addr(), "id": dht.id().to_hex()}));
    if let Some(seconds) = args.duration {
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            stop.cancel();
        });
    }
    let mut lookups: Vec<(String, Option<u16>)> =
        args.get_peers.iter().map(|h| (h.to_hex(), None)).collect();
    lookups.extend(args.announce.iter().map(|(h, p)| (h.to_hex(), Some(*p))));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut watch = tokio::time::interval(Duration::from_millis(500));
    let mut last_nodes = usize::MAX;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = watch.tick() => {
                let Some(snapshot) = dht.snapshot().await else { break };
                if snapshot.nodes.len() != last_nodes {
                    last_nodes = snapshot.nodes.len();
                    say(json!({"event": "table", "nodes": last_nodes, "buckets": snapshot.buckets,
                        "seconds": started.elapsed().as_secs_f64()}));
                }
                if last_nodes > 0 {
                    for (hash, port) in lookups.drain(..) {
                        spawn_lookup(&dht, &format!("get_peers {hash} {}", port.map(|p| p.to_string()).unwrap_or_default()), started);
                    }
                }
            }
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) => match line.trim() {
                    "quit" => break,
                    "table" => {
                        if let Some(snapshot) = dht.snapshot().await {
                            say(json!({"event": "snapshot", "node": snapshot}));
                        }
                    }
                    "" => {}
                    command => spawn_lookup(&dht, command, started),
                },
                _ => stdin_open = false,
            },
        }
    }
    shutdown.cancel();
    // Give the node's task its turn to save the state file.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// Starts the lookup a command asks for and prints what it finds.
fn spawn_lookup(dht: &Dht, command: &str, started: Instant) {
    let words: Vec<&str> = command.split_whitespace().collect();
    let (kind, target, port) = match words.as_slice() {
        ["get_peers", hash] => ("get_peers", *hash, None),
        ["get_peers", hash, port] => match port.parse::<u16>() {
            Ok(port) => ("get_peers", *hash, Some(port)),
            Err(_) => {
                return say(json!({"event": "error", "command": command, "error": "bad port"}))
            }
        },
        ["find_node", id] => ("find_node", *id, None),
        _ => {
            return say(json!({"event": "error", "command": command,
                "error": "commands: table, get_peers HASH [PORT], find_node ID, quit"}))
        }
    };
    let Some(hash) = InfoHash::from_hex(target) else {
        return say(
            json!({"event": "error", "command": command, "error": "expected 40 hex digits"}),
        );
    };
    let dht = dht.clone();
    let target = target.to_owned();
    tokio::spawn(async move {
        let began = Instant::now();
        let mut found = match kind {
            "get_peers" => dht.get_peers(hash, port).await,
            _ => dht.find_node(NodeId(hash.0)).await,
        };
        let mut first = None;
        while let Some(update) = found.recv().await {
            match update {
                Found::Peers(peers) => {
                    first.get_or_insert(began.elapsed().as_secs_f64());
                    say(json!({"event": "peers", "target": target, "peers": peers,
                        "seconds": started.elapsed().as_secs_f64()}));
                }
                Found::Done {
                    queries,
                    peers,
                    announced,
                } => {
                    say(
                        json!({"event": "done", "lookup": kind, "target": target, "queries": queries,
                        "peers": peers, "announced": announced, "first_peer_after": first,
                        "lookup_seconds": began.elapsed().as_secs_f64(),
                        "seconds": started.elapsed().as_secs_f64()}),
                    );
                }
            }
        }
    });
}
