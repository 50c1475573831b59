//! Third-party BitTorrent clients from Debian's packages, set up for tests on
//! loopback: DHT, local peer discovery, peer exchange, uTP and port mapping
//! off, so peers meet only through the tracker and speak plain TCP. Their
//! encryption settings are left at the clients' defaults (Transmission
//! prefers encrypted connections, aria2c tries encryption first when it
//! dials): our peer has no MSE, so every transfer with them goes through
//! their fall-back to a plaintext handshake. One exception: [`aria2_udp`]
//! keeps aria2c's DHT socket open (with an empty table), as its UDP tracker
//! client needs it.

use std::{
    ffi::OsStr,
    path::Path,
    process::{Command, Stdio},
};

use crate::{net::free_port, netns::NetnsPair, require_tool, KillOnDrop};

/// transmission-cli on `torrent`, with its data in `data_dir`: it seeds what
/// it has and downloads what it lacks, and keeps running until killed.
///
/// Facts a test must plan around: Transmission ignores loopback addresses
/// that come from a tracker (so our peer has to dial it; it accepts incoming
/// loopback connections), and it unchokes only on its 10-second choke round.
pub fn transmission(config_dir: &Path, data_dir: &Path, torrent: &Path) -> KillOnDrop {
    transmission_in(None, config_dir, data_dir, torrent)
}

/// [`transmission`], inside network namespace `netns` when given (where it
/// dials the peers its tracker names, and listens on port 51413). `source`
/// is a `.torrent` file or a magnet link; with a magnet, Transmission saves
/// the torrent it builds from the fetched metadata in `config_dir/torrents/`.
pub fn transmission_in(
    netns: Option<&str>,
    config_dir: &Path,
    data_dir: &Path,
    source: impl AsRef<OsStr>,
) -> KillOnDrop {
    require_tool("transmission-cli");
    let port = match netns {
        Some(_) => 51413, // a namespace of its own: no other listener there
        None => free_port(),
    };
    std::fs::create_dir_all(config_dir).unwrap();
    std::fs::create_dir_all(data_dir).unwrap();
    // No "encryption" key and no -e flag: its default, 1, prefers encryption.
    let settings = serde_json::json!({
        "dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
        "port-forwarding-enabled": false, "peer-port": port,
        "rpc-enabled": false, "speed-limit-up-enabled": false, "speed-limit-down-enabled": false,
    });
    std::fs::write(config_dir.join("settings.json"), settings.to_string()).unwrap();
    let mut command = match netns {
        Some(ns) => NetnsPair::command(ns, "transmission-cli"),
        None => Command::new("transmission-cli"),
    };
    let child = command
        .arg("-g")
        .arg(config_dir)
        .arg("-w")
        .arg(data_dir)
        .args(["-p", &port.to_string(), "-M"])
        .arg(source)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("transmission-cli starts");
    KillOnDrop(child)
}

/// aria2c on `torrent` in `dir`: with the data there it checks and seeds
/// (for up to ten minutes); without, it downloads, seeds for `seed_minutes`,
/// and exits. Its DHT is off, and with it UDP trackers (see [`aria2_udp`]).
pub fn aria2(dir: &Path, torrent: &Path, seed_minutes: &str) -> KillOnDrop {
    let mut command = aria2_command(dir, seed_minutes);
    command.args(["--enable-dht=false", "--enable-dht6=false"]);
    spawn_aria2(command, torrent)
}

/// [`aria2`] with `udp://` trackers working. aria2c 1.36 sends BEP 15
/// packets from its DHT socket and has no UDP tracker client without one:
/// with `--enable-dht=false` a `udp://` announce fails with "udp is not
/// supported yet". So the IPv4 DHT stays on (its default), on a port of its
/// own, with a fresh routing table file in `dir`'s parent and no entry
/// point: an empty table sends no DHT query anywhere, and peers still come
/// from the tracker alone. aria2c logs at info level to `log`, where each
/// UDP tracker exchange is a `UDPT sent` / `UDPT received` line.
pub fn aria2_udp(dir: &Path, torrent: &Path, seed_minutes: &str, log: &Path) -> KillOnDrop {
    let dht_file = dir.with_extension("dht.dat");
    let _ = std::fs::remove_file(&dht_file);
    let mut command = aria2_command(dir, seed_minutes);
    command
        .args(["--enable-dht=true", "--enable-dht6=false"])
        .arg(format!("--dht-listen-port={}", free_port()))
        .arg(format!("--dht-file-path={}", dht_file.display()))
        .arg(format!("--log={}", log.display()))
        .arg("--log-level=info");
    spawn_aria2(command, torrent)
}

/// aria2c fetching `source` (a magnet link) with peers from the DHT: its
/// IPv4 DHT on a port of its own, a fresh routing table file beside `dir`,
/// `entry_point` (HOST:PORT) its only way in; no seeding afterwards, so it
/// exits once the download is complete.
pub fn aria2_dht(dir: &Path, source: &str, entry_point: &str) -> KillOnDrop {
    let dht_file = dir.with_extension("dht.dat");
    let _ = std::fs::remove_file(&dht_file);
    let mut command = aria2_command(dir, "0");
    command
        .args(["--enable-dht=true", "--enable-dht6=false"])
        .arg(format!("--dht-entry-point={entry_point}"))
        .arg(format!("--dht-listen-port={}", free_port()))
        .arg(format!("--dht-file-path={}", dht_file.display()));
    let child = command
        .arg(source)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aria2c starts");
    KillOnDrop(child)
}

fn aria2_command(dir: &Path, seed_minutes: &str) -> Command {
    require_tool("aria2c");
    let mut command = Command::new("aria2c");
    command
        .arg(format!("--dir={}", dir.display()))
        .arg(format!("--seed-time={seed_minutes}"))
        // No share-ratio limit (aria2c's default, 1.0, can end seeding early):
        // only the seed time counts.
        .arg("--seed-ratio=0.0")
        .args(["--check-integrity=true", "--bt-enable-lpd=false"])
        .args([
            "--enable-peer-exchange=false",
            "--summary-interval=0",
            "--console-log-level=warn",
        ])
        .args(["--bt-stop-timeout=120", "--file-allocation=none"])
        .arg(format!("--listen-port={}", free_port()));
    command
}

fn spawn_aria2(mut command: Command, torrent: &Path) -> KillOnDrop {
    let child = command
        .arg(torrent)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("aria2c starts");
    KillOnDrop(child)
}

/// python3-libtorrent through `integration/lt_peer.py` (see its docstring
/// for the modes, the settings it changes and the environment it reads):
/// its JSON lines arrive on the returned process's channel, the first one
/// saying its port.
pub fn libtorrent(
    args: &[&std::ffi::OsStr],
    envs: &[(&str, &str)],
) -> (crate::peers::PeerProcess, u16) {
    libtorrent_script("integration/lt_peer.py", args, envs)
}

/// python3-libtorrent as a DHT node, seeder or magnet leecher through
/// `integration/lt_dht.py` (see its docstring for the modes, the JSON lines
/// and the settings it changes); returns the process and its port (TCP and
/// DHT alike).
pub fn libtorrent_dht(args: &[&std::ffi::OsStr]) -> (crate::peers::PeerProcess, u16) {
    libtorrent_script("integration/lt_dht.py", args, &[])
}

/// Runs one of our python3-libtorrent scripts, whose first JSON line is
/// `{"event": "listening", "port": P}`.
fn libtorrent_script(
    script: &str,
    args: &[&std::ffi::OsStr],
    envs: &[(&str, &str)],
) -> (crate::peers::PeerProcess, u16) {
    let found = Command::new("/usr/bin/python3")
        .args(["-c", "import libtorrent"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "python3-libtorrent is not installed: run integration/install-deps.sh (./test.sh does it)"
    );
    let mut process = crate::peers::PeerProcess::start(
        Command::new("/usr/bin/python3")
            .arg(crate::repo_root().join(script))
            .args(args)
            .envs(envs.iter().copied()),
    );
    let listening = process.json_line(std::time::Duration::from_secs(20));
    assert_eq!(listening["event"], "listening", "{listening}");
    let port = listening["port"].as_u64().expect("a port") as u16;
    (process, port)
}
