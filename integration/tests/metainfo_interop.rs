//! Torrents cross-checked with the real tools from Debian's packages:
//! fixtures made by mktorrent and transmission-create read by `peer info`,
//! and torrents made by `peer create` read by transmission-show and aria2c.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use integration::{peer_info, repo_root, require_tool, run, run_ok, workspace_bin};

/// What a tool reports about a torrent.
#[derive(Debug, PartialEq)]
struct Report {
    info_hash: String,
    pieces: u64,
    /// File paths, including the torrent name for a multi-file torrent.
    files: Vec<String>,
    /// Announce URLs, tier by tier.
    trackers: Vec<Vec<String>>,
    comment: Option<String>,
    /// The private flag; `None` from a tool that does not print it (aria2c).
    private: Option<bool>,
}

/// The lines of the section after a heading line such as `TRACKERS`, up to
/// the next heading (a line in capitals at the start), with blank lines kept.
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .collect()
}

/// An optional `Label: value` line.
fn optional_field(text: &str, label: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(|v| v.trim().to_owned())
}

fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
        .trim()
}

fn transmission_show(torrent: &Path) -> Report {
    require_tool("transmission-show");
    let out = run_ok(Command::new("transmission-show").arg(torrent));
    let files_section = out
        .split("\nFILES\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no FILES in:\n{out}"));
    // `  Tier #N` starts a tier; its URLs follow, one a line.
    let mut trackers: Vec<Vec<String>> = Vec::new();
    for line in section(&out, "TRACKERS") {
        let line = line.trim();
        if line.starts_with("Tier #") {
            trackers.push(Vec::new());
        } else if !line.is_empty() {
            trackers
                .last_mut()
                .unwrap_or_else(|| panic!("a URL before any tier:\n{out}"))
                .push(line.to_owned());
        }
    }
    let private = match field(&out, "Privacy:") {
        "Private torrent" => true,
        "Public torrent" => false,
        other => panic!("Privacy: {other:?}"),
    };
    Report {
        info_hash: field(&out, "Hash:").to_lowercase(),
        pieces: field(&out, "Piece Count:").parse().unwrap(),
        files: files_section
            .lines()
            .filter_map(|l| l.trim().rsplit_once(" (").map(|(path, _)| path.to_owned()))
            .collect(),
        trackers,
        comment: optional_field(&out, "Comment:"),
        private: Some(private),
    }
}

/// aria2c -S lists files as `  1|./dir/file` then `   |68KiB (70,000)`.
fn aria2_show(torrent: &Path) -> (Report, Vec<u64>) {
    require_tool("aria2c");
    let out = run_ok(Command::new("aria2c").arg("-S").arg(torrent));
    let mut files = Vec::new();
    let mut lengths = Vec::new();
    for line in out.lines() {
        let Some((index, rest)) = line.split_once('|') else {
            continue;
        };
        if index.trim().parse::<u32>().is_ok() {
            files.push(rest.trim().trim_start_matches("./").to_owned());
        } else if index.trim().is_empty() {
            let exact = rest
                .rsplit_once('(')
                .map(|(_, n)| n.trim_end_matches(')').replace(',', ""));
            lengths.push(
                exact
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("bad length line {line:?}")),
            );
        }
    }
    // `Announce:` is followed by one line per tier, its URLs separated by spaces.
    let trackers = out
        .lines()
        .skip_while(|l| *l != "Announce:")
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .map(|tier| tier.split_whitespace().map(str::to_owned).collect())
        .collect();
    let report = Report {
        info_hash: field(&out, "Info Hash:").to_lowercase(),
        pieces: field(&out, "The Number of Pieces:").parse().unwrap(),
        files,
        trackers,
        comment: optional_field(&out, "Comment:"),
        private: None,
    };
    (report, lengths)
}

/// What `peer info --json` says, in the form of a [`Report`]; `private`
/// is kept only if `with_private` (to compare with aria2c, which lacks it).
fn peer_report(torrent: &Path, with_private: bool) -> (Report, Vec<u64>) {
    let info = peer_info(torrent);
    let files = info["files"].as_array().unwrap();
    (
        Report {
            info_hash: info["info_hash"].as_str().unwrap().to_owned(),
            pieces: info["pieces"].as_u64().unwrap(),
            files: files
                .iter()
                .map(|f| f["path"].as_str().unwrap().to_owned())
                .collect(),
            trackers: serde_json::from_value(info["trackers"].clone()).unwrap(),
            comment: info["comment"].as_str().map(str::to_owned),
            private: with_private.then(|| info["private"].as_bool().unwrap()),
        },
        files
            .iter()
            .map(|f| f["length"].as_u64().unwrap())
            .collect(),
    )
}

fn fixtures() -> Vec<PathBuf> {
    let dir = repo_root().join("torrents/fixtures");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "torrent"))
        .collect();
    found.sort();
    found
}

#[test]
fn peer_info_matches_transmission_show_on_mktorrent_and_transmission_create_fixtures() {
    let mut torrents = fixtures();
    assert!(
        torrents.len() >= 4,
        "expected the four committed fixtures, found {torrents:?}"
    );
    torrents.push(repo_root().join("torrents/seed-1g.torrent"));
    for torrent in torrents {
        let (ours, _) = peer_report(&torrent, true);
        assert_eq!(ours, transmission_show(&torrent), "{}", torrent.display());
        assert_eq!(ours.trackers, [["http://127.0.0.1:6969/announce"]]);
    }
}

#[test]
fn peer_create_on_the_regenerated_fixture_data_reproduces_mktorrent_info_hashes() {
    let data = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("bash")
            .arg(repo_root().join("torrents/fixtures/make-fixtures.sh"))
            .arg("--data")
            .arg(data.path()),
    );
    for (input, fixture) in [
        ("single.bin", "mktorrent-single.torrent"),
        ("multi", "mktorrent-multi.torrent"),
    ] {
        let output = data.path().join(format!("{input}.torrent"));
        run_ok(
            Command::new(workspace_bin("peer"))
                .args([
                    "create",
                    "-l",
                    "32K",
                    "-a",
                    "http://127.0.0.1:6969/announce",
                    "-o",
                ])
                .arg(&output)
                .arg(data.path().join(input)),
        );
        let expected = peer_info(&repo_root().join("torrents/fixtures").join(fixture));
        assert_eq!(
            peer_info(&output)["info_hash"],
            expected["info_hash"],
            "{input}"
        );
    }
}

/// A file tree with names that need care: a space, a nested folder, an empty file.
fn sample_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub dir/deeper")).unwrap();
    integration::make_seed("300001", &root.join("big.bin"));
    integration::make_seed("40000", &root.join("sub dir/deeper/small.bin"));
    std::fs::write(root.join("sub dir/empty.txt"), b"").unwrap();
}

#[test]
fn torrents_from_peer_create_read_the_same_in_transmission_show_and_aria2c() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("share");
    sample_tree(&tree);
    // Tiers (two URLs in the first, by a comma), a comment and the private
    // flag, on one torrent and off the other.
    let tiers = [
        vec![
            "http://127.0.0.1:6969/announce",
            "http://127.0.0.3:6969/announce",
        ],
        vec!["udp://127.0.0.2:6969"],
    ];
    let cases: [(&str, PathBuf, usize, &[&str]); 2] = [
        ("single", tree.join("big.bin"), 1, &[]),
        (
            "multi",
            tree.clone(),
            3,
            &["--private", "--comment", "shared, for tests: ünïcode"],
        ),
    ];
    for (label, input, file_count, extra) in cases {
        let torrent = dir.path().join(format!("{label}.torrent"));
        run_ok(
            Command::new(workspace_bin("peer"))
                .args(["create", "--piece-length", "16384"])
                .args(["-a", &tiers[0].join(","), "-a", tiers[1][0]])
                .args(extra)
                .arg("-o")
                .arg(&torrent)
                .arg(&input),
        );
        let (ours, our_lengths) = peer_report(&torrent, true);
        assert_eq!(ours.files.len(), file_count, "{label}");
        assert_eq!(ours.trackers, tiers, "{label}");
        assert_eq!(ours.private, Some(!extra.is_empty()), "{label}");
        assert_eq!(ours.comment.as_deref(), extra.last().copied(), "{label}");
        assert_eq!(
            transmission_show(&torrent),
            ours,
            "transmission-show, {label}"
        );
        let (ours, _) = peer_report(&torrent, false);
        let (aria, aria_lengths) = aria2_show(&torrent);
        assert_eq!(aria, ours, "aria2c -S, {label}");
        assert_eq!(aria_lengths, our_lengths, "aria2c -S lengths, {label}");
    }
}

/// `source` and `private` live in the info dictionary, so they change the
/// info-hash; neither transmission-show 3.00 nor aria2c prints `source`.
/// mktorrent given the same data and options must produce the same info
/// dictionary, hence the same info-hash.
#[test]
fn source_and_private_give_the_info_hash_mktorrent_gives() {
    require_tool("mktorrent");
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("share");
    sample_tree(&tree);
    let announce = "http://127.0.0.1:6969/announce";
    let mut hashes = Vec::new();
    for options in [&["-s", "SRC-1"][..], &["-s", "SRC-1", "-p"], &["-p"]] {
        let ours = dir.path().join("ours.torrent");
        let theirs = dir.path().join("theirs.torrent");
        let _ = std::fs::remove_file(&theirs);
        run_ok(
            Command::new(workspace_bin("peer"))
                .args(["create", "-l", "32K", "-a", announce, "--force", "-o"])
                .arg(&ours)
                .args(options)
                .arg(&tree),
        );
        run_ok(
            Command::new("mktorrent")
                .args(["-l", "15", "-a", announce, "-o"])
                .arg(&theirs)
                .args(options)
                .arg(&tree),
        );
        let (info, reference) = (peer_info(&ours), peer_info(&theirs));
        assert_eq!(info["info_hash"], reference["info_hash"], "{options:?}");
        assert_eq!(info["source"], reference["source"], "{options:?}");
        let source = options.contains(&"-s").then_some("SRC-1");
        assert_eq!(info["source"].as_str(), source, "{options:?}");
        assert_eq!(
            transmission_show(&ours).private,
            Some(options.contains(&"-p"))
        );
        hashes.push(info["info_hash"].clone());
    }
    // Each option changes the info-hash: the comparison above saw them all.
    hashes.dedup();
    assert_eq!(hashes.len(), 3, "{hashes:?}");
}

#[test]
fn a_malformed_torrent_is_one_clear_line_and_exit_code_3() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "garbage.torrent",
            b"<html>not a torrent</html>",
            "bencode: unexpected byte",
        ),
        (
            "traversal.torrent",
            b"d4:infod5:filesld6:lengthi1e4:pathl2:..6:passwdee\
              e4:name1:x12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee",
            "path component \"..\" is a relative reference",
        ),
        ("deep.torrent", &[b'l'; 5000], "nesting deeper than"),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let output = run(Command::new(workspace_bin("peer")).arg("info").arg(&path));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
}

#[test]
fn create_refuses_to_replace_an_existing_torrent_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("f.bin");
    integration::make_seed("20000", &data);
    let output = dir.path().join("f.torrent");
    std::fs::write(&output, b"precious").unwrap();
    let create = |force: bool| {
        let mut command = Command::new(workspace_bin("peer"));
        command
            .args(["create", "-a", "http://127.0.0.1:6969/announce", "-o"])
            .arg(&output)
            .arg(&data);
        if force {
            command.arg("--force");
        }
        run(&mut command)
    };
    assert_eq!(create(false).status.code(), Some(4));
    assert_eq!(std::fs::read(&output).unwrap(), b"precious");
    assert!(create(true).status.success());
    assert_eq!(peer_info(&output)["total_length"], 20000);
}
