"""Runs another BitTorrent client as a study host, so the harness sees it as it
sees `peer`: one JSON line `{"event":"complete","seconds":…,"bytes":…,"uploaded":…}`
on stdout when the download is done (then it keeps seeding unless
`--leave`), and `{"event":"stopped","uploaded":…,"seconds":…}` when SIGTERM
stops it. Run with Debian's python3 on the host itself (a Mininet host's
namespace, or loopback):

    other_client.py libtorrent seed|download TORRENT --dir D --ip IP --port P
                    [--up BYTES_PER_S] [--down BYTES_PER_S] [--leave] [--local]

libtorrent (python3-libtorrent) at its defaults except: no DHT, local peer
discovery, UPnP or NAT-PMP (the tracker is the only source of peers, as for
ours); no uTP (our peers speak TCP only, so every pair uses the same
transport); with `--local` (every host on 127.0.0.1) several connections
per IP allowed and rate limits applied to local peers too, payload only
(as `peer`'s token buckets count). Rates are bytes per second.
"""

import argparse
import json
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("client", choices=["libtorrent"])
    parser.add_argument("role", choices=["seed", "download"])
    parser.add_argument("torrent")
    parser.add_argument("--dir", required=True, help="the data (seed) or where to download it")
    parser.add_argument("--ip", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--up", type=int, default=0, help="upload limit, bytes/s (0: none)")
    parser.add_argument("--down", type=int, default=0, help="download limit, bytes/s (0: none)")
    parser.add_argument("--leave", action="store_true", help="exit once the download is complete")
    parser.add_argument("--local", action="store_true", help="every host on 127.0.0.1 (see the module docs)")
    args = parser.parse_args(argv)
    return run_libtorrent(args)


if __name__ == "__main__":
    sys.exit(main())
