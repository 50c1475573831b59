#!/usr/bin/python3
"""The study's network: a star of N+1 hosts around one switch.

h0 (the server: tracker, seeder and `peer serve`) and h1..hN (the
downloaders), each joined to switch s1 by a TCLink of --bw Mbit/s (plus
--delay and --loss when the kernel has netem), optionally with a CPU share
per host (CPULimitedHost). Open vSwitch (as a standalone bridge) when it is
running, else the Linux bridge; no controller either way.

    sudo /usr/bin/python3 mininet/topo.py --peers 6            # check: kernel support, reachability, link rates
    sudo /usr/bin/python3 mininet/topo.py --peers 6 --cli      # the classic lab: servers up on h0, then the Mininet CLI

Needs root and Debian's python3 (apt-get install mininet).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from study import config, net  # noqa: E402
from study.procs import Registry, wait_for  # noqa: E402
from study.trial import make_seed  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=6, help="N, the downloading hosts h1..hN (default 6)")
    parser.add_argument("--bw", type=float, default=100.0, help="every link's rate, Mbit/s (default 100)")
    parser.add_argument("--delay", help="delay on each link, e.g. 5ms (needs netem)")
    parser.add_argument("--loss", type=float, default=0.0, help="loss on each link, percent (needs netem)")
    parser.add_argument("--cpu", type=float, help="CPU share per host (CPULimitedHost), e.g. 0.15")
    parser.add_argument("--switch", choices=["auto", "ovs", "lxbr"], default="auto")
    parser.add_argument("--tcp", help="TCP congestion control in every host: cubic (default), reno, bbr, ... or system")
    parser.add_argument("--cli", action="store_true", help="start the servers on h0 and drop into the Mininet CLI")
    parser.add_argument("--size", default="100M", help="--cli: size of the seed file served (default 100M)")
    parser.add_argument("--bin", default=os.path.join(REPO, "target", "release"))
    return parser.parse_args(argv)


def start_servers(network, args, registry, work):
    """Tracker on h0:6969, seeder on h0:6881, `peer serve` on h0:2680."""
    peer, tracker = os.path.join(args.bin, "peer"), os.path.join(args.bin, "tracker")
    h0 = net.MininetHost(network.get("h0"))
    seed_dir, name, _ = make_seed(REPO, config.parse_size(args.size), work)
    torrent = os.path.join(work, "study.torrent")
    subprocess.run([peer, "create", os.path.join(seed_dir, name), "-a", f"http://{h0.ip}:6969/announce",
                    "--no-date", "--force", "-o", torrent], check=True, capture_output=True)
    logs = os.path.join(work, "logs")
    started = [
        registry.spawn(h0, "tracker", [tracker, "--listen", f"{h0.ip}:6969", "--interval", "30"], logs),
        registry.spawn(h0, "seeder", [peer, "seed", torrent, "--data", seed_dir, "--port", "6881"], logs),
        registry.spawn(h0, "server", [peer, "serve", seed_dir, "--port", "2680", "--bind", h0.ip], logs),
    ]
    if not wait_for(lambda: all(p.alive() for p in started) and h0.http_get(f"http://{h0.ip}:6969/stats"), 10):
        raise RuntimeError("the servers on h0 did not start: "
                           + "; ".join(f"{p.name}: {p.stderr_tail(2)}" for p in started))
    out = os.path.join(work, "downloads")
    print(f"""
*** h0 ({h0.ip}) runs: tracker :6969 (dashboard http://{h0.ip}:6969/), seeder :6881, peer serve :2680
*** logs in {logs}; downloads go to {out}/hK
*** client-server, in the CLI (one host, or several with &):
    h1 {peer} fetch http://{h0.ip}:2680/{name} --output {out}/h1
*** peer-to-peer:
    h1 {peer} download {torrent} --output {out}/h1 --seed &
    h2 {peer} download {torrent} --output {out}/h2 --seed &
*** stop a host's background job with:  h1 kill %1      the whole lab with:  exit
""")


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("topo.py: Mininet needs root: sudo /usr/bin/python3 mininet/topo.py ...", file=sys.stderr)
        return 1
    import mininet.log

    mininet.log.setLogLevel("info")
    features = net.kernel_features()
    print("kernel support for Mininet:")
    for line in net.feature_report(features):
        print("  " + line)
    delay, loss = config.parse_delay(args.delay), args.loss
    tcp = config.parse_tcp(args.tcp, "mininet")
    if (delay or loss) and not features["netem"][0]:
        print(f"*** no netem qdisc in this kernel: going on WITHOUT delay {delay or 0} and loss {loss}%")
        delay, loss = None, 0.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    registry = Registry()
    network = None
    work = tempfile.mkdtemp(prefix="peer-lab-topo-")
    try:
        network = net.build(args.peers, args.bw, delay, loss, args.cpu, args.switch)
        print(f"*** switch: {network.switch_name}")
        problems = net.check_links(network, args.peers, args.bw)
        if tcp != "system":
            problems += net.set_tcp([network.get(f"h{i}") for i in range(args.peers + 1)], tcp)
        print(f"*** {net.tcp_note(tcp)}")
        for problem in problems:
            print(f"*** PROBLEM: {problem}")
        h0 = network.get("h0")
        for i in range(1, args.peers + 1):
            host = network.get(f"h{i}")
            rtt = host.cmd(f"ping -c 3 -i 0.2 -q {h0.IP()}").strip().splitlines()[-1]
            print(f"*** h{i} -> h0: {rtt}")
        print(f"*** h1 qdiscs: {' | '.join(network.get('h1').cmd('tc qdisc show dev h1-eth0').strip().splitlines())}")
        if problems:
            return 1
        if args.cli:
            from mininet.cli import CLI

            start_servers(network, args, registry, work)
            CLI(network)
        else:
            print("*** every host reaches h0 and every link has its rate (--cli for the interactive lab)")
        return 0
    finally:
        for ignored in (signal.SIGINT, signal.SIGTERM):
            signal.signal(ignored, signal.SIG_IGN)
        registry.stop_all()
        if network is not None:
            network.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
