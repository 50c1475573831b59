//! The HTTP tracker: announce and scrape (BEP 3, 7, 23, 48), `/stats` and a
//! live dashboard.
//!
//! - [`swarm`]: the state, pure and sharded (announce, scrape, expiry).
//! - [`routes`]: HTTP handlers; every refusal is a bencoded failure.
//! - [`stats`]: the announce rate and the `/stats` snapshot.
//! - [`dashboard`]: the HTML page.
//! - [`catalog`]: the whitelist read from `--torrents DIR`.
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests bind port
//! 0 and stop the server without signals.

pub mod catalog;
pub mod dashboard;
pub mod routes;
pub mod stats;
pub mod swarm;

use std::{
    future::Future,
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{extract::ConnectInfo, Router};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;
use tracing::{debug, info};

use crate::{catalog::Catalog, stats::RateMeter, swarm::Swarms};

/// What the operator chose.
#[derive(Debug, Clone)]
pub struct Config {
    /// Seconds between a peer's regular announces.
    pub interval: u32,
    /// Seconds of silence after `interval` before a peer is dropped.
    pub grace: u32,
    /// Peers returned when the client does not say (`numwant` absent).
    pub default_numwant: usize,
    /// Most peers returned, whatever the client asks.
    pub max_numwant: usize,
    /// Most peers stored over all swarms; beyond it new peers are refused.
    pub max_peers: usize,
    /// Honour the `ip` parameter of announces.
    pub allow_ip_param: bool,
    /// Take the peer's address from X-Forwarded-For when the connection comes from this proxy.
    pub trusted_proxy: Option<IpAddr>,
    /// Answer a scrape without info_hash with every swarm.
    pub allow_full_scrape: bool,
    /// Whitelist: when `Some`, only these torrents are served.
    pub catalog: Option<Catalog>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: 120,
            grace: 60,
            default_numwant: 50,
            max_numwant: 200,
            max_peers: 5_000_000,
            allow_ip_param: false,
            trusted_proxy: None,
            allow_full_scrape: true,
            catalog: None,
        }
    }
}

/// Shared by every handler.
pub struct AppState {
    pub config: Config,
    pub swarms: Swarms,
    pub rate: RateMeter,
    started: Instant,
    empty_catalog: Catalog,
}

impl AppState {
    pub fn new(config: Config) -> Arc<Self> {
        Arc::new(AppState {
            swarms: Swarms::new(config.max_peers),
            config,
            rate: RateMeter::default(),
            started: Instant::now(),
            empty_catalog: Catalog::new(),
        })
    }

    /// Whole seconds since the tracker started: the swarms' clock.
    pub fn now(&self) -> u32 {
        self.started.elapsed().as_secs().min(u32::MAX.into()) as u32
    }

    /// The known torrents (empty when not in whitelist mode).
    pub fn catalog(&self) -> &Catalog {
        self.config.catalog.as_ref().unwrap_or(&self.empty_catalog)
    }

    /// Seconds of silence after which a peer is dropped.
    pub fn peer_timeout(&self) -> u32 {
        self.config.interval.saturating_add(self.config.grace)
    }
}

/// The tracker's routes.
pub fn app(state: Arc<AppState>) -> Router {
    routes::router(state)
}

/// Most connections served at once; beyond it new connections are closed
/// at once rather than queued, so a flood cannot exhaust memory or file
/// descriptors.
pub const MAX_CONNECTIONS: usize = 8192;
/// A client must send its request headers within this time.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves on `listener` until `shutdown` completes, then finishes the
/// requests in flight (for at most five seconds). Expired peers are swept
/// every few seconds meanwhile.
///
/// HTTP/1.1 only, straight on hyper: announces arrive one per connection, so
/// the per-connection cost is what counts, and a protocol-sniffing HTTP/1+2
/// server pays for a peek at every new connection.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(sweep_expired(state.clone()));
    let router = app(state);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before
                    // accept: wait a moment rather than spin.
                    debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // over the limit: the stream is dropped, closing it
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                router.clone().oneshot(request)
            },
        );
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    sweeper.abort();
    let _ = sweeper.await;
    info!("tracker stopped");
    Ok(())
}

async fn sweep_expired(state: Arc<AppState>) {
    let period = Duration::from_secs(u64::from(state.config.interval.clamp(1, 30)));
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        let removed = state.swarms.expire(state.now(), state.peer_timeout());
        if removed > 0 {
            debug!(removed, "expired silent peers");
        }
    }
}
