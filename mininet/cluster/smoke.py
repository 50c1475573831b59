#!/usr/bin/python3
"""A two-server Mininet Cluster Edition network on one machine, checked:
this machine and a namespace server (`netns-server.sh`), a Linux bridge on
each joined by a VXLAN link, H hosts on each; every host pings every other,
`peer fetch` from `peer serve` across the servers runs at the rate the links
are shaped to, and
afterwards nothing the test made is left (namespace, bridges, tunnels, sshd).

Usage (as root): mininet/cluster/smoke.py [--hosts 2] [--bw 10] [--bin target/release]
Prints `ok ...`/`FAIL ...` lines and exits 0 only when every check passed.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from mininet.link import TCIntf  # noqa: E402
from mininet.log import setLogLevel  # noqa: E402
from mininet.topo import Topo  # noqa: E402

from study import cluster  # noqa: E402

SERVER = "mnsrv2"
failures = []


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


class TwoServers(Topo):
    def build(self, hosts: int, bw: float):
        s1 = self.addSwitch("cs1", server="localhost")
        s2 = self.addSwitch("cs2", server=SERVER)
        self.addLink(s1, s2)
        for i in range(1, 2 * hosts + 1):
            server = "localhost" if i <= hosts else SERVER
            host = self.addHost(f"ch{i}", server=server, ip=f"10.77.0.{i}/24")
            self.addLink(host, s1 if server == "localhost" else s2, intf=TCIntf,
                         params1={"bw": bw}, params2={"bw": bw})


def leftovers() -> list:
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    names = [line.split()[0].split("@")[0] for line in links.splitlines() if line.strip()]
    ours = [n for n in names if n.startswith(("cs1", "cs2", "ch", SERVER))]
    if subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.count(SERVER):
        ours.append(f"netns {SERVER}")
    return ours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2, help="hosts on each server")
    parser.add_argument("--bw", type=float, default=10.0, help="each host link, Mbit/s")
    parser.add_argument("--bin", default=os.path.join(HERE, "..", "..", "target", "release"),
                        help="where `peer` is (default target/release)")
    args = parser.parse_args()
    setLogLevel("warning")
    up = subprocess.run(["bash", os.path.join(HERE, "netns-server.sh"), "up", SERVER],
                        capture_output=True, text=True)
    check(up.returncode == 0, f"netns server {SERVER} up")
    if up.returncode:
        print(up.stderr, file=sys.stderr)
        return 1
    server = json.loads(up.stdout.strip().splitlines()[-1])
    net = None
    home = os.environ.get("HOME")
    scratch = tempfile.mkdtemp(prefix="peer-lab-cluster-smoke-")
    try:
        os.environ["HOME"] = scratch  # cluster.py makes $HOME/.ssh/mn
        Host, Bridge, Link, Cluster = cluster.classes(server["ssh_config"])
        started = time.monotonic()
        net = Cluster(topo=TwoServers(hosts=args.hosts, bw=args.bw), servers=["localhost", SERVER],
                      serverIP={"localhost": "10.201.2.1", SERVER: server["address"]},
                      host=Host, switch=Bridge, link=Link, controller=None, user="root")
        net.start()
        check(True, f"{2 * args.hosts} hosts over two servers up in {time.monotonic() - started:.1f} s")
        loss = net.pingAll(timeout=2)
        check(loss == 0, f"every host pings every other ({loss}% loss)")
        a, b = net.hosts[0], net.hosts[-1]
        # `peer serve` on a host of the second server, `peer fetch` on one of
        # this one: four seconds' worth at the link rate. (The namespace
        # server shares this machine's files; a real one would need copies.)
        served = os.path.join(scratch, "served")
        os.makedirs(served)
        size = int(args.bw * 1e6 / 8 * 4)
        with open(os.path.join(served, "blob"), "wb") as out:
            out.write(os.urandom(size))
        peer = os.path.join(args.bin, "peer")
        server_proc = b.popen([peer, "serve", served, "--port", "2680", "--bind", b.IP()],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        fetched = a.cmd(f"{peer} fetch http://{b.IP()}:2680/blob --output {scratch}/fetched 2>/dev/null")
        server_proc.terminate()
        lines = [line for line in fetched.splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(f"peer fetch printed no summary: {fetched.strip()[-300:]!r}")
        summary = json.loads(lines[-1])
        mbit = summary["bytes"] * 8 / summary["seconds"] / 1e6
        check(summary["bytes"] == size and 0.8 * args.bw <= mbit <= 1.05 * args.bw,
              f"{a.name} ({a.server}) fetched from {b.name} ({b.server}): {mbit:.2f} Mbit/s on {args.bw:g} Mbit/s links")
    except Exception as error:  # noqa: BLE001 - reported, then cleaned up
        check(False, f"cluster network: {error}")
    finally:
        if net is not None:
            net.stop()
        os.environ["HOME"] = home or "/root"
        subprocess.run(["bash", os.path.join(HERE, "netns-server.sh"), "down", SERVER])
        subprocess.run(["rm", "-rf", scratch])
    left = leftovers()
    check(not left, f"nothing left: {left or 'no namespace, bridge, tunnel or host interface'}")
    sshd = subprocess.run(["pgrep", "-f", f"peer-lab-cluster-{SERVER}/sshd_config"], capture_output=True)
    check(sshd.returncode != 0, "no sshd of ours left")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
