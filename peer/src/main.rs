//! The `peer` command line: argument parsing and dispatch only. Each
//! subcommand lives in [`commands`]; exit codes are listed in [`exit`].

mod commands;
mod exit;
mod progress;
mod units;

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
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Create(args) => commands::create::run(args),
        Command::Info(args) => commands::info::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

/// Logs go to stderr, at `warn` unless RUST_LOG says otherwise.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
