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
    Report {
        info_hash: field(&out, "Hash:").to_lowercase(),
        pieces: field(&out, "Piece Count:").parse().unwrap(),
        files: files_section
            .lines()
            .filter_map(|l| l.trim().rsplit_once(" (").map(|(path, _)| path.to_owned()))
            .collect(),
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
    let report = Report {
        info_hash: field(&out, "Info Hash:").to_lowercase(),
        pieces: field(&out, "The Number of Pieces:").parse().unwrap(),
        files,
    };
    (report, lengths)
}

fn peer_report(torrent: &Path) -> (Report, Vec<u64>) {
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
        let (ours, _) = peer_report(&torrent);
        assert_eq!(ours, transmission_show(&torrent), "{}", torrent.display());
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
    let cases = [
        ("single", tree.join("big.bin"), 1usize),
        ("multi", tree.clone(), 3),
    ];
    for (label, input, file_count) in cases {
        let torrent = dir.path().join(format!("{label}.torrent"));
        run_ok(
            Command::new(workspace_bin("peer"))
                .args([
                    "create",
                    "--piece-length",
                    "16384",
                    "-a",
                    "http://127.0.0.1:6969/announce",
                ])
                .args(["-a", "http://127.0.0.2:6969/announce", "-o"])
                .arg(&torrent)
                .arg(&input),
        );
        let (ours, our_lengths) = peer_report(&torrent);
        assert_eq!(ours.files.len(), file_count, "{label}");
        assert_eq!(
            transmission_show(&torrent),
            ours,
            "transmission-show, {label}"
        );
        let (aria, aria_lengths) = aria2_show(&torrent);
        assert_eq!(aria, ours, "aria2c -S, {label}");
        assert_eq!(aria_lengths, our_lengths, "aria2c -S lengths, {label}");
    }
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
