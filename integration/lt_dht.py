#!/usr/bin/python3
"""python3-libtorrent (Debian's) as a DHT node (BEP 5) in the end-to-end tests.

Usage:
  lt_dht.py node [--bootstrap HOST:PORT ...]
                      a DHT node only, no torrent
  lt_dht.py seed TORRENT DIR [--bootstrap HOST:PORT ...]
                      seeds TORRENT (a trackerless .torrent) from DIR and
                      announces it into the DHT
  lt_dht.py magnet LINK DIR [--bootstrap HOST:PORT ...]
                      fetches the metadata and the data of a trackerless magnet
                      link into DIR, with peers from the DHT only

Each --bootstrap node is added with session.add_dht_node(); there is no other
bootstrap node. It listens on 127.0.0.1 only, on one free port that it picks
itself for TCP and UDP (the DHT and the peers share it), and prints JSON lines
on stdout, flushed, with "seconds" counted from its start:
  {"event": "listening", "port": P}                     first
  {"event": "node_id", "id": HEX}                        once the DHT runs
  {"event": "dht", "nodes": N}                           the routing table's
      node count (dht_stats_alert), checked every 0.5 s, printed when it changes
  {"event": "dht_get_peers", "info_hash": H}             a get_peers query came in
  {"event": "dht_announce", "info_hash": H, "ip": A, "port": P}
                                                         an announce_peer came in
  {"event": "announce", "seconds": S}                    it forced a DHT announce
      of its torrent (get_peers, then announce_peer to the closest nodes)
  {"event": "dht_reply", "seconds": S, "num_peers": N}   a DHT lookup of its
      torrent ended with N > 0 peers (dht_reply_alert; none when it found none,
      often two per lookup)
  {"event": "peer_connect", "seconds": S, "peer": "IP:PORT"}
      first connection with that peer endpoint, either direction (for an
      incoming one the port is the remote's ephemeral port)
  seed:   {"event": "seeding", "seconds": S}             the data is checked
  magnet: {"event": "first_peer", "seconds": S, "via": V} the torrent first knows
      a peer; V is "dht_reply" (a lookup returned peers), "peer_list" (the
      torrent's peer list is not empty) or "peer_info" (a peer connection)
          {"event": "metadata", "seconds": S, "info_hash": H} info dict verified
          {"event": "complete", "seconds": S}            every piece verified
Then it runs until SIGTERM, and stops by itself after 5 minutes at most.

The torrent's DHT announce: libtorrent looks its torrent up (get_peers, then
announce_peer to the closest nodes) when the torrent starts, but a lookup
started before a bootstrap node has answered reaches nobody, and libtorrent's
own next one came about 4 s later here. So this script forces one announce
(handle.force_dht_announce()) as soon as the routing table has a node (for
`seed`, once the data is also checked), then again every LT_DHT_REANNOUNCE
seconds (float, default 5) until the torrent knows a peer (magnet) or for the
whole run (seed), so that a magnet started before the seed announced, or a
node that joined later, is not left waiting. LT_DHT_REANNOUNCE=0 forces the
first announce only.

Settings changed from libtorrent's defaults, and why:
- listen_interfaces "127.0.0.1:PORT" with a port picked here (a socket bound to
  127.0.0.1:0 for TCP, the same port for UDP, both closed before starting):
  loopback only (the tests' network), and an explicit address, as with
  0.0.0.0 the loopback socket is marked local and no DHT runs on it.
- enable_dht on; dht_bootstrap_nodes "" (libtorrent's own bootstrap host is
  off this network); dht_restrict_routing_ips and dht_restrict_search_ips off
  (every node is 127.0.0.1, which they would allow only once per table and
  once per lookup).
- dht_block_ratelimit raised: libtorrent's DoS blocker counts the DHT packets
  of each source IP, not of each node, and ignores an IP that sent 10 x that
  limit (default 5, so 50) packets in 10 seconds for dht_block_timeout (5
  minutes). Here every node is 127.0.0.1, so a few nodes would ban each other
  (tried: 49 pings from six loopback ports answered, then none, 20 s on too).
- dht_upload_rate_limit raised: over it (default 8000 bytes/s, 3 s of burst)
  libtorrent drops incoming queries unanswered; on loopback that is a flake.
- local peer discovery, UPnP and NAT-PMP off (no other way to meet peers than
  the DHT and the test's nodes); uTP off (our peer speaks TCP); several
  connections per IP allowed (every peer is 127.0.0.1).
Encryption, peer exchange, the extension protocol and all other DHT settings
(node ids, BEP 42 checks, which libtorrent skips for local addresses,
read-only off) stay at their defaults.
"""

import argparse
import json
import os
import signal
import socket
import sys
import time
import warnings

import libtorrent as lt

LIMIT_SECONDS = 300
STATS_EVERY = 0.5

warnings.simplefilter("ignore", DeprecationWarning)  # dht_state(), info_hash()


def say(**fields):
    print(json.dumps(fields), flush=True)


def free_port():
    """A port free on 127.0.0.1 for both TCP and UDP, as libtorrent uses both."""
    for _ in range(100):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            udp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
    raise OSError("no port free for both TCP and UDP on 127.0.0.1")


def endpoint(text):
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


def parse_args():
    parser = argparse.ArgumentParser(description="libtorrent as a DHT node")
    modes = parser.add_subparsers(dest="mode", required=True)
    modes.add_parser("node")
    seed = modes.add_parser("seed")
    seed.add_argument("what", metavar="TORRENT")
    seed.add_argument("directory", metavar="DIR")
    magnet = modes.add_parser("magnet")
    magnet.add_argument("what", metavar="LINK")
    magnet.add_argument("directory", metavar="DIR")
    for sub in modes.choices.values():
        sub.add_argument("--bootstrap", metavar="HOST:PORT", action="append",
                         default=[], type=endpoint)
    return parser.parse_args()


def node_id(session):
    """This node's id, from the DHT state (20 bytes of id, then its IP)."""
    ids = session.dht_state().get(b"node-id") or []
    return ids[0][:20].hex() if ids else None


def routing_nodes(alert):
    return sum(bucket["num_nodes"] for bucket in alert.routing_table)


def main():
    args = parse_args()
    reannounce = float(os.environ.get("LT_DHT_REANNOUNCE", "5"))
    port = free_port()
    category = lt.alert.category_t
    settings = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_dht": True,
        "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_block_ratelimit": 1000000,
        "dht_upload_rate_limit": 10000000,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": category.status_notification | category.error_notification
        | category.dht_notification | category.dht_operation_notification
        | category.connect_notification
        | category.peer_notification,
    }
    started = time.monotonic()
    session = lt.session(settings)
    for host, bootstrap_port in args.bootstrap:
        session.add_dht_node((host, bootstrap_port))

    handle = None
    if args.mode != "node":
        if args.mode == "seed":
            params = lt.add_torrent_params()
            params.ti = lt.torrent_info(args.what)
        else:
            params = lt.parse_magnet_uri(args.what)
        params.save_path = args.directory
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        handle = session.add_torrent(params)
        if args.mode == "seed":
            handle.force_recheck()
    say(event="listening", port=session.listen_port())

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    nodes = 0
    said_nodes = said_id = None
    said_peer = said_metadata = said_done = False
    dialled = set()
    next_stats = started
    next_announce = None  # when to force the torrent's next DHT announce
    while not stop["now"] and time.monotonic() - started < LIMIT_SECONDS:
        now = time.monotonic()
        seconds = now - started
        if now >= next_stats:
            next_stats = now + STATS_EVERY
            session.post_dht_stats()
            if said_id is None:
                said_id = node_id(session)
                if said_id is not None:
                    say(event="node_id", id=said_id)
        for alert in session.pop_alerts():
            if isinstance(alert, lt.dht_stats_alert):
                nodes = routing_nodes(alert)
                if nodes != said_nodes:
                    said_nodes = nodes
                    say(event="dht", nodes=nodes)
            elif isinstance(alert, lt.dht_get_peers_alert):
                say(event="dht_get_peers", info_hash=str(alert.info_hash))
            elif isinstance(alert, lt.dht_announce_alert):
                say(event="dht_announce", info_hash=str(alert.info_hash),
                    ip=str(alert.ip), port=alert.port)
            elif isinstance(alert, lt.dht_reply_alert):
                say(event="dht_reply", seconds=seconds, num_peers=alert.num_peers)
                if args.mode == "magnet" and not said_peer and alert.num_peers > 0:
                    said_peer = True
                    say(event="first_peer", seconds=seconds, via="dht_reply")
            elif isinstance(alert, lt.peer_connect_alert):
                peer = "%s:%d" % (alert.ip[0], alert.ip[1])
                if peer not in dialled:
                    dialled.add(peer)
                    say(event="peer_connect", seconds=seconds, peer=peer)
        if handle is None:
            time.sleep(0.01)
            continue

        status = handle.status()
        if args.mode == "magnet" and not said_peer:
            via = None
            if status.list_peers > 0:
                via = "peer_list"
            elif handle.get_peer_info():
                via = "peer_info"
            if via:
                said_peer = True
                say(event="first_peer", seconds=seconds, via=via)
        if args.mode == "magnet" and not said_metadata and status.has_metadata:
            said_metadata = True
            say(event="metadata", seconds=seconds, info_hash=str(handle.info_hash()))
        seeding = status.is_seeding and status.state == lt.torrent_status.seeding
        if not said_done and seeding:
            said_done = True
            say(event="seeding" if args.mode == "seed" else "complete", seconds=seconds)

        ready = nodes > 0 and (said_done if args.mode == "seed" else True)
        wanted = args.mode == "seed" or not said_peer
        if ready and wanted and (next_announce is None or
                                 (reannounce > 0 and now >= next_announce)):
            handle.force_dht_announce()
            next_announce = now + reannounce
            say(event="announce", seconds=seconds)
        time.sleep(0.01)
    return 0


if __name__ == "__main__":
    sys.exit(main())
