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

Nothing here runs without root and a reachable second server; the study's
cluster mode and `mininet/cluster/smoke.py` use it.
"""

import itertools
import subprocess

from mininet.examples import cluster as mc
from mininet.nodelib import LinuxBridge

# Never let cluster.py schedule `mn -c` on the servers.
mc.ClusterCleanup.add = classmethod(lambda cls, server, user="": None)

VXLAN_PORT = 4789
_vni = itertools.count(4242)


def classes(ssh_config: str):
    """Host, bridge, link and network classes whose ssh uses `ssh_config`."""
    sshbase = ["ssh", "-F", ssh_config, "-q", "-o", "BatchMode=yes", "-o", "ForwardAgent=yes", "-tt"]

    class Host(mc.RemoteHost):
        pass

    class Bridge(mc.RemoteMixin, LinuxBridge):
        pass

    class Cluster(mc.MininetCluster):
        sshcmd = ["ssh", "-F", ssh_config, "-o", "BatchMode=yes"]

    Host.sshbase = sshbase
    Bridge.sshbase = sshbase
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
            return mc.Link.makeIntfPair(intfname1, intfname2, addr1, addr2, node1, node2,
                                        deleteIntfs=deleteIntfs)
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
