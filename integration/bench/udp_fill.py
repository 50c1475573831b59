#!/usr/bin/env python3
"""Fills a UDP tracker (BEP 15) with distinct peers, for the memory figure of
integration/bench/tracker-udp.sh; standard library only, loopback only.

  udp_fill.py HOST:PORT --swarms S --peers-per-swarm P [--hashes FILE]
  udp_fill.py HOST:PORT --wait-ready SECONDS [--hashes FILE]
                                        (until it serves an announce of the first swarm)

Announces S x P peers: swarm i's info-hash is line i of FILE (hex), else
SHA-1 of "swarm i"; peer j of a swarm announces port j + 1 (P <= 65,535) from
the one source address, left 1 (a leecher), num_want 1, so every announce is
a new (address, port) for the tracker to store. Announces go out in batches
of 256 and the replies are read before the next batch (a lost one is
counted, not resent), with a fresh connection id every 30 s. Then it scrapes
every swarm (50 hashes a packet: aquatic answers at most 70) and prints one JSON line: announces sent,
replies, and the peers the tracker says it stores (seeders + leechers).
"""

import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import time

PROTOCOL_ID = 0x41727101980
BATCH = 256


def connect(sock):
    tid = int.from_bytes(os.urandom(4), "big")
    sock.send(struct.pack(">QII", PROTOCOL_ID, 0, tid))
    while True:
        reply = sock.recv(2048)
        if len(reply) >= 16 and struct.unpack(">II", reply[:8]) == (0, tid):
            return struct.unpack(">Q", reply[8:16])[0]


def wait_ready(target, seconds, probe):
    """Until the tracker answers an announce for `probe` (at most `seconds`),
    then takes that peer out again."""
    host, port = target.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, int(port)))
    sock.settimeout(0.2)
    peer_id = b"-FL0001-" + os.urandom(12)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn = connect(sock)
            for event in (2, 3):  # started, then stopped
                sock.send(struct.pack(">QII20s20sQQQIIIiH", conn, 1, event, probe, peer_id,
                                      0, 1, 0, event, 0, 0, 1, 65535))
                reply = sock.recv(2048)
                if struct.unpack(">II", reply[:8]) != (1, event):
                    raise socket.timeout  # refused (not served yet)
            return
        except (socket.timeout, ConnectionRefusedError):
            time.sleep(0.1)
    sys.exit(f"udp_fill.py: {target} did not serve an announce within {seconds} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--swarms", type=int, default=100)
    parser.add_argument("--peers-per-swarm", type=int, default=10_000)
    parser.add_argument("--hashes")
    parser.add_argument("--wait-ready", type=float, metavar="SECONDS",
                        help="only wait until the tracker serves an announce, then exit")
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)
    if not host.startswith("127."):
        sys.exit("udp_fill.py: loopback targets only")
    if not 0 < args.peers_per_swarm <= 65535:
        sys.exit("udp_fill.py: --peers-per-swarm must be 1..65535")
    if args.hashes:
        with open(args.hashes) as f:
            hashes = [bytes.fromhex(next(f).strip()) for _ in range(args.swarms)]
    else:
        hashes = [hashlib.sha1(f"swarm {i}".encode()).digest() for i in range(args.swarms)]
    if args.wait_ready is not None:
        wait_ready(args.target, args.wait_ready, hashes[0])
        return

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.connect((host, int(port)))
    sock.settimeout(2)
    conn = connect(sock)
    connected_at = time.monotonic()
    peer_id = b"-FL0001-" + os.urandom(12)
    sent = replies = 0
    jobs = [(h, j + 1) for j in range(args.peers_per_swarm) for h in hashes]
    sock.settimeout(0.5)
    for start in range(0, len(jobs), BATCH):
        if time.monotonic() - connected_at > 30:
            sock.settimeout(2)
            conn = connect(sock)
            connected_at = time.monotonic()
            sock.settimeout(0.5)
        batch = jobs[start:start + BATCH]
        for n, (info_hash, peer_port) in enumerate(batch):
            packet = struct.pack(">QII20s20sQQQIIIiH", conn, 1, n, info_hash, peer_id,
                                 0, 1, 0, 0, 0, 0, 1, peer_port)
            sock.send(packet)
            sent += 1
        for _ in batch:
            try:
                reply = sock.recv(2048)
            except socket.timeout:
                break
            if len(reply) >= 20 and struct.unpack(">I", reply[:4])[0] == 1:
                replies += 1

    sock.settimeout(2)
    conn = connect(sock)
    stored = 0
    for start in range(0, len(hashes), 50):
        chunk = hashes[start:start + 50]
        sock.send(struct.pack(">QII", conn, 2, start) + b"".join(chunk))
        reply = sock.recv(65536)
        if len(reply) < 8 + 12 * len(chunk) or struct.unpack(">I", reply[:4])[0] != 2:
            sys.exit(f"udp_fill.py: bad scrape reply ({len(reply)} bytes)")
        for k in range(len(chunk)):
            seeders, _completed, leechers = struct.unpack(">III", reply[8 + 12 * k:20 + 12 * k])
            stored += seeders + leechers
    print(json.dumps({"announces": sent, "replies": replies, "stored": stored}))


if __name__ == "__main__":
    main()
