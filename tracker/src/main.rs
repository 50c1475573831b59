//! The `tracker` command line: arguments, runtime, signals. Everything else is
//! in the library.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::Parser;
use tokio::net::TcpListener;
use tracing::{error, info};

#[derive(Parser)]
#[command(
    name = "tracker",
    version,
    about = "HTTP BitTorrent tracker (announce, scrape) with a live dashboard"
)]
struct Args {
    /// Address and port to listen on.
    #[arg(long, default_value = "0.0.0.0:6969")]
    listen: SocketAddr,
    /// Seconds between a peer's regular announces.
    #[arg(long, default_value_t = 120)]
    interval: u32,
    /// Seconds a peer may stay silent after its interval before it is dropped.
    #[arg(long, default_value_t = 60)]
    grace: u32,
    /// Serve only the torrents whose .torrent files are in DIR (whitelist), and show their names.
    #[arg(long, value_name = "DIR")]
    torrents: Option<PathBuf>,
    /// Most peers returned by one announce.
    #[arg(long, default_value_t = 200)]
    max_numwant: usize,
    /// Most peers stored over all swarms.
    #[arg(long, default_value_t = 5_000_000)]
    max_peers: usize,
    /// Honour the `ip` parameter of announces.
    #[arg(long)]
    allow_ip_param: bool,
    /// Trust X-Forwarded-For on connections from this proxy address.
    #[arg(long, value_name = "IP")]
    trusted_proxy: Option<std::net::IpAddr>,
    /// Refuse scrapes that name no info_hash (by default they list every swarm).
    #[arg(long)]
    no_full_scrape: bool,
    /// Threads, each with its own accept loop and listening socket (SO_REUSEPORT) [default: one per core].
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let catalog = match args
        .torrents
        .as_deref()
        .map(tracker::catalog::load)
        .transpose()
    {
        Ok(catalog) => catalog,
        Err(message) => {
            eprintln!("tracker: error: {message}");
            return ExitCode::from(3);
        }
    };
    let config = tracker::Config {
        interval: args.interval.max(1),
        grace: args.grace,
        max_numwant: args.max_numwant,
        max_peers: args.max_peers,
        allow_ip_param: args.allow_ip_param,
        trusted_proxy: args.trusted_proxy,
        allow_full_scrape: !args.no_full_scrape,
        catalog,
        ..tracker::Config::default()
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let mut listeners = match tracker::server::bind(args.listen, threads) {
        Ok(listeners) => listeners.into_iter(),
        Err(e) => {
            eprintln!("tracker: error: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    let first = listeners.next().expect("bind makes at least one listener");
    let local = first
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    // One line on stdout for scripts started with port 0.
    println!("{}", serde_json::json!({ "listening": local }));
    info!(%local, threads, "tracker listening; dashboard at http://{local}/");
    let state = tracker::AppState::new(config);

    // One single-threaded runtime per thread: a connection stays on the
    // thread that accepted it, with no cross-thread wakeups. This thread also
    // runs the sweeper and waits for the signal, then tells the others.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut others = Vec::new();
    for (n, listener) in listeners.enumerate() {
        let (state, mut stopped) = (state.clone(), stopped.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("tracker-{}", n + 1))
            .spawn(move || {
                runtime()?.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    let shutdown = async move {
                        let _ = stopped.wait_for(|&stop| stop).await;
                    };
                    tracker::server::serve_connections(listener, state, shutdown).await
                })
            });
        match spawned {
            Ok(handle) => others.push(handle),
            Err(e) => error!("cannot start a serving thread: {e}"),
        }
    }
    let served = runtime().and_then(|runtime| {
        runtime.block_on(async move {
            let listener = TcpListener::from_std(first)?;
            let shutdown = async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            };
            tracker::serve(listener, state, shutdown).await
        })
    });
    let mut code = ExitCode::SUCCESS;
    for result in std::iter::once(Ok(served)).chain(others.into_iter().map(|h| h.join())) {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!("server error: {e}");
                code = ExitCode::from(1);
            }
            Err(_) => {
                error!("a serving thread panicked");
                code = ExitCode::from(1);
            }
        }
    }
    code
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = ctrl_c => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    info!("shutting down");
}
