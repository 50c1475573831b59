//! `peer download` and `peer seed`: check what is on disk, then run the
//! torrent; a finished download prints one JSON line on stdout. A magnet
//! link is resolved first (`magnet_source`): its metadata is fetched from
//! peers and saved as a `.torrent` beside the data.

use std::{io::Write, net::SocketAddr, path::PathBuf, sync::Arc};

use common::{magnet::is_peer_address, Metainfo};
use tokio_util::sync::CancellationToken;

use super::{load_torrent, magnet_source};
use peer::{
    bt::{
        admission,
        choke::Slots,
        events::EventLog,
        storage::{Storage, StorageError},
        torrent::{self, Settings, Summary, TorrentError},
    },
    dht::service::{Config, Dht},
    units,
};

use crate::{
    exit::{Exit, Failure},
    progress,
};

/// Options shared by `download` and `seed`.
#[derive(clap::Args)]
pub struct PeerOptions {
    /// Port to accept peers on (0: any free port).
    #[arg(long, default_value_t = 6881)]
    port: u16,
    /// Most peers connected at once (connections still in their handshake
    /// do not count). We dial only below three fifths of it, leaving the
    /// rest for peers that dial us.
    #[arg(long, default_value_t = 50)]
    max_peers: usize,
    /// Most connections accepted from one IP address (an IPv6 /64) at once.
    /// Peers on one machine, as in tests on loopback, need more.
    #[arg(long, value_name = "N", default_value_t = admission::MAX_PER_IP)]
    max_per_ip: usize,
    /// Upload limit for the whole process, bytes/s (`10M`) or bits/s (`100mbit`).
    #[arg(long, value_name = "RATE", value_parser = units::parse_rate)]
    max_upload_rate: Option<u64>,
    /// Peers unchoked at once: the fastest ones plus one optimistic slot.
    /// Default: as many as our upload rate feeds, at least 8 (libtorrent's
    /// default): about 12 at 5 Mbit/s and 17 at 10 (each further slot must
    /// get 1 KiB/s plus 4 KiB/s per slot before it); a super-seeder keeps 8.
    /// A number fixes it.
    #[arg(long, value_name = "N")]
    unchoke_slots: Option<usize>,
    /// A peer to dial, HOST:PORT (repeatable), besides those the trackers
    /// give; with it a torrent needs no tracker.
    #[arg(long = "peer", value_name = "HOST:PORT", value_parser = peer_address)]
    pub peers: Vec<String>,
    /// No peer exchange (BEP 11): learn peers only from trackers and by hand.
    #[arg(long)]
    no_pex: bool,
    /// A DHT node to join the DHT through, HOST:PORT (repeatable). None is
    /// assumed: without one (or a `--dht-state` file that knows nodes) the
    /// DHT node only answers those who find it.
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT", value_parser = peer_address)]
    dht_bootstrap: Vec<String>,
    /// Keep the DHT node's id and routing table in FILE between runs.
    #[arg(long, value_name = "FILE")]
    dht_state: Option<PathBuf>,
    /// No DHT (BEP 5): no UDP socket, no lookups, no announces. Private
    /// torrents never use it.
    #[arg(long)]
    no_dht: bool,
    /// Record, as JSON lines in FILE, when each piece verified and which
    /// peers sent it, the pieces a super-seeder offered and the chokes
    /// (for studies; see `peer::bt::events`).
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
}

fn peer_address(text: &str) -> Result<String, String> {
    if is_peer_address(text) {
        Ok(text.to_owned())
    } else {
        Err("expected HOST:PORT (an IPv6 address in brackets), port 1 to 65535".into())
    }
}

#[derive(clap::Args)]
pub struct DownloadArgs {
    /// The .torrent file, or a magnet link (`magnet:?xt=urn:btih:...`).
    #[arg(value_name = "TORRENT|MAGNET")]
    torrent: String,
    /// For a magnet link: where to save the .torrent made from the metadata
    /// (default: `<name>.torrent` in the output directory, beside the data).
    #[arg(long, value_name = "FILE")]
    save_torrent: Option<PathBuf>,
    /// Directory to download into (created if missing); what is already
    /// there is checked and kept.
    #[arg(short, long)]
    output: PathBuf,
    /// Go on seeding after the download completes, until Ctrl-C or SIGTERM.
    #[arg(long)]
    seed: bool,
    /// Download limit for the whole process, bytes/s (`10M`) or bits/s (`100mbit`).
    #[arg(long, value_name = "RATE", value_parser = units::parse_rate)]
    max_download_rate: Option<u64>,
    #[command(flatten)]
    peer: PeerOptions,
}

#[derive(clap::Args)]
pub struct SeedArgs {
    /// The .torrent file.
    torrent: PathBuf,
    /// Directory holding the torrent's data (as `peer download --output` would leave it).
    #[arg(short, long)]
    data: PathBuf,
    /// Super-seed (BEP 16), for the first seeder of a new swarm: show each
    /// peer only a few pieces chosen for it, so that every piece leaves this
    /// seeder about once and the leechers trade the rest among themselves.
    #[arg(long)]
    super_seed: bool,
    #[command(flatten)]
    peer: PeerOptions,
}

fn storage_failure(error: StorageError) -> Failure {
    Failure::new(Exit::Io, error)
}

fn torrent_failure(error: TorrentError) -> Failure {
    let exit = match error {
        TorrentError::Tracker(_) => Exit::Network,
        TorrentError::Listen { .. } | TorrentError::Disk(_) | TorrentError::Threads(_) => Exit::Io,
    };
    Failure::new(exit, error)
}

/// Opens the storage and hashes what is already on disk, off the runtime.
async fn open_and_check(
    meta: &Metainfo,
    root: PathBuf,
    create: bool,
) -> Result<(Storage, common::bitfield::Bitfield), Failure> {
    let info = meta.info.clone();
    let bar = progress::bytes_bar(info.total_length, "checking");
    let checked = tokio::task::spawn_blocking(move || {
        let storage = Storage::open(&root, &info, create)?;
        let have = storage.verify_existing(&|bytes| bar.inc(bytes));
        bar.finish_and_clear();
        Ok::<_, StorageError>((storage, have))
    })
    .await
    .map_err(|e| Failure::new(Exit::Io, format!("checking the data failed: {e}")))?;
    checked.map_err(storage_failure)
}

/// The runtime of a download or a seed, which listen for peers: the heap a
/// burst of connections leaves behind goes back to the kernel.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    common::serving::heap::keep_trimmed();
    tokio::runtime::Runtime::new()
        .map_err(|e| Failure::new(Exit::Io, format!("cannot start the runtime: {e}")))
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub(crate) fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        token.cancel();
    });
}

/// The `--events` file, created now so that a bad path fails at start.
fn open_events(
    options: &PeerOptions,
    started: std::time::Instant,
) -> Result<Option<Arc<EventLog>>, Failure> {
    let Some(path) = &options.events else {
        return Ok(None);
    };
    EventLog::create(path, started)
        .map(|log| Some(Arc::new(log)))
        .map_err(|e| Failure::new(Exit::Io, format!("{}: {e}", path.display())))
}

fn print_summary(summary: &Summary) {
    let mut stdout = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut stdout, summary);
    let _ = writeln!(stdout);
    let _ = stdout.flush();
}

/// Starts the DHT node unless `--no-dht` or the torrent is private, on the
/// UDP port of the same number as our TCP port when it is free (as other
/// clients do), else on any. A node that cannot start is a warning, not a
/// failure: the torrent may have other sources.
async fn start_dht(
    options: &PeerOptions,
    port: u16,
    private: bool,
    shutdown: &CancellationToken,
) -> Option<Dht> {
    if options.no_dht || private {
        return None;
    }
    let bootstrap = magnet_source::resolve(&options.dht_bootstrap).await;
    let config = |port| Config {
        bind: SocketAddr::from(([0, 0, 0, 0], port)),
        bootstrap: bootstrap.clone(),
        state_file: options.dht_state.clone(),
    };
    let mut started = Dht::start(config(port), shutdown.clone()).await;
    if started.is_err() {
        started = Dht::start(config(0), shutdown.clone()).await;
    }
    match started {
        Ok(dht) => Some(dht),
        Err(error) => {
            tracing::warn!(%error, "cannot start the DHT node; going on without it");
            None
        }
    }
}

fn settings(
    options: &PeerOptions,
    download_rate: Option<u64>,
    keep_seeding: bool,
    peers: Vec<SocketAddr>,
    events: Option<Arc<EventLog>>,
) -> Settings {
    Settings {
        dht: None,
        events,
        peers,
        pex: !options.no_pex,
        port: options.port,
        max_peers: options.max_peers.max(1),
        admission: admission::Limits {
            handshakes: admission::MAX_HANDSHAKES,
            per_ip: options.max_per_ip.max(1),
        },
        upload_rate: options.max_upload_rate,
        download_rate,
        keep_seeding,
        unchoke_slots: options
            .unchoke_slots
            .map_or_else(Slots::default, |n| Slots::Fixed(n.max(1))),
        super_seed: false,
    }
}

pub fn download(args: DownloadArgs) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    runtime()?.block_on(async {
        let shutdown = CancellationToken::new();
        cancel_on_signals(shutdown.clone());
        let listener = torrent::listen(args.peer.port)
            .await
            .map_err(torrent_failure)?;
        let mut given = args.peer.peers.clone();
        let port = listener.local_addr().map_or(0, |a| a.port());
        let dht;
        let meta = if common::magnet::Magnet::is_magnet(&args.torrent) {
            let magnet = common::magnet::Magnet::parse(&args.torrent)
                .map_err(|e| Failure::new(Exit::InvalidInput, e))?;
            given.extend(magnet.peers.iter().cloned());
            dht = start_dht(&args.peer, port, false, &shutdown).await;
            let peers = magnet_source::resolve(&given).await;
            let meta =
                magnet_source::fetch(&magnet, peers, port, dht.clone(), shutdown.clone()).await?;
            let saved = args
                .save_torrent
                .clone()
                .unwrap_or_else(|| args.output.join(format!("{}.torrent", meta.info.name)));
            magnet_source::save(&meta, &saved)?;
            meta
        } else {
            let meta = load_torrent(std::path::Path::new(&args.torrent))?;
            dht = start_dht(&args.peer, port, meta.info.private, &shutdown).await;
            meta
        };
        let peers = magnet_source::resolve(&given).await;
        let (storage, have) = open_and_check(&meta, args.output.clone(), true).await?;
        let bar = progress::bytes_bar(meta.info.total_length, "download");
        bar.set_position(have.count() as u64 * meta.info.piece_length.min(meta.info.total_length));
        let events = open_events(&args.peer, started)?;
        let settings = Settings {
            dht,
            ..settings(&args.peer, args.max_download_rate, args.seed, peers, events)
        };
        let seeding = args.seed;
        let outcome = torrent::run(
            started,
            &meta,
            storage,
            have,
            settings,
            listener,
            shutdown,
            |summary| {
                bar.finish_and_clear();
                print_summary(summary);
                if seeding {
                    eprintln!("download complete; seeding until Ctrl-C");
                }
            },
            |status| {
                bar.set_position(status.have);
                bar.set_message(format!("{} peers", status.peers));
            },
        )
        .await
        .map_err(torrent_failure)?;
        if outcome.completed.is_none() {
            return Err(Failure::new(
                Exit::Interrupted,
                "interrupted before the download completed",
            ));
        }
        Ok(())
    })
}

pub fn seed(args: SeedArgs) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let meta = load_torrent(&args.torrent)?;
    runtime()?.block_on(async {
        let (storage, have) = open_and_check(&meta, args.data.clone(), false).await?;
        if !have.is_complete() {
            return Err(Failure::new(
                Exit::InvalidInput,
                format!(
                    "{}: only {} of {} pieces match the torrent; seeding needs all of them",
                    args.data.display(),
                    have.count(),
                    have.len()
                ),
            ));
        }
        let shutdown = CancellationToken::new();
        cancel_on_signals(shutdown.clone());
        let peers = magnet_source::resolve(&args.peer.peers).await;
        let seeding = Settings {
            super_seed: args.super_seed,
            ..settings(
                &args.peer,
                None,
                true,
                peers,
                open_events(&args.peer, started)?,
            )
        };
        let listener = torrent::listen(args.peer.port)
            .await
            .map_err(torrent_failure)?;
        let port = listener.local_addr().map_or(0, |a| a.port());
        let seeding = Settings {
            dht: start_dht(&args.peer, port, meta.info.private, &shutdown).await,
            ..seeding
        };
        let outcome = torrent::run(
            started,
            &meta,
            storage,
            have,
            seeding,
            listener,
            shutdown,
            |_| {},
            |_| {},
        )
        .await
        .map_err(torrent_failure)?;
        // One JSON line when the seeder stops, for scripts that count what it sent.
        let line = serde_json::json!({
            "event": "stopped",
            "info_hash": meta.info_hash.to_hex(),
            "uploaded": outcome.uploaded,
            "seconds": outcome.seconds,
        });
        println!("{line}");
        Ok(())
    })
}
