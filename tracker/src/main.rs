//! The `tracker` command line: arguments, runtime, signals. Everything else is
//! in the library.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use socket2::{Domain, Protocol, Socket, Type};

use clap::Parser;
use tokio::net::TcpListener;
use tracing::{error, info};

#[derive(Parser)]
#[command(
    name = "tracker",
    version,
    about = "BitTorrent tracker over HTTP and UDP (announce, scrape) with a live dashboard"
)]
struct Args {
    /// Address and port to listen on (HTTP).
    #[arg(long, default_value = "0.0.0.0:6969")]
    listen: SocketAddr,
    /// Address and port for UDP announces (BEP 15) [default: the HTTP port's
    /// number on UDP, on both IPv4 and IPv6 when listening on 0.0.0.0].
    #[arg(long, value_name = "ADDR", conflicts_with = "no_udp")]
    udp: Option<SocketAddr>,
    /// Serve HTTP only.
    #[arg(long)]
    no_udp: bool,
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
    tracker::server::raise_descriptor_limit(threads);
    common::serving::heap::keep_trimmed();
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
    let udp = if args.no_udp {
        None
    } else {
        let http_port = first.local_addr().map_or(args.listen.port(), |a| a.port());
        match bind_udp(args.udp, args.listen, http_port) {
            Ok(socket) => Some(socket),
            Err(e) => {
                eprintln!("tracker: error: cannot listen on UDP: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let udp_local = udp
        .as_ref()
        .and_then(|s| s.local_addr().ok())
        .map(|a| a.to_string());
    // One line on stdout for scripts started with port 0.
    println!(
        "{}",
        serde_json::json!({ "listening": local, "udp": udp_local })
    );
    info!(%local, threads, udp = ?udp_local, "tracker listening; dashboard at http://{local}/");
    let state = tracker::AppState::new(config);
    let udp_stop = Arc::new(AtomicBool::new(false));
    let udp_thread = udp.and_then(|socket| {
        let (state, stop) = (state.clone(), udp_stop.clone());
        let ids = tracker::connection_id::ConnectionIds::new(rand::random());
        std::thread::Builder::new()
            .name("udp-tracker".into())
            .spawn(move || tracker::udp::serve(socket, state, ids, stop))
            .map_err(|e| error!("cannot start the UDP thread: {e}"))
            .ok()
    });

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
    udp_stop.store(true, Ordering::Relaxed);
    if let Some(thread) = udp_thread {
        let _ = thread.join();
    }
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

/// The UDP socket: `explicit` if given, else the HTTP address with its
/// port. On an unspecified IPv4 address (0.0.0.0) the socket is dual-stack
/// (`[::]`, IPv4 clients seen as IPv4-mapped), or IPv4 alone where IPv6 is
/// off. When the HTTP port was chosen by the system (0) and that port is
/// taken on UDP, any free UDP port will do; the JSON line says which.
fn bind_udp(
    explicit: Option<SocketAddr>,
    http: SocketAddr,
    http_port: u16,
) -> std::io::Result<std::net::UdpSocket> {
    let wanted = explicit.unwrap_or(SocketAddr::new(http.ip(), http_port));
    let bind = |addr: SocketAddr| -> std::io::Result<std::net::UdpSocket> {
        if addr.ip() == IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
            let dual = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).and_then(|s| {
                s.set_only_v6(false)?;
                s.bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), addr.port()).into())?;
                Ok(s)
            });
            if let Ok(socket) = dual {
                return Ok(socket.into());
            }
        }
        std::net::UdpSocket::bind(addr)
    };
    let socket = match bind(wanted) {
        Err(_) if explicit.is_none() && http.port() == 0 => bind(SocketAddr::new(http.ip(), 0)),
        result => result,
    }?;
    // A large receive buffer rides out bursts (the kernel caps it at
    // net.core.rmem_max); best effort, as aquatic does.
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(UDP_RECV_BUFFER);
    Ok(socket)
}

/// The UDP socket's receive buffer asked of the kernel.
const UDP_RECV_BUFFER: usize = 8 << 20;

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
