#!/usr/bin/python3
"""python3-libtorrent (Debian's) as a peer in the end-to-end tests.

Usage:
  lt_peer.py seed TORRENT DIR            seeds TORRENT from DIR
  lt_peer.py download TORRENT DIR [HOST:PORT]
                                          downloads TORRENT into DIR
  lt_peer.py magnet LINK DIR [HOST:PORT]  fetches the metadata and the data of
                                          a magnet link, dialling HOST:PORT
                                          too when given

It listens on an OS-chosen port of 127.0.0.1 and prints JSON lines on stdout:
{"event": "listening", "port": P} first, then for `magnet`
{"event": "metadata", "seconds": S, "info_hash": H} once the info dictionary
is verified and {"event": "complete", "seconds": S} once every piece is; for
`seed`, {"event": "seeding"} once the data is checked. Then it runs until
SIGTERM, and stops by itself after 5 minutes at most. LT_DOWNLOAD_RATE
(bytes/s) limits its download rate, for tests that need it to stay a leecher.

Settings changed from libtorrent's defaults, and why: it listens on loopback
only (the tests' network); DHT, local peer discovery, UPnP and NAT-PMP are off
(no other way to meet peers than the ones the test gives); uTP is off (our
peer speaks TCP); several connections per IP are allowed (every peer is
127.0.0.1). Encryption, peer exchange and the extension protocol stay at
their defaults.
"""

import json
import os
import signal
import sys
import time

import libtorrent as lt

LIMIT_SECONDS = 300


def say(**fields):
    print(json.dumps(fields), flush=True)


def main():
    mode, what, directory = sys.argv[1], sys.argv[2], sys.argv[3]
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
    }
    session = lt.session(settings)
    started = time.monotonic()
    if mode in ("seed", "download"):
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(what)
    else:
        params = lt.parse_magnet_uri(what)
    params.save_path = directory
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    handle = session.add_torrent(params)
    # A torrent's own limit, as the session's exempts loopback peers.
    handle.set_download_limit(int(os.environ.get("LT_DOWNLOAD_RATE", "0")) or -1)
    if mode == "seed":
        handle.force_recheck()
    say(event="listening", port=session.listen_port())
    if len(sys.argv) > 4:
        host, port = sys.argv[4].rsplit(":", 1)
        handle.connect_peer((host, int(port)))

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    said_metadata = said_done = False
    while not stop["now"] and time.monotonic() - started < LIMIT_SECONDS:
        session.pop_alerts()
        status = handle.status()
        seconds = time.monotonic() - started
        if mode == "magnet" and not said_metadata and status.has_metadata:
            said_metadata = True
            say(event="metadata", seconds=seconds, info_hash=str(handle.info_hash()))
        if not said_done and status.is_seeding and status.state == lt.torrent_status.seeding:
            said_done = True
            say(event="seeding" if mode == "seed" else "complete", seconds=seconds)
        time.sleep(0.01)
    return 0


if __name__ == "__main__":
    sys.exit(main())
