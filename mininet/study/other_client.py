"""Runs another BitTorrent client as a study host, so the harness sees it as it
sees `peer`: one JSON line `{"event":"complete","seconds":…,"bytes":…,"uploaded":…}`
on stdout when the download is done (then it keeps seeding unless
`--leave`), and `{"event":"stopped","uploaded":…,"seconds":…}` when SIGTERM
stops it. Run with Debian's python3 on the host itself (a Mininet host's
namespace, or loopback):

    other_client.py libtorrent|aria2|transmission seed|download TORRENT --dir D --ip IP --port P
                    [--up BYTES_PER_S] [--down BYTES_PER_S] [--size BYTES] [--leave] [--local]

libtorrent (python3-libtorrent) at its defaults except: no DHT, local peer
discovery, UPnP or NAT-PMP (the tracker is the only source of peers, as for
ours); no uTP (our peers speak TCP only, so every pair uses the same
transport); with `--local` (every host on 127.0.0.1) several connections
per IP allowed and rate limits applied to local peers too, payload only
(as `peer`'s token buckets count). Rates are bytes per second.

aria2c at its defaults except: no DHT (it would also open UDP trackers) and
no local peer discovery; `--seed-ratio=0.0` so that it seeds until stopped
(its default stops at ratio 1.0); no file preallocation (faster start, same
transfer); its JSON-RPC on loopback, which this wrapper polls for progress.

Transmission (transmission-cli 3.00) at its defaults except: no DHT, local
peer discovery, peer exchange or port mapping (the tracker is the only
source of peers); no uTP; its settings in a fresh temporary folder each run.
Mininet only: it ignores peers on 127.0.0.0/8, so on one machine it would
meet nobody. Its status line, read every 200 ms, says when the download is
complete, and its share ratio (two decimals) gives what it uploaded: the
ratio times the file's size, so `uploaded` is known to 1% of the file.
"""

import argparse
import json
import re
import signal
import sys
import time

POLL = 0.05


def line(**fields) -> None:
    print(json.dumps(fields), flush=True)


def run_libtorrent(args) -> int:
    import libtorrent as lt

    settings = {
        "listen_interfaces": f"{args.ip}:{args.port}",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "upload_rate_limit": args.up,
        "download_rate_limit": args.down,
    }
    if args.local:
        settings.update(allow_multiple_connections_per_ip=True, ignore_limits_on_local_network=False,
                        rate_limit_ip_overhead=False)
    session = lt.session(settings)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.dir
    handle = session.add_torrent(params)
    started = time.monotonic()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    done = args.role == "seed"
    while not stop:
        status = handle.status()
        if not done and status.is_seeding:
            done = True
            line(event="complete", seconds=time.monotonic() - started, bytes=status.total_wanted,
                 size=status.total_wanted, uploaded=status.all_time_upload)
            if args.leave:
                break
        time.sleep(POLL)
    status = handle.status()
    line(event="stopped", uploaded=status.all_time_upload, seconds=time.monotonic() - started)
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rpc(port: int, method: str, params=()):
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": "study", "method": method, "params": list(params)}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/jsonrpc", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=2.0) as reply:
        return json.loads(reply.read())["result"]


def run_aria2(args) -> int:
    import subprocess

    rpc = _free_port()
    argv = ["aria2c", f"--dir={args.dir}", f"--listen-port={args.port}", "--enable-dht=false", "--enable-dht6=false",
            "--bt-enable-lpd=false", "--seed-ratio=0.0", "--file-allocation=none", "--enable-rpc=true",
            f"--rpc-listen-port={rpc}", "--rpc-listen-all=false", "--console-log-level=warn", "--summary-interval=0",
            "--check-integrity=true", f"--max-overall-upload-limit={args.up}",
            f"--max-overall-download-limit={args.down}", args.torrent]
    started = time.monotonic()
    aria2 = subprocess.Popen(argv, stdout=sys.stderr, stdin=subprocess.DEVNULL)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    done = args.role == "seed"
    uploaded = 0
    while not stop and aria2.poll() is None:
        try:
            active = _rpc(rpc, "aria2.tellActive", [["completedLength", "totalLength", "uploadLength"]])
        except (OSError, ValueError, KeyError):
            active = []  # not listening yet
        for item in active[:1]:
            uploaded = int(item["uploadLength"])
            total = int(item["totalLength"])
            if not done and total and int(item["completedLength"]) == total:
                done = True
                line(event="complete", seconds=time.monotonic() - started, bytes=total, size=total, uploaded=uploaded)
        if done and args.leave and args.role == "download":
            break
        time.sleep(POLL)
    try:
        _rpc(rpc, "aria2.forceShutdown")
    except (OSError, ValueError, KeyError):
        aria2.terminate()
    try:
        aria2.wait(timeout=10)
    except subprocess.TimeoutExpired:
        aria2.kill()
    line(event="stopped", uploaded=uploaded, seconds=time.monotonic() - started)
    return 0


TRANSMISSION_STATUS = re.compile(r"^(Progress: [0-9.]+%|Seeding).*\[([0-9.]+|None|Inf)\]\s*$")


def _transmission_uploaded(ratio: str, size: int) -> int:
    """What Transmission uploaded, from its ratio (uploaded over what it
    downloaded, or over what it has when it downloaded nothing)."""
    try:
        return round(float(ratio) * size)
    except ValueError:
        return 0


def run_transmission(args) -> int:
    import os
    import subprocess

    if args.local:
        raise SystemExit("transmission: Mininet only (it ignores peers on 127.0.0.0/8)")
    import shutil
    import tempfile

    size = args.size
    # A fresh settings folder each run: Transmission keeps a torrent's
    # uploaded total in it, and the ratio read below must count this run only.
    config = tempfile.mkdtemp(prefix="study-transmission-")
    os.makedirs(args.dir, exist_ok=True)
    settings = {"dht-enabled": False, "lpd-enabled": False, "pex-enabled": False, "utp-enabled": False,
                "port-forwarding-enabled": False, "rpc-enabled": False, "peer-port": args.port,
                "speed-limit-up-enabled": bool(args.up), "speed-limit-up": max(1, args.up // 1000),
                "speed-limit-down-enabled": bool(args.down), "speed-limit-down": max(1, args.down // 1000)}
    with open(os.path.join(config, "settings.json"), "w") as out:
        json.dump(settings, out)
    argv = ["transmission-cli", "-g", config, "-w", args.dir, "-p", str(args.port), "-M", args.torrent]
    started = time.monotonic()
    tr = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    os.set_blocking(tr.stdout.fileno(), False)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    done = args.role == "seed"
    uploaded = 0
    pending = b""
    while not stop and tr.poll() is None:
        chunk = tr.stdout.read() or b""
        pending += chunk
        *lines, pending = re.split(rb"[\r\n]", pending)
        for raw in lines:
            match = TRANSMISSION_STATUS.match(raw.decode("utf-8", "replace").strip())
            if not match:
                continue
            uploaded = _transmission_uploaded(match.group(2), size)
            if not done and match.group(1) == "Seeding":
                done = True
                line(event="complete", seconds=time.monotonic() - started, bytes=size, size=size, uploaded=uploaded)
        if done and args.leave and args.role == "download":
            break
        time.sleep(POLL)
    if tr.poll() is None:
        tr.send_signal(signal.SIGINT)  # how transmission-cli stops cleanly
        try:
            tr.wait(timeout=10)
        except subprocess.TimeoutExpired:
            tr.kill()
            tr.wait()
    shutil.rmtree(config, ignore_errors=True)
    line(event="stopped", uploaded=uploaded, seconds=time.monotonic() - started)
    return 0


RUNNERS = {"libtorrent": run_libtorrent, "aria2": run_aria2, "transmission": run_transmission}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("client", choices=list(RUNNERS))
    parser.add_argument("role", choices=["seed", "download"])
    parser.add_argument("torrent")
    parser.add_argument("--dir", required=True, help="the data (seed) or where to download it")
    parser.add_argument("--ip", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--up", type=int, default=0, help="upload limit, bytes/s (0: none)")
    parser.add_argument("--down", type=int, default=0, help="download limit, bytes/s (0: none)")
    parser.add_argument("--size", type=int, default=0, help="the file's size in bytes (transmission: its uploaded "
                                                               "bytes come from its ratio)")
    parser.add_argument("--leave", action="store_true", help="exit once the download is complete")
    parser.add_argument("--local", action="store_true", help="every host on 127.0.0.1 (see the module docs)")
    args = parser.parse_args(argv)
    return RUNNERS[args.client](args)


if __name__ == "__main__":
    sys.exit(main())
