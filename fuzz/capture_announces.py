#!/usr/bin/env python3
"""Captures the announce (and scrape) queries real clients send, as seeds for
the tracker_query fuzz target.

A tiny HTTP server on 127.0.0.1 (a free port) logs each raw request line and
answers with a bencoded failure. A small torrent announcing to it is made
with `target/release/peer create`; transmission-cli and aria2c are run on it
one after the other, each asked to stop (SIGTERM, so it may send its
`event=stopped`) once its `event=started` announce arrives, killed if it
lingers, and bounded by a timeout either way. (Transmission 3.00 first sends
a `stopped` left over from adding the torrent paused, and retries 20 s after
the failure reply with `started`.) Each query string is written to
fuzz/seeds/tracker_query/<client>-<n>.

Run from anywhere: python3 fuzz/capture_announces.py
(needs target/release/peer: `nice -n 19 cargo build --release --bins`).
"""

import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds", "tracker_query")
PEER = os.path.join(ROOT, "target", "release", "peer")
STARTED_TIMEOUT = 60  # seconds a client gets to send its event=started announce
LINGER = 5  # seconds a client gets after SIGTERM (for event=stopped)

STARTED = time.monotonic()
requests = []  # (path, query) in arrival order
arrived = threading.Condition()


class Tracker(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path, _, query = self.path.partition("?")
        print(f"captured at {time.monotonic() - STARTED:.1f} s: {self.requestline}", file=sys.stderr)
        with arrived:
            requests.append((path, query))
            arrived.notify_all()
        body = b"d14:failure reason18:capture only, byee"
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client was stopped while we answered

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_client(name, argv):
    with arrived:
        start = len(requests)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with arrived:
            arrived.wait_for(
                lambda: any("event=started" in q for _, q in requests[start:]),
                STARTED_TIMEOUT,
            )
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(LINGER)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with arrived:
        captured = requests[start:]
    if not captured:
        print(f"{name}: no request within {STARTED_TIMEOUT} s", file=sys.stderr)
    os.makedirs(SEEDS, exist_ok=True)
    for n, (path, query) in enumerate(captured, 1):
        kind = "scrape" if path.endswith("/scrape") else "announce"
        with open(os.path.join(SEEDS, f"{name}-{kind}-{n}"), "w") as f:
            f.write(query)
    return len(captured)


def main():
    if not os.access(PEER, os.X_OK):
        sys.exit(f"{PEER} is missing: run `nice -n 19 cargo build --release --bins`")
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Tracker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="capture-announces-")
    try:
        data = os.path.join(work, "capture.bin")
        with open(data, "wb") as f:
            f.write(os.urandom(1 << 20))
        torrent = os.path.join(work, "capture.torrent")
        subprocess.run(
            [PEER, "create", data, "-a", f"http://127.0.0.1:{port}/announce", "-o", torrent],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for client in ("transmission", "aria2"):
            os.makedirs(os.path.join(work, client))
        # Loopback only: no DHT, local discovery, PEX or port mapping.
        config = os.path.join(work, "transmission", "config")
        os.makedirs(config)
        with open(os.path.join(config, "settings.json"), "w") as f:
            f.write(
                '{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false,'
                ' "utp-enabled": false, "port-forwarding-enabled": false, "rpc-enabled": false}'
            )
        total = run_client(
            "transmission",
            [
                "transmission-cli",
                "-g", config,
                "-w", os.path.join(work, "transmission"),
                "-p", str(free_port()),
                torrent,
            ],
        )
        total += run_client(
            "aria2",
            [
                "aria2c",
                "--dir", os.path.join(work, "aria2"),
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--listen-port", str(free_port()),
                "--seed-time=0",
                "--no-conf",
                torrent,
            ],
        )
        print(f"{total} queries written to {SEEDS}", file=sys.stderr)
    finally:
        server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
