//! `peer create`'s options and `peer info`'s two outputs, each checked
//! against an independent reader: transmission-show and `aria2c -S` (which
//! print most fields), mktorrent (which writes the same info dictionary, so
//! the same info-hash, for what no reader prints), `date` (for timestamps)
//! and the options a test chose itself.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use integration::{make_seed, peer_info, require_tool, run_ok, workspace_bin};
use serde_json::Value;

fn peer() -> Command {
    Command::new(workspace_bin("peer"))
}

fn transmission_show(torrent: &Path) -> String {
    require_tool("transmission-show");
    run_ok(
        Command::new("transmission-show")
            .arg(torrent)
            .env("TZ", "UTC"),
    )
}

fn aria2_show(torrent: &Path) -> String {
    require_tool("aria2c");
    run_ok(Command::new("aria2c").arg("-S").arg(torrent))
}

/// The value of a `Label: value` line, if there is one.
fn field(text: &str, label: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(|v| v.trim().to_owned())
}

/// The lines of the section after a heading line (`TRACKERS`, `FILES`), up
/// to the next heading.
fn section(text: &str, heading: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .map(str::to_owned)
        .collect()
}

/// aria2c's lines after a label line (`Announce:`, `URL List:`), one
/// space-indented line each.
fn aria2_list(text: &str, label: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| *l != label)
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .map(|l| l.trim().to_owned())
        .collect()
}

/// aria2c's file table: `  1|./name/path` then `   |68KiB (70,000)`.
fn aria2_files(text: &str) -> Vec<(String, u64)> {
    let mut files = Vec::new();
    let mut path = None;
    for line in text.lines() {
        let Some((index, rest)) = line.split_once('|') else {
            continue;
        };
        if index.trim().parse::<u32>().is_ok() {
            path = Some(rest.trim().trim_start_matches("./").to_owned());
        } else if index.trim().is_empty() {
            let exact = rest.rsplit_once('(').unwrap().1.trim_end_matches(')');
            let length = exact.replace(',', "").parse().unwrap();
            files.push((path.take().unwrap(), length));
        }
    }
    files
}

/// A tree with hidden entries: `a.bin`, `sub/b.bin`, `.hidden`, `.hdir/c.bin`.
fn tree(root: &Path) -> PathBuf {
    let share = root.join("share");
    std::fs::create_dir_all(share.join("sub")).unwrap();
    std::fs::create_dir_all(share.join(".hdir")).unwrap();
    make_seed("70000", &share.join("a.bin"));
    make_seed("30000", &share.join("sub/b.bin"));
    make_seed("5000", &share.join(".hidden"));
    make_seed("6000", &share.join(".hdir/c.bin"));
    share
}

#[test]
fn every_create_option_reads_back_in_transmission_show_and_aria2c() {
    let dir = tempfile::tempdir().unwrap();
    let share = tree(dir.path());
    let torrent = dir.path().join("all.torrent");
    let comment = "made for a test, with ünïcode";
    let json_line = run_ok(
        peer()
            .arg("create")
            .args([
                "-a",
                "http://127.0.0.1:1/announce,http://127.0.0.2:1/announce",
            ])
            .args(["-a", "udp://127.0.0.3:1"])
            .args(["--comment", comment, "--source", "SRC", "--private"])
            .args([
                "--web-seed",
                "http://127.0.0.1:2/",
                "--web-seed",
                "http://127.0.0.2:2/x/",
            ])
            .args(["--threads", "2", "--include-hidden", "--no-date", "--json"])
            .args(["-l", "32K", "-o"])
            .arg(&torrent)
            .arg(&share),
    );
    let show = transmission_show(&torrent);
    let aria = aria2_show(&torrent);

    // --json: one object, each value as the readers see it.
    assert_eq!(json_line.lines().count(), 1, "{json_line}");
    let json: Value = serde_json::from_str(&json_line).unwrap();
    let keys: BTreeSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected_keys = [
        "files",
        "info_hash",
        "name",
        "output",
        "piece_length",
        "pieces",
        "seconds",
        "total_length",
    ];
    assert_eq!(keys, expected_keys.into_iter().collect(), "{json}");
    assert_eq!(json["output"], torrent.to_str().unwrap());
    assert_eq!(
        json["info_hash"].as_str().unwrap(),
        field(&show, "Hash:").unwrap()
    );
    assert_eq!(json["name"], field(&show, "Name:").unwrap());
    assert_eq!(json["name"], field(&aria, "Name:").unwrap());
    assert_eq!(json["piece_length"], 32768);
    assert_eq!(field(&aria, "Piece Length:").unwrap(), "32KiB");
    assert_eq!(
        json["pieces"].to_string(),
        field(&show, "Piece Count:").unwrap()
    );
    let files = aria2_files(&aria);
    assert_eq!(json["files"], files.len());
    assert_eq!(
        json["total_length"],
        files.iter().map(|(_, n)| n).sum::<u64>()
    );
    assert!(json["seconds"].as_f64().unwrap() >= 0.0);

    // Comma-separated URLs share a tier; each -a is a tier.
    let tiers = [
        "",
        "  Tier #1",
        "  http://127.0.0.1:1/announce",
        "  http://127.0.0.2:1/announce",
        "",
        "  Tier #2",
        "  udp://127.0.0.3:1",
        "",
    ];
    assert_eq!(section(&show, "TRACKERS"), tiers, "{show}");
    assert_eq!(
        aria2_list(&aria, "Announce:"),
        [
            "http://127.0.0.1:1/announce http://127.0.0.2:1/announce",
            "udp://127.0.0.3:1"
        ],
        "{aria}"
    );
    // --comment, --private, --web-seed.
    assert_eq!(field(&show, "Comment:").as_deref(), Some(comment));
    assert_eq!(field(&aria, "Comment:").as_deref(), Some(comment));
    assert_eq!(field(&show, "Privacy:").unwrap(), "Private torrent");
    let seeds = ["http://127.0.0.1:2/", "http://127.0.0.2:2/x/"];
    assert_eq!(aria2_list(&aria, "URL List:"), seeds, "{aria}");
    assert_eq!(
        section(&show, "WEBSEEDS"),
        ["", "  http://127.0.0.1:2/", "  http://127.0.0.2:2/x/", ""]
    );
    // --no-date: no creation date at all.
    assert_eq!(field(&show, "Created on:").unwrap(), "Unknown", "{show}");
    assert_eq!(field(&aria, "Creation Date:"), None, "{aria}");
    // --include-hidden: the hidden file and folder are in, in a stable order.
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "share/.hdir/c.bin",
            "share/.hidden",
            "share/a.bin",
            "share/sub/b.bin"
        ]
    );

    // --source (and --private) are in the info dictionary, which neither
    // reader prints: mktorrent with the same options writes the same one.
    require_tool("mktorrent");
    let theirs = dir.path().join("mktorrent.torrent");
    run_ok(
        Command::new("mktorrent")
            .args([
                "-l",
                "15",
                "-p",
                "-s",
                "SRC",
                "-a",
                "http://127.0.0.1:1/announce",
                "-o",
            ])
            .arg(&theirs)
            .arg(&share),
    );
    assert_eq!(json["info_hash"], peer_info(&theirs)["info_hash"]);
    assert_eq!(peer_info(&torrent)["source"], "SRC");
}

#[test]
fn without_the_options_the_defaults_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let share = tree(dir.path());
    let torrent = dir.path().join("plain.torrent");
    let before = std::time::SystemTime::now();
    let text = run_ok(
        peer()
            .args([
                "create",
                "-a",
                "http://127.0.0.1:1/announce",
                "-l",
                "16K",
                "-o",
            ])
            .arg(&torrent)
            .arg(&share),
    );
    // Without --json, one line for people.
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("info-hash "), "{text}");
    let show = transmission_show(&torrent);
    let aria = aria2_show(&torrent);
    // Hidden entries are skipped.
    let paths: Vec<String> = aria2_files(&aria).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["share/a.bin", "share/sub/b.bin"]);
    assert_eq!(field(&show, "Privacy:").unwrap(), "Public torrent");
    assert_eq!(
        (field(&show, "Comment:"), field(&aria, "Comment:")),
        (None, None)
    );
    assert!(section(&show, "WEBSEEDS").is_empty(), "{show}");
    assert_eq!(aria2_list(&aria, "URL List:"), Vec::<String>::new());
    // A creation date, now.
    let date = peer_info(&torrent)["creation_date"].as_i64().unwrap();
    let since = before
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (since - 1..=since + 60).contains(&date),
        "{date} vs {since}"
    );
    let printed = run_ok(Command::new("date").args([
        "-u",
        "-d",
        &format!("@{date}"),
        "+%a, %d %b %Y %H:%M:%S GMT",
    ]));
    assert_eq!(field(&aria, "Creation Date:").unwrap(), printed.trim());
    let printed = run_ok(Command::new("date").args([
        "-u",
        "-d",
        &format!("@{date}"),
        "+%a %b %e %H:%M:%S %Y",
    ]));
    assert_eq!(field(&show, "Created on:").unwrap(), printed.trim());
}

/// Threads named `hash-N` in process `pid` right now.
fn hash_threads(pid: u32) -> BTreeSet<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with("hash-"))
        .collect()
}

#[test]
fn threads_sets_the_number_of_hashing_threads_and_not_the_result() {
    let dir = tempfile::tempdir().unwrap();
    // A big sparse file reads fast but takes a while to hash.
    let data = dir.path().join("zeros.bin");
    std::fs::File::create(&data)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let mut hashes = Vec::new();
    for threads in [3, 1] {
        let torrent = dir.path().join(format!("{threads}.torrent"));
        let mut child = peer()
            .args(["create", "-a", "http://127.0.0.1:1/announce", "--no-date"])
            .args(["--threads", &threads.to_string(), "-o"])
            .arg(&torrent)
            .arg(&data)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Watch the threads while it hashes; the pool lives until it is done.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = BTreeSet::new();
        let status = loop {
            seen.extend(hash_threads(child.id()));
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "peer create took over a minute");
            std::thread::sleep(Duration::from_millis(2));
        };
        assert!(status.success());
        let expected: BTreeSet<String> = (0..threads).map(|n| format!("hash-{n}")).collect();
        assert_eq!(seen, expected, "--threads {threads}");
        hashes.push(std::fs::read(&torrent).unwrap());
    }
    // The same bytes, whatever the number of threads (no date in either).
    assert_eq!(hashes[0], hashes[1]);
}

#[test]
fn info_text_and_every_json_key_match_the_readers_on_a_mktorrent_torrent() {
    require_tool("mktorrent");
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("my share");
    std::fs::create_dir_all(share.join("docs")).unwrap();
    make_seed("100000", &share.join("a.bin"));
    make_seed("1234", &share.join("docs/readme.txt"));
    let torrent = dir.path().join("t.torrent");
    // Written by another tool, with every field peer info reports.
    run_ok(
        Command::new("mktorrent")
            .args(["-l", "15", "-p", "-s", "SRC-9", "-c", "a comment"])
            .args([
                "-a",
                "http://127.0.0.1:1/announce,http://127.0.0.2:1/announce",
            ])
            .args(["-a", "udp://127.0.0.3:1", "-w", "http://127.0.0.1:2/", "-o"])
            .arg(&torrent)
            .arg(&share),
    );
    let show = transmission_show(&torrent);
    let aria = aria2_show(&torrent);
    let json = peer_info(&torrent);

    let keys: BTreeSet<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected_keys = [
        "comment",
        "created_by",
        "creation_date",
        "files",
        "info_hash",
        "magnet",
        "multi_file",
        "name",
        "piece_length",
        "pieces",
        "private",
        "source",
        "total_length",
        "trackers",
        "web_seeds",
    ];
    assert_eq!(keys, expected_keys.into_iter().collect(), "{json}");
    let hash = field(&show, "Hash:").unwrap();
    assert_eq!(json["info_hash"], hash);
    assert_eq!(field(&aria, "Info Hash:").unwrap(), hash);
    assert_eq!(json["name"], field(&aria, "Name:").unwrap());
    assert_eq!(json["name"], "my share");
    assert_eq!(json["piece_length"], 32768); // -l 15
    assert_eq!(field(&aria, "Piece Length:").unwrap(), "32KiB");
    assert_eq!(
        json["pieces"].to_string(),
        field(&show, "Piece Count:").unwrap()
    );
    assert_eq!(
        json["pieces"].to_string(),
        field(&aria, "The Number of Pieces:").unwrap()
    );
    let total = field(&aria, "Total Length:").unwrap();
    assert!(total.ends_with("(101,234)"), "{total}");
    assert_eq!(json["total_length"], 101_234);
    assert_eq!(field(&aria, "Mode:").unwrap(), "multi");
    assert_eq!(json["multi_file"], true);
    assert_eq!(field(&show, "Privacy:").unwrap(), "Private torrent");
    assert_eq!(json["private"], true);
    // No reader prints `source`: the test gave it to mktorrent.
    assert_eq!(json["source"], "SRC-9");
    assert_eq!(json["comment"], field(&aria, "Comment:").unwrap());
    assert_eq!(json["comment"], "a comment");
    let creator = field(&show, "Created by:").unwrap();
    assert_eq!(json["created_by"], creator);
    assert_eq!(field(&aria, "Created By:").unwrap(), creator);
    let date = json["creation_date"].as_i64().unwrap();
    let printed = run_ok(Command::new("date").args([
        "-u",
        "-d",
        &format!("@{date}"),
        "+%a, %d %b %Y %H:%M:%S GMT",
    ]));
    assert_eq!(field(&aria, "Creation Date:").unwrap(), printed.trim());
    assert_eq!(
        json["trackers"],
        serde_json::json!([
            ["http://127.0.0.1:1/announce", "http://127.0.0.2:1/announce"],
            ["udp://127.0.0.3:1"]
        ])
    );
    assert_eq!(
        aria2_list(&aria, "Announce:"),
        [
            "http://127.0.0.1:1/announce http://127.0.0.2:1/announce",
            "udp://127.0.0.3:1"
        ]
    );
    assert_eq!(
        json["web_seeds"],
        serde_json::json!(aria2_list(&aria, "URL List:"))
    );
    assert_eq!(
        json["web_seeds"],
        serde_json::json!(["http://127.0.0.1:2/"])
    );
    let files: Vec<(String, u64)> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["length"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(files, aria2_files(&aria));
    // aria2c writes the same magnet link, with the hash in capitals.
    let magnet = field(&aria, "Magnet URI:").unwrap();
    assert_eq!(
        json["magnet"],
        magnet.replace(&hash.to_uppercase(), &hash),
        "{magnet}"
    );

    // The text report: the lines transmission-show prints the same way are
    // the same; the rest carry the same values.
    let text = run_ok(peer().arg("info").arg(&torrent));
    let general = |text: &str| section(text, "GENERAL").join("\n");
    for label in [
        "Name:",
        "Hash:",
        "Created by:",
        "Comment:",
        "Piece Count:",
        "Privacy:",
    ] {
        let ours = field(&general(&text), label);
        assert!(ours.is_some(), "{label}\n{text}");
        assert_eq!(ours, field(&general(&show), label), "{label}\n{text}");
    }
    for heading in ["TRACKERS", "WEBSEEDS"] {
        assert_eq!(
            section(&text, heading),
            section(&show, heading),
            "{heading}\n{text}"
        );
    }
    let names = |text: &str| -> Vec<String> {
        section(text, "FILES")
            .iter()
            .filter_map(|l| l.trim().rsplit_once(" (").map(|(p, _)| p.to_owned()))
            .collect()
    };
    assert_eq!(names(&text), names(&show));
    assert_eq!(names(&text), ["my share/a.bin", "my share/docs/readme.txt"]);
    let rfc3339 =
        run_ok(Command::new("date").args(["-u", "-d", &format!("@{date}"), "+%Y-%m-%dT%H:%M:%SZ"]));
    assert_eq!(field(&text, "Created on:").unwrap(), rfc3339.trim());
    assert_eq!(field(&text, "Source:").unwrap(), "SRC-9");
    assert_eq!(
        field(&text, "Total Size:")
            .unwrap()
            .rsplit_once('(')
            .unwrap()
            .1,
        "101234 bytes)"
    );
    assert_eq!(field(&text, "Magnet:").unwrap(), json["magnet"]);
    assert!(text.starts_with(&format!("Name: my share\nFile: {}\n", torrent.display())));
}
