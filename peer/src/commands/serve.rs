//! `peer serve`: the baseline server. Binds, prints where it listens as one
//! JSON line, serves until Ctrl-C or SIGTERM, then prints the totals as one
//! JSON line. The work is in [`peer::baseline::serve`].

use std::{
    io::Write,
    net::{IpAddr, Ipv4Addr},
    path::PathBuf,
};

use serde_json::json;
use tokio::net::TcpListener;

use peer::{
    baseline::serve::{ServeOptions, Server},
    units,
};

use crate::exit::{Exit, Failure};

#[derive(clap::Args)]
pub struct Args {
    /// The directory whose regular files are served (never anything outside it).
    dir: PathBuf,
    /// TCP port; 0 lets the system choose (the JSON line says which).
    #[arg(short, long, default_value_t = 2680)]
    port: u16,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    bind: IpAddr,
    /// Upload limit for the whole server, shared by all clients. RATE is bytes/s
    /// (12500000), bytes/s with a binary suffix (10M = 10 MiB/s), or bits/s with a
    /// decimal suffix (100mbit = 12,500,000 bytes/s).
    #[arg(long, value_name = "RATE", value_parser = units::parse_rate)]
    max_upload_rate: Option<u64>,
    /// Serve an HTML list of the files for directory URLs.
    #[arg(long)]
    list: bool,
    /// Connection slots. When all are taken, a new client takes the slot of
    /// the connection that has waited longest for its request head; when all
    /// are replying, new clients wait to be accepted. Request heads get 30 s
    /// while at most half the slots are taken, down to 2 s when all are.
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_connections: usize,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let server = Server::new(ServeOptions {
        root: args.dir,
        list: args.list,
        rate: args.max_upload_rate,
        max_connections: args.max_connections,
    })
    .map_err(|e| Failure::new(Exit::Io, e))?;
    // The heap a burst of connections leaves behind goes back to the kernel.
    common::serving::heap::keep_trimmed();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::Io, format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let listener = TcpListener::bind((args.bind, args.port))
            .await
            .map_err(|e| {
                Failure::new(
                    Exit::Network,
                    format!("cannot listen on {}:{}: {e}", args.bind, args.port),
                )
            })?;
        let address = listener
            .local_addr()
            .map_err(|e| Failure::new(Exit::Network, e))?;
        print_line(&json!({ "listening": address.to_string() }))?;
        let summary = server.run(listener, shutdown_signal()).await;
        print_line(&json!(summary))
    })
}

/// One line on stdout, flushed at once for the script reading it.
fn print_line(value: &serde_json::Value) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(Exit::Io, format!("stdout: {e}")))
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM ({e}); Ctrl-C still stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
