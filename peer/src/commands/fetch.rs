//! `peer fetch`: download one file over HTTP into a directory, with a
//! progress bar on a terminal and one JSON line on stdout when complete. The
//! work is in [`peer::baseline::fetch`].

use std::{io::Write, path::PathBuf};

use indicatif::ProgressBar;

use peer::{
    baseline::fetch::{self, FetchError, FetchOptions},
    units,
};

use crate::{
    exit::{Exit, Failure},
    progress,
};

#[derive(clap::Args)]
pub struct Args {
    /// http:// URL of the file; its last path segment is the file name.
    url: String,
    /// Directory to save into (created if missing). The download is written as
    /// `.<name>.part` and renamed to `<name>` when complete, replacing any file
    /// of that name.
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    output: PathBuf,
    /// Continue a partial download (`.<name>.part`) with a range request, if the
    /// server still has the same file; otherwise start over. Without it, a
    /// partial download is started over.
    #[arg(long)]
    resume: bool,
    /// Download limit. RATE is bytes/s (12500000), bytes/s with a binary suffix
    /// (10M = 10 MiB/s), or bits/s with a decimal suffix (100mbit = 12,500,000 bytes/s).
    #[arg(long, value_name = "RATE", value_parser = units::parse_rate)]
    max_download_rate: Option<u64>,
    /// Fail (exit 5; the download can be resumed) when the server sends
    /// nothing for this long, e.g. `30s`, `2m`, `500ms` [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    stall_timeout: Option<std::time::Duration>,
}

struct Bar(ProgressBar);

impl fetch::Progress for Bar {
    fn start(&self, total: Option<u64>, done: u64) {
        if let Some(total) = total {
            self.0.set_length(total);
        }
        self.0.set_position(done);
    }

    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let options = FetchOptions {
        url: args.url,
        output: args.output,
        resume: args.resume,
        rate: args.max_download_rate,
        stall_timeout: args.stall_timeout.unwrap_or(fetch::STALL_TIMEOUT),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::Io, format!("cannot start the runtime: {e}")))?;
    let bar = Bar(progress::bytes_bar(0, "fetching"));
    let result = runtime.block_on(fetch::fetch(&options, &bar));
    bar.0.finish_and_clear();
    let report = result.map_err(to_failure)?;
    let line = serde_json::to_string(&report).map_err(|e| Failure::new(Exit::Io, e))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(Exit::Io, format!("stdout: {e}")))
}

fn to_failure(error: FetchError) -> Failure {
    let exit = match error {
        FetchError::BadUrl(_) => Exit::InvalidInput,
        FetchError::Io { .. } => Exit::Io,
        FetchError::Connect { .. }
        | FetchError::Status { .. }
        | FetchError::Protocol { .. }
        | FetchError::Interrupted { .. } => Exit::Network,
    };
    Failure::new(exit, error)
}
