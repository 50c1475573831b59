#!/usr/bin/python3
"""A minimal python3-libtorrent client for the benchmarks.

Usage: lt_client.py seed|download TORRENT DIR PORT

Configured for a fair race: plain TCP only (uTP off), no DHT, LSD, PEX, UPnP
or NAT-PMP, no rate limits, several connections per IP allowed (every peer
is 127.0.0.1). `download` exits 0 once the torrent is complete and prints one
JSON line; `seed` runs until SIGTERM. Both stop after 10 minutes at most.
"""

import json
import signal
import sys
import time

import libtorrent as lt

LIMIT_SECONDS = 600


def main():
    mode, torrent, directory, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    settings = {
        "listen_interfaces": f"127.0.0.1:{port}",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "alert_mask": 0,
    }
    session = lt.session(settings)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = directory
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    handle = session.add_torrent(params)
    # No peer exchange: the tracker is the only way peers meet.
    handle.set_flags(lt.torrent_flags.disable_pex)

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    started = time.monotonic()
    while not stop["now"] and time.monotonic() - started < LIMIT_SECONDS:
        status = handle.status()
        if mode == "download" and status.is_seeding:
            seconds = time.monotonic() - started
            print(json.dumps({"event": "complete", "seconds": seconds, "bytes": status.total_done}), flush=True)
            return 0
        time.sleep(0.02)
    return 0 if mode == "seed" else 1


if __name__ == "__main__":
    sys.exit(main())
