//! `peer info`: what a torrent holds, for people (like transmission-show) or
//! as one JSON object for scripts.

use std::path::PathBuf;

use common::Metainfo;
use serde_json::json;

use super::load_torrent;
use peer::units::human_size;

use crate::exit::Failure;

#[derive(clap::Args)]
pub struct Args {
    /// The .torrent file to read.
    torrent: PathBuf,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let meta = load_torrent(&args.torrent)?;
    if args.json {
        println!("{}", to_json(&meta));
    } else {
        print!("{}", report(&meta, &args.torrent));
    }
    Ok(())
}

fn to_json(meta: &Metainfo) -> serde_json::Value {
    let info = &meta.info;
    json!({
        "info_hash": meta.info_hash.to_hex(),
        "name": info.name,
        "piece_length": info.piece_length,
        "pieces": info.piece_count(),
        "total_length": info.total_length,
        "multi_file": info.multi_file,
        "private": info.private,
        "source": info.source,
        "comment": meta.comment,
        "created_by": meta.created_by,
        "creation_date": meta.creation_date,
        "trackers": meta.tracker_tiers(),
        "web_seeds": meta.url_list,
        "files": info.files.iter().map(|f| json!({"path": f.display_path(), "length": f.length})).collect::<Vec<_>>(),
        "magnet": meta.magnet_link(),
    })
}

fn report(meta: &Metainfo, file: &std::path::Path) -> String {
    let info = &meta.info;
    let mut out = format!(
        "Name: {}\nFile: {}\n\nGENERAL\n\n",
        info.name,
        file.display()
    );
    let mut line = |key: &str, value: String| out.push_str(&format!("  {key}: {value}\n"));
    line("Name", info.name.clone());
    line("Hash", meta.info_hash.to_hex());
    if let Some(by) = &meta.created_by {
        line("Created by", by.clone());
    }
    if let Some(date) = meta.creation_date {
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(date.max(0) as u64);
        line(
            "Created on",
            humantime::format_rfc3339_seconds(when).to_string(),
        );
    }
    if let Some(comment) = &meta.comment {
        line("Comment", comment.clone());
    }
    if let Some(source) = &info.source {
        line("Source", source.clone());
    }
    line("Piece Count", info.piece_count().to_string());
    line("Piece Size", human_size(info.piece_length));
    line(
        "Total Size",
        format!(
            "{} ({} bytes)",
            human_size(info.total_length),
            info.total_length
        ),
    );
    line(
        "Privacy",
        if info.private {
            "Private torrent"
        } else {
            "Public torrent"
        }
        .into(),
    );
    line("Magnet", meta.magnet_link());
    out.push_str("\nTRACKERS\n");
    for (number, tier) in meta.tracker_tiers().iter().enumerate() {
        out.push_str(&format!("\n  Tier #{}\n", number + 1));
        for url in tier {
            out.push_str(&format!("  {url}\n"));
        }
    }
    if !meta.url_list.is_empty() {
        out.push_str("\nWEBSEEDS\n\n");
        for url in &meta.url_list {
            out.push_str(&format!("  {url}\n"));
        }
    }
    out.push_str("\nFILES\n\n");
    for file in &info.files {
        out.push_str(&format!(
            "  {} ({})\n",
            file.display_path(),
            human_size(file.length)
        ));
    }
    out
}
