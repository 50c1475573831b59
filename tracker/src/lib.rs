//! The tracker: announce and scrape over HTTP (BEP 3, 7, 23, 48) and UDP
//! (BEP 15, 41), one store of swarms behind both, `/stats` and a live
//! dashboard.
//!
//! - [`swarm`]: the state, pure and sharded (announce, scrape, expiry).
//! - [`routes`]: HTTP handlers; every refusal is a bencoded failure.
//! - [`udp`]: the UDP front end, and [`connection_id`], its stateless ids.
//! - [`server`]: the accept loop, the connection limit, graceful shutdown.
//! - [`fast`]: a closing `GET /announce` answered without hyper or axum.
//! - [`stats`]: the announce rate and the `/stats` snapshot.
//! - [`dashboard`]: the HTML page.
//! - [`catalog`]: the whitelist read from `--torrents DIR`.
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests bind port
//! 0 and stop the server without signals.

pub mod catalog;
pub mod connection_id;
pub mod dashboard;
pub mod fast;
pub mod routes;
pub mod server;
pub mod stats;
pub mod swarm;
pub mod udp;

pub use server::{serve, HEADER_TIMEOUT, MAX_CONNECTIONS};

use std::{net::IpAddr, sync::Arc, time::Instant};

use axum::Router;

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
    /// Announces over both front ends.
    pub rate: RateMeter,
    /// Announces over UDP alone.
    pub udp_announces: RateMeter,
    started: Instant,
    empty_catalog: Catalog,
}

impl AppState {
    pub fn new(config: Config) -> Arc<Self> {
        Arc::new(AppState {
            swarms: Swarms::new(config.max_peers),
            config,
            rate: RateMeter::default(),
            udp_announces: RateMeter::default(),
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

    /// Peers to give an announce that asked for `asked` (`None`: did not say).
    pub fn numwant(&self, asked: Option<u32>) -> usize {
        asked
            .map_or(self.config.default_numwant, |n| n as usize)
            .min(self.config.max_numwant)
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
