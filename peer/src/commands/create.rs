//! `peer create`: hash a file or a directory into a `.torrent`, mktorrent-style.
//!
//! The output is written to a temporary file beside it and moved into place
//! only when complete, so an interrupted run never leaves a truncated torrent,
//! and an existing file is replaced only with `--force`.

use std::{
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use common::create::{self, CreateError, CreateOptions};
use serde_json::json;

use peer::units;

use crate::{
    exit::{Exit, Failure},
    progress,
};

#[derive(clap::Args)]
pub struct Args {
    /// The file or directory to share.
    path: PathBuf,
    /// Tracker announce URL. Repeat for backup tiers; commas put several URLs
    /// in one tier. None: a trackerless torrent, whose peers come from the
    /// DHT (not for --private).
    #[arg(short = 'a', long = "announce", value_name = "URL")]
    announce: Vec<String>,
    /// Piece length in bytes (a power of two from 16K to 16M, e.g. 262144 or 256K), or
    /// `auto`: the smallest power of two giving at most 2,000 pieces.
    #[arg(short = 'l', long, default_value = "auto", value_name = "BYTES|auto")]
    piece_length: String,
    /// Set the private flag (BEP 27): peers only from the trackers.
    #[arg(short = 'p', long)]
    private: bool,
    #[arg(short = 'c', long)]
    comment: Option<String>,
    /// A `source` string in the info dictionary (changes the info-hash).
    #[arg(short = 's', long)]
    source: Option<String>,
    /// Web seed URL (BEP 19); repeatable.
    #[arg(short = 'w', long = "web-seed", value_name = "URL")]
    web_seed: Vec<String>,
    /// Write no creation date, so the same data always gives the same file.
    #[arg(short = 'd', long)]
    no_date: bool,
    /// Hashing threads [default: all cores].
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Include files and folders whose name starts with `.` (skipped by default).
    #[arg(long)]
    include_hidden: bool,
    /// Where to write the torrent.
    #[arg(short = 'o', long, value_name = "FILE.torrent")]
    output: PathBuf,
    /// Replace the output if it exists.
    #[arg(short = 'f', long)]
    force: bool,
    /// Print one JSON object describing the result.
    #[arg(long)]
    json: bool,
}

fn invalid(message: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::InvalidInput, message)
}

fn from_create_error(error: CreateError) -> Failure {
    let exit = match error {
        CreateError::Io { .. } | CreateError::FileChanged(_) => Exit::Io,
        _ => Exit::InvalidInput,
    };
    Failure::new(exit, error)
}

/// `--announce a,b --announce c` gives the tiers `[a, b]` and `[c]`.
fn announce_tiers(values: &[String]) -> Result<Vec<Vec<String>>, Failure> {
    values
        .iter()
        .map(|tier| {
            tier.split(',')
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .map(|url| {
                    if ["http://", "https://", "udp://"]
                        .iter()
                        .any(|scheme| url.starts_with(scheme))
                    {
                        Ok(url.to_owned())
                    } else {
                        Err(invalid(format!(
                            "announce URL {url:?} must start with http://, https:// or udp://"
                        )))
                    }
                })
                .collect()
        })
        .collect()
}

pub fn run(args: Args) -> Result<(), Failure> {
    let started = Instant::now();
    if args.output.exists() && !args.force {
        return Err(Failure::new(
            Exit::Refused,
            format!(
                "{} exists; use --force to replace it",
                args.output.display()
            ),
        ));
    }
    let piece_length = match args.piece_length.as_str() {
        "auto" => None,
        text => Some(
            create::check_piece_length(units::parse_size(text).map_err(invalid)?)
                .map_err(invalid)?,
        ),
    };
    let options = CreateOptions {
        announce_tiers: announce_tiers(&args.announce)?,
        piece_length,
        private: args.private,
        comment: args.comment,
        source: args.source,
        web_seeds: args.web_seed,
        created_by: Some(concat!("peer/", env!("CARGO_PKG_VERSION")).to_owned()),
        creation_date: (!args.no_date).then(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        }),
    };
    let tree = create::scan(&args.path, args.include_hidden).map_err(from_create_error)?;

    let mut pool = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("hash-{i}"));
    if let Some(threads) = args.threads {
        pool = pool.num_threads(threads.max(1));
    }
    let pool = pool
        .build()
        .map_err(|e| Failure::new(Exit::Io, format!("cannot start hashing threads: {e}")))?;
    let bar = progress::bytes_bar(tree.total_length(), "hashing");
    let meta = pool
        .install(|| create::create(&tree, &options, &|bytes| bar.inc(bytes)))
        .map_err(from_create_error)?;
    bar.finish_and_clear();

    write_atomically(&args.output, &meta.to_bytes(), args.force)?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let summary = json!({
            "output": args.output,
            "info_hash": meta.info_hash.to_hex(),
            "name": meta.info.name,
            "piece_length": meta.info.piece_length,
            "pieces": meta.info.piece_count(),
            "total_length": meta.info.total_length,
            "files": meta.info.files.len(),
            "seconds": seconds,
        });
        println!("{summary}");
    } else {
        println!(
            "{}: {} in {} pieces of {}, info-hash {} ({seconds:.2} s)",
            args.output.display(),
            units::human_size(meta.info.total_length),
            meta.info.piece_count(),
            units::human_size(meta.info.piece_length),
            meta.info_hash
        );
    }
    Ok(())
}

/// Writes `bytes` to a temporary file beside `output`, then moves it into
/// place: with `replace`, over any existing file; without, only if `output`
/// still does not exist (a hard link cannot clobber).
pub fn write_atomically(output: &Path, bytes: &[u8], replace: bool) -> Result<(), Failure> {
    let io = |e: std::io::Error| Failure::new(Exit::Io, format!("{}: {e}", output.display()));
    let dir = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".peer-create-")
        .tempfile_in(dir)
        .map_err(io)?;
    temp.write_all(bytes).map_err(io)?;
    // Temporary files start private (0600); a torrent is meant to be shared.
    temp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    if replace {
        temp.persist(output).map_err(|e| io(e.error))?;
    } else {
        temp.persist_noclobber(output).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Failure::new(
                    Exit::Refused,
                    format!("{} exists; use --force to replace it", output.display()),
                )
            } else {
                io(e.error)
            }
        })?;
    }
    Ok(())
}
