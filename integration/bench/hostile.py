#!/usr/bin/env python3
"""Hostile load for integration/bench/hostile-load.sh (issue 16), standard library only.

Every attack is well-formed but hostile, goes to a loopback address only, and
is bounded in count and in time; the source addresses are spread over
127.0.B.1-250 (B from --block on), so a per-address limit alone cannot shed it.

  idle HOST:PORT --count N --payload KIND     N connections, each sends a partial
                                              request and is held open
  half-open HOST:PORT --count N               N connections that complete TCP's
                                              handshake and send nothing
  storm HOST:PORT --seconds S                 connect and close, as fast as one core
                                              can, for S seconds (at most --max)
  flood HOST:PORT --sources N --seconds S     announces (HTTP and UDP, BEP 15) from N
                                              source addresses, one peer each per protocol

idle and half-open print one JSON line when their connections are open
({"ready": true, "open": ..., "failed": ...}), then hold them until SIGTERM or
--hold seconds, and print a last line counting those the server still held.
storm and flood print one JSON line with their counts when they stop (SIGTERM
or --seconds).
"""

import argparse
import json
import os
import resource
import signal
import socket
import struct
import sys
import time

PAYLOADS = {
    # A request head without the blank line that ends it.
    "http": b"GET / HTTP/1.1\r\nHost: x\r\n",
    # An announce whose query is cut short.
    "announce": b"GET /announce?info_hash=%42%42",
    # The first 4 of a BitTorrent handshake's 68 bytes.
    "bt": b"\x13Bit",
}

stop = False


def on_term(_signum, _frame):
    global stop
    stop = True


def raise_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def source(block, n):
    """The n-th source address, from 127.0.block.1, 250 per block."""
    return f"127.0.{block + n // 250}.{1 + n % 250}"


def connect(src, dest, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((src, 0))
        s.settimeout(timeout)
        s.connect(dest)
        return s
    except OSError:
        s.close()
        raise


def still_open(s):
    """Whether the server has not closed s (nothing to read yet)."""
    s.setblocking(False)
    try:
        return len(s.recv(1, socket.MSG_PEEK)) > 0
    except BlockingIOError:
        return True
    except OSError:
        return False


def hold(args, payload):
    """idle and half-open: open the connections, report, hold, report."""
    raise_fd_limit(args.count + 256)
    dest = (args.host, args.port)
    opened, failed = [], 0
    started = time.monotonic()
    for n in range(args.count):
        if stop or time.monotonic() - started > args.budget:
            failed += args.count - n
            break
        try:
            s = connect(source(args.block, n // args.per_source), dest, 1.0)
            if payload:
                s.sendall(payload)
            opened.append(s)
        except OSError:
            failed += 1
    print(json.dumps({"ready": True, "open": len(opened), "failed": failed,
                      "seconds": round(time.monotonic() - started, 3)}), flush=True)
    deadline = time.monotonic() + args.hold
    while not stop and time.monotonic() < deadline:
        time.sleep(0.05)
    held = sum(still_open(s) for s in opened)
    for s in opened:
        s.close()
    print(json.dumps({"held_at_end": held}), flush=True)


def storm(args):
    """Connections opened and closed as fast as this one process can."""
    dest = (args.host, args.port)
    started = time.monotonic()
    made = refused = 0
    n = 0
    while not stop and n < args.max and time.monotonic() - started < args.seconds:
        # A new source address every 1,000 connections: each address has its
        # own ephemeral ports, so TIME_WAIT never runs a source out of them.
        src = source(args.block, (n // 1000) % 2500)
        n += 1
        try:
            # A SYN dropped by a full accept queue would stall a blocking
            # connect for the kernel's 1 s retransmission; give up on it
            # sooner and go on.
            s = connect(src, dest, 0.1)
            s.close()
            made += 1
        except OSError:
            refused += 1
    took = time.monotonic() - started
    print(json.dumps({"connections": made, "failed": refused, "seconds": round(took, 3),
                      "per_second": round(made / took) if took else 0}), flush=True)


def quote(raw):
    return "".join(f"%{b:02x}" for b in raw)


def flood(args):
    """Announces from args.sources addresses: each address is one peer over
    HTTP and another over UDP, announcing again and again."""
    raise_fd_limit(args.sources + 256)
    dest = (args.host, args.port)
    udp_dest = (args.host, args.udp_port or args.port)
    info_hash = bytes([0x42]) * 20
    udps = []
    for n in range(args.sources):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((source(args.block, n), 0))
        u.connect(udp_dest)
        u.settimeout(1.0)
        udps.append([u, None])
    started = time.monotonic()
    counts = {"http_ok": 0, "http_failed": 0, "udp_ok": 0, "udp_failed": 0}
    sent = 0
    while not stop and sent < args.max and time.monotonic() - started < args.seconds:
        n = sent % args.sources
        sent += 1
        peer_id = b"-FL" + struct.pack(">Q", n).rjust(17, b"0")
        query = (f"info_hash={quote(info_hash)}&peer_id={quote(peer_id)}&port={6881 + n % 1000}"
                 "&uploaded=0&downloaded=0&left=1000&compact=1&event=started")
        try:
            s = connect(source(args.block, n), dest, 2.0)
            s.sendall(f"GET /announce?{query} HTTP/1.0\r\n\r\n".encode())
            reply = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
            s.close()
            counts["http_ok" if b"8:interval" in reply else "http_failed"] += 1
        except OSError:
            counts["http_failed"] += 1
        u = udps[n]
        try:
            if u[1] is None:
                u[0].send(struct.pack(">QII", 0x41727101980, 0, n))
                action, _, cid = struct.unpack(">IIQ", u[0].recv(16))
                u[1] = cid if action == 0 else None
            udp_peer = b"-FU" + struct.pack(">Q", n).rjust(17, b"0")
            packet = struct.pack(">QII20s20sQQQIIIiH", u[1], 1, n, info_hash, udp_peer,
                                 0, 1000, 0, 2, 0, 0, -1, 6881 + n % 1000)
            u[0].send(packet)
            reply = u[0].recv(2048)
            counts["udp_ok" if struct.unpack(">I", reply[:4])[0] == 1 else "udp_failed"] += 1
        except (OSError, TypeError, struct.error):
            counts["udp_failed"] += 1
    took = time.monotonic() - started
    for u, _ in udps:
        u.close()
    counts.update(seconds=round(took, 3), per_second=round(sent / took) if took else 0)
    print(json.dumps(counts), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("attack", choices=["idle", "half-open", "storm", "flood"])
    parser.add_argument("target", help="HOST:PORT, a loopback address")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--payload", choices=sorted(PAYLOADS), default="http")
    parser.add_argument("--per-source", type=int, default=2,
                        help="idle and half-open: connections from each source address")
    parser.add_argument("--block", type=int, default=1,
                        help="source addresses start at 127.0.BLOCK.1")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="idle and half-open: seconds allowed for opening")
    parser.add_argument("--hold", type=float, default=120.0,
                        help="idle and half-open: seconds to hold at most")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="storm and flood: seconds to run at most")
    parser.add_argument("--max", type=int, default=2_000_000,
                        help="storm and flood: connections or announces at most")
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--udp-port", type=int, default=0,
                        help="flood: the tracker's UDP port (default: the TCP port)")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    if not host.startswith("127."):
        sys.exit("hostile.py: loopback targets only (127.x.y.z)")
    args.host, args.port = host, int(port)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if args.attack == "idle":
        hold(args, PAYLOADS[args.payload])
    elif args.attack == "half-open":
        hold(args, b"")
    elif args.attack == "storm":
        storm(args)
    else:
        flood(args)


if __name__ == "__main__":
    main()
