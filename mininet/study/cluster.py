"""Mininet Cluster Edition for the study: the classes that put hosts and
bridges on other servers over ssh (Debian's `mininet/examples/cluster.py`),
made safe to use here.

- Every ssh command carries `-F SSH_CONFIG` (cluster.py takes no ssh options;
  a server made by `mininet/cluster/netns-server.sh` needs its own port and key).
- `cluster.py`'s cleanup (`mn -c` on every server over ssh, machine-wide) is
  never registered: the study stops what it started itself.
- Bridges are Linux bridges (`RemoteLinuxBridge`; no Open vSwitch here), and a
  link between servers is a VXLAN tunnel (`VxlanLink`; this kernel has no GRE,
  and an SSH tunnel needs ControlMaster off). MTU 1450 on both ends, as for
  GRE in cluster.py.

`ClusterEnvironment` is the study's environment over several servers
(`experiment.py --cluster`): it takes every server's lock, picks the trunk
link, copies the binaries and the seed (checked by SHA-256), builds one
bridge per server with the hosts placed as `placement.py` says, and at the
end stops everything it made by PID and by name (`remote.py`).

Nothing here runs without root and a reachable second server.
"""

import itertools
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time

from mininet.examples import cluster as mc
from mininet.link import TCIntf
from mininet.nodelib import LinuxBridge
from mininet.topo import Topo

from . import net, placement, remote
from .trial import OTHER_CLIENT

# Never let cluster.py schedule `mn -c` on the servers.
mc.ClusterCleanup.add = classmethod(lambda cls, server, user="": None)

VXLAN_PORT = 4789
_vni = itertools.count(4242)


def classes(ssh_config: str):
    """Host, bridge, link and network classes whose ssh uses `ssh_config`."""
    return classes_with(["ssh", "-F", ssh_config, "-q", "-o", "BatchMode=yes", "-o", "ForwardAgent=yes", "-tt"],
                        ["ssh", "-F", ssh_config, "-o", "BatchMode=yes"])


def classes_with(sshbase, sshcmd):
    class Host(mc.RemoteHost):
        pass

    class Bridge(mc.RemoteMixin, LinuxBridge):
        pass

    class Cluster(mc.MininetCluster):
        pass

    Host.sshbase = sshbase
    Bridge.sshbase = sshbase
    Cluster.sshcmd = sshcmd
    return Host, Bridge, VxlanLink, Cluster


class VxlanLink(mc.RemoteLink):
    """A link that is a veth pair on one server and a VXLAN tunnel between
    two (cluster.py's GRE link with `type vxlan` instead of `gretap`)."""

    def stop(self):
        if self.tunnel:
            self.intf1.delete()
            self.intf2.delete()
        else:
            mc.Link.stop(self)
        self.tunnel = None

    def makeIntfPair(self, intfname1, intfname2, addr1=None, addr2=None, node1=None, node2=None,
                     deleteIntfs=True):
        node1 = self.node1 if node1 is None else node1
        node2 = self.node2 if node2 is None else node2
        if getattr(node1, "server", "localhost") == getattr(node2, "server", "localhost"):
            made = mc.Link.makeIntfPair(intfname1, intfname2, addr1, addr2, node1, node2,
                                        deleteIntfs=deleteIntfs)
            # Every link at the tunnel's MTU, as cluster.py does for GRE: a
            # 1500-byte frame would not fit through the tunnel.
            node1.cmd(f"ip link set dev {intfname1} mtu 1450")
            node2.cmd(f"ip link set dev {intfname2} mtu 1450")
            return made
        self.makeTunnel(node1, node2, intfname1, intfname2, addr1, addr2)
        self.tunnel = 1
        return None

    def makeTunnel(self, node1, node2, intfname1, intfname2, addr1=None, addr2=None):
        if node2.server == "localhost":
            return self.makeTunnel(node2, node1, intfname2, intfname1, addr2, addr1)
        ip1, ip2 = node1.serverIP, node2.serverIP
        if node1.server == "localhost":
            route = subprocess.run(["ip", "route", "get", ip2], capture_output=True, text=True).stdout
            ip1 = route.split(" src ")[1].split()[0]
        vni = next(_vni)
        for node, name, addr, local, remote in ((node1, intfname1, addr1, ip1, ip2),
                                                (node2, intfname2, addr2, ip2, ip1)):
            result = node.rcmd(f"ip link add {name} type vxlan id {vni} local {local} remote {remote} "
                               f"dstport {VXLAN_PORT}")
            if result:
                raise RuntimeError(f"VXLAN link on {node.server}: {result.strip()}")
            if addr:
                node.rcmd(f"ip link set {name} address {addr}")
            node.rcmd(f"ip link set dev {name} mtu 1450 up")
            if not self.moveIntf(name, node):
                raise RuntimeError(f"cannot move {name} into {node}")
        return None


def ssh_link_class(ssh_config):
    """cluster.py's SSH link (an ssh `-w` Ethernet tunnel, tap9 renamed) with
    `-F ssh_config`; this machine must be one end of every such trunk."""

    class SshLink(mc.RemoteSSHLink):
        def makeTunnel(self, node1, node2, intfname1, intfname2, addr1=None, addr2=None):
            if node2.server == "localhost":
                return self.makeTunnel(node2, node1, intfname2, intfname1, addr2, addr1)
            if node1.server != "localhost":
                raise RuntimeError("an SSH trunk needs this machine at one end (put the seeder on localhost)")
            for node in (node1, node2):
                result = node.rcmd(f"ip tuntap add dev tap9 mode tap user {node.user}")
                if result:
                    raise RuntimeError(f"tap9 on {node.server}: {result.strip()}")
            cmd = ["ssh"] + (["-F", ssh_config] if ssh_config else []) + [
                "-n", "-o", "Tunnel=Ethernet", "-w", "9:9", node2.server, "echo @"]
            self.cmd = cmd
            tunnel = node1.rpopen(cmd, sudo=False)
            first = tunnel.stdout.read(1).decode(errors="replace")
            if first != "@":
                raise RuntimeError(f"SSH tunnel to {node2.server}: {first + tunnel.stdout.read().decode(errors='replace')}")
            for node in (node1, node2):
                self.moveIntf("tap9", node)
            for node, name, addr in ((node1, intfname1, addr1), (node2, intfname2, addr2)):
                node.cmd(f"ip link set tap9 name {name}" + (f" address {addr}" if addr else ""))
            return tunnel

    return SshLink


PROBE = """t=plprobe$$; found=
ip link add $t type gretap local 127.0.0.1 remote 127.0.0.2 2>/dev/null && found="$found gre" && ip link del $t
ip link add $t type vxlan id 42 local 127.0.0.1 remote 127.0.0.2 dstport 4789 2>/dev/null && found="$found vxlan" && ip link del $t
echo "kinds:$found"
"""


def tunnel_kinds(server) -> set:
    """What links between servers `server`'s kernel can make (gre, vxlan)."""
    out = server.run(PROBE, check=False)
    line = next((l for l in out.splitlines() if l.startswith("kinds:")), "kinds:")
    return set(line[len("kinds:"):].split())


class ClusterHost(net.MininetHost):
    """A Mininet host on one of the cluster's servers."""

    def __init__(self, node, server: remote.Server):
        super().__init__(node)
        self.server = server
        self.server_name = server.name

    def popen(self, argv, stdout, stderr, env=None):
        # The same way on this machine as on the others, so that hosts started
        # together begin together (remote.Server.popen). Not node.popen:
        # cluster.py starts it in a process group of its own, so `mnexec -d`
        # forks and the PID returned is a parent that has already exited.
        # Only what the study itself sets reaches the process.
        wanted = {k: v for k, v in (env or {}).items() if k == "RUST_LOG"}
        return self.server.popen(argv, stdout, stderr, attach=self.node.pid, env=wanted)

    def path(self, local_path: str) -> str:
        return self.server.path(local_path)

    def sha1(self, path: str):
        return super().sha1(path) if self.server.local else self.server.sha1(path)


class RemoteFiles:
    """What a trial does on the other servers (`trial.py`): make its folders,
    copy it the torrent, bring back its logs, remove its copies."""

    def __init__(self, servers):
        self.servers = [s for s in servers if not s.local]

    def make_folders(self, folders) -> None:
        for server in self.servers:
            server.run("mkdir -p " + " ".join(shlex.quote(server.path(f)) for f in folders))

    def share(self, path: str) -> None:
        for server in self.servers:
            server.copy(path)

    def collect(self, log_dir: str) -> None:
        for server in self.servers:
            server.fetch_folder(server.path(log_dir), log_dir)

    def remove(self, folder: str) -> None:
        for server in self.servers:
            there = server.path(folder)
            if server.root and there.startswith(server.root + "/"):
                server.run(f"rm -rf {shlex.quote(there)}", check=False)

    def cpu_samplers(self):
        return [server.cpu_sampler().start() for server in self.servers]


def make_topo(cfg, max_n: int):
    """One bridge per server (s1 on the first), trunks from the seeder's
    server's bridge to every other, h0 on the seeder's server and h1..hN as
    `placement` deals them; host links shaped as in the one-machine star."""
    seeder = cfg.seeder_server
    where = [seeder] + cfg.placement(max_n)
    classes = cfg.hosts(max_n) if cfg.links else None
    extra = {}
    if cfg.delay:
        extra["delay"] = cfg.delay
    if cfg.loss:
        extra["loss"] = cfg.loss

    class ClusterStar(Topo):
        def build(self):
            bridges = {s: self.addSwitch(f"s{i + 1}", server=s) for i, s in enumerate(cfg.cluster)}
            for server in cfg.cluster:
                if server != seeder:
                    shaped = {"bw": cfg.trunk_bw} if cfg.trunk_bw else {}
                    self.addLink(bridges[seeder], bridges[server], intf=TCIntf, params1=dict(shaped), params2=dict(shaped))
            for i in range(max_n + 1):
                up, down = (classes[i - 1].up, classes[i - 1].down) if classes and i > 0 else (cfg.bw, cfg.bw)
                host = self.addHost(f"h{i}", server=where[i])
                self.addLink(host, bridges[where[i]], intf=TCIntf, params1=dict(bw=up, **extra),
                             params2=dict(bw=down, **extra))

    return ClusterStar()


class ClusterEnvironment:
    """h0 and h1..hN spread over the servers of `cfg.cluster` (module docs)."""

    name = "mininet"

    def __init__(self, cfg, max_n: int, files, out: str, ssh_config=None, trunk_link: str = "auto"):
        self.net = None
        self.notes = []
        self.locked = []
        self.created = {}  # server -> names of the bridges and interfaces made there
        self.work = files.work  # on this machine, programs run from WORK/bin
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.servers = [remote.Server(name, ssh_config, f"/tmp/peer-lab-study-{token}") for name in cfg.cluster]
        self.remote = RemoteFiles(self.servers)
        try:
            self._start(cfg, max_n, files, out, ssh_config, trunk_link)
        except BaseException:
            self.close()
            raise

    def _start(self, cfg, max_n, files, out, ssh_config, trunk_link):
        by_name = {s.name: s for s in self.servers}
        for server in self.servers:
            missing = server.run("for t in mnexec tc ip sha256sum sha1sum tar sudo; do command -v $t >/dev/null || "
                                 "echo $t; done", timeout=30)
            if missing:
                raise remote.RemoteError(f"{server.name} lacks {', '.join(missing.split())} (README: several machines)")
        for server in self.servers:
            server.lock()
            self.locked.append(server)
        kinds = {s.name: tunnel_kinds(s) for s in self.servers}
        self.trunk = placement.choose_trunk(kinds, trunk_link)
        same_machine = [s.name for s in self.servers if not s.local and
                        s.run("cat /proc/sys/kernel/random/boot_id").strip() == remote.boot_id()]
        # Copies: the binaries, the seed and (for another client) its runner.
        copied = []
        for server in self.servers:
            if server.local:
                continue
            server.run(f"mkdir -m 700 {shlex.quote(server.root)}")
            server.mirror(files.work, "work")
            server.mirror(out, "out")
            server.mirror(os.path.dirname(OTHER_CLIENT), "study")
            started = time.monotonic()
            wanted = [files.peer, files.tracker, os.path.join(files.seed_dir, files.seed_name)]
            wanted += [OTHER_CLIENT] if cfg.client != "ours" else []
            for path in wanted:
                server.copy(path)
            copied.append(f"{server.name} ({time.monotonic() - started:.1f} s)")
        self.notes.append(
            f"Mininet Cluster Edition over {len(self.servers)} servers ({', '.join(cfg.cluster)}), one Linux bridge "
            f"each; trunks from {cfg.seeder_server}'s bridge to the others: {self.trunk.upper()}"
            + (" (the kernels' choice: GRE, else VXLAN, else SSH)" if trunk_link == "auto" else " (asked for)")
            + ", MTU 1450 on every link"
            + (f", shaped to {cfg.trunk_bw:g} Mbit/s and counted in the bound" if cfg.trunk_bw else ", unshaped"))
        if same_machine:
            self.notes.append(f"{', '.join(same_machine)} run on this same machine (a network namespace with its own "
                              "sshd, mininet/cluster/netns-server.sh): the cluster's plumbing is real, its CPU is not extra")
        self.notes.append("peer, tracker and the seed copied by ssh to " + ", ".join(copied) + ", each SHA-256 checked")
        where = [cfg.seeder_server] + cfg.placement(max_n)
        self.notes.append("hosts: " + "; ".join(
            f"{server} " + ", ".join(f"h{i}" for i, s in enumerate(where) if s == server) for server in cfg.cluster
            if server in where))
        if not cfg.trunk_bw:
            rates = cfg.hosts(max_n)
            demand = placement.trunk_demand(where[1:], cfg.seeder_server, cfg.bw, [c.up for c in rates],
                                            [c.down for c in rates])
            self.notes.append("each trunk may have to carry up to " + ", ".join(
                f"{mbit:g} Mbit/s toward {s}" for s, mbit in demand.items()) + " at N = " + str(max_n)
                + "; unshaped, it is assumed never to limit (the bound has no trunk term)")
        Host, Bridge, Vxlan, Cluster = classes(ssh_config) if ssh_config else classes_default()
        link = {"vxlan": Vxlan, "gre": mc.RemoteGRELink, "ssh": ssh_link_class(ssh_config)}[self.trunk]
        home = os.environ.get("HOME")
        scratch_home = tempfile.mkdtemp(prefix="peer-lab-cluster-home-")
        os.environ["HOME"] = scratch_home  # cluster.py makes $HOME/.ssh/mn
        try:
            addresses = {s.name: s.address() for s in self.servers}
            first_remote = next(s for s in self.servers if not s.local)
            route = subprocess.run(["ip", "route", "get", addresses[first_remote.name]], capture_output=True, text=True)
            addresses["localhost"] = route.stdout.split(" src ")[1].split()[0]
            self.net = Cluster(topo=make_topo(cfg, max_n), servers=list(cfg.cluster), serverIP=addresses,
                               host=Host, switch=Bridge, link=link, controller=None, user="root",
                               autoSetMacs=True, waitConnected=False, build=False)
            self.net.build()
            # The bridges and their ports live in the servers' root namespaces
            # (the hosts' interfaces go with the hosts' own namespaces).
            for bridge in self.net.switches:
                self.created.setdefault(bridge.server, []).extend(
                    [bridge.name] + [i.name for i in bridge.intfList() if i.name != "lo"])
            self.net.start()
        finally:
            os.environ["HOME"] = home or "/root"
            subprocess.run(["rm", "-rf", scratch_home])
        problems = net.check_links(self.net, max_n, cfg.bw, cfg.hosts(max_n) if cfg.links else None)
        if problems:
            raise RuntimeError("the cluster network does not work: " + "; ".join(problems))
        self.notes.append(net.apply_tcp([self.net.get(f"h{i}") for i in range(max_n + 1)], cfg.tcp))
        self.server = ClusterHost(self.net.get("h0"), by_name[cfg.seeder_server])
        self.clients = [ClusterHost(self.net.get(f"h{i}"), by_name[where[i]]) for i in range(1, max_n + 1)]
        self.limits = net.NoLimits()

    def close(self) -> None:
        """Stops the network, then, on every server: what is left of this
        study's processes (by PID) and of its bridges and interfaces (by name),
        its folder, its lock."""
        if self.net is not None:
            network, self.net = self.net, None
            try:
                network.stop()
            except Exception as error:  # noqa: BLE001 - what is left is removed below
                self.notes.append(f"stopping the network: {error}")
        for server in self.servers:
            try:
                left = server.sweep(self.work if server.local else None)
                if left:
                    # Every process should have been stopped by its PID already.
                    print(f"experiment.py: {len(left)} processes of this study were still running on {server.name} "
                          f"and were killed by the sweep (PIDs {', '.join(map(str, left))})", file=sys.stderr)
                names = self.created.get(server.name, [])
                if names:
                    server.run("; ".join(f"ip link del {shlex.quote(n)} 2>/dev/null" for n in names) + "; true",
                               check=False)
            except remote.RemoteError as error:
                self.notes.append(f"cleaning {server.name}: {error}")
        for server in reversed(self.locked):
            server.unlock()
        self.locked = []
        for server in self.servers:
            server.disconnect()


def classes_default():
    """The classes with ssh's own configuration (~/.ssh/config)."""
    return classes_with(["ssh", "-q", "-o", "BatchMode=yes", "-o", "ForwardAgent=yes", "-tt"],
                        ["ssh", "-o", "BatchMode=yes"])
