//! The `peer` command line: argument parsing and dispatch only. Each
//! subcommand lives in [`commands`] (arguments in, the engine called, its
//! results printed); exit codes are listed in [`exit`]. The engine itself is
//! the `peer` library (`src/lib.rs`).

mod commands;
mod exit;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "peer", version, about = "BitTorrent peer: create, inspect, download and seed torrents", after_help = exit::HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a .torrent from a file or a directory (like mktorrent).
    Create(commands::create::Args),
    /// Show what a .torrent holds (like transmission-show).
    Info(commands::info::Args),
    /// Download a torrent from its swarm (then seed with --seed).
    Download(commands::download::DownloadArgs),
    /// Seed a torrent whose data is complete on disk.
    Seed(commands::download::SeedArgs),
    /// Serve the files of a directory over HTTP/1.1: the client-server baseline.
    Serve(commands::serve::Args),
    /// Download one file over HTTP into a directory (resumable).
    Fetch(commands::fetch::Args),
    /// Run a stand-alone DHT node (BEP 5): bootstrap, look up, print JSON lines.
    Dht(commands::dht::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs each finished transfer at `info`; the rest only warns.
    init_logging(match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    });
    let result = match cli.command {
        Command::Create(args) => commands::create::run(args),
        Command::Info(args) => commands::info::run(args),
        Command::Download(args) => commands::download::download(args),
        Command::Seed(args) => commands::download::seed(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Fetch(args) => commands::fetch::run(args),
        Command::Dht(args) => commands::dht::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// Logs go to stderr, at `default` unless RUST_LOG says otherwise.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
