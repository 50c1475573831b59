"""The study in Mininet: a star of hosts around one switch, links shaped by
tc (TCLink: htb for the rate, netem for delay and loss), each host's TCP
congestion control (`--tcp`), and the checks of what the running kernel
supports.

Mininet is imported only here and only when used, so `--local` runs
without it. Everything needs root.
"""

import logging
import os
import re
import shutil
import subprocess
from typing import Dict, List, Optional, Tuple

from .trial import LocalFiles


def _run(argv: List[str], timeout: float = 10.0) -> Tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return 127, f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, f"{' '.join(argv)}: timed out"
    return done.returncode, (done.stdout + done.stderr).strip()


def ovs_running() -> bool:
    """Open vSwitch is usable: its tools are installed and its daemon answers."""
    if not shutil.which("ovs-vsctl"):
        return False
    code, _ = _run(["ovs-vsctl", "--timeout=3", "show"], timeout=5)
    return code == 0


def kernel_features() -> Dict[str, Tuple[bool, str]]:
    """What Mininet needs, each tried for real in a scratch namespace or device.

    netns, veth and bridge build the network; htb and tbf shape rates; netem
    adds delay and loss; openvswitch is the alternative switch.
    """
    tag = str(os.getpid())[-6:]
    ns, veth_a, veth_b, bridge = f"plprobe{tag}", f"plpa{tag}", f"plpb{tag}", f"plbr{tag}"
    features: Dict[str, Tuple[bool, str]] = {}
    try:
        code, out = _run(["ip", "netns", "add", ns])
        features["netns"] = (code == 0, out or "ip netns add works")
        code, out = _run(["ip", "link", "add", veth_a, "type", "veth", "peer", "name", veth_b])
        features["veth"] = (code == 0, out or "ip link add type veth works")
        code, out = _run(["ip", "link", "add", bridge, "type", "bridge"])
        features["bridge"] = (code == 0, out or "ip link add type bridge works")
        if features["netns"][0]:
            _run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
            for name, qdisc in (
                ("htb", ["htb", "default", "1"]),
                ("tbf", ["tbf", "rate", "100mbit", "burst", "15k", "latency", "10ms"]),
                ("netem", ["netem", "delay", "1ms", "loss", "1%"]),
            ):
                code, out = _run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "handle", "1:"] + qdisc)
                features[name] = (code == 0, out or f"tc qdisc {name} works")
                _run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "lo", "root"])
    finally:
        _run(["ip", "link", "del", bridge])
        _run(["ip", "link", "del", veth_a])
        _run(["ip", "netns", "del", ns])
    module = os.path.isdir("/sys/module/openvswitch")
    running = ovs_running()
    features["openvswitch"] = (
        running,
        "ovs-vsctl answers" if running else
        ("the openvswitch module is loaded but ovs-vswitchd does not answer" if module else
         "no openvswitch kernel module and no running ovs-vswitchd; using the Linux bridge"),
    )
    return features


def feature_report(features: Dict[str, Tuple[bool, str]]) -> List[str]:
    lines = []
    for name, (ok, detail) in features.items():
        lines.append(f"{name:12s} {'yes' if ok else 'NO '}  {detail.splitlines()[0] if detail else ''}")
    return lines


class _QuietHtbQuantum(logging.Filter):
    """Mininet reports tc's harmless `quantum of class ... is big` warning as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "quantum of class" not in record.getMessage()


def make_topo(n: int, bw: float, delay: Optional[str], loss: float, cpu: Optional[float], hosts=None):
    """A star: switch s1, the server h0 and the downloaders h1..hN, one TCLink
    each; `hosts[i - 1]` (a LinkClass) gives hI its own rates, the host's
    side shaped at its upload and the switch's side at its download."""
    from mininet.topo import Topo

    class StarTopo(Topo):
        def build(self):
            switch = self.addSwitch("s1")
            link = {}
            if delay:
                link["delay"] = delay
            if loss:
                link["loss"] = loss
            host = {"cpu": cpu} if cpu else {}
            for i in range(n + 1):
                up, down = (hosts[i - 1].up, hosts[i - 1].down) if hosts and i > 0 else (bw, bw)
                self.addLink(self.addHost(f"h{i}", **host), switch, params1={"bw": up}, params2={"bw": down}, **link)

    return StarTopo()


def build(n: int, bw: float, delay: Optional[str], loss: float, cpu: Optional[float], switch: str = "auto", hosts=None):
    """A started Mininet network (not yet checked); the caller must `stop()` it."""
    from mininet.link import TCLink
    from mininet.log import lg
    from mininet.net import Mininet
    from mininet.node import CPULimitedHost, Host, OVSBridge
    from mininet.nodelib import LinuxBridge

    lg.addFilter(_QuietHtbQuantum())
    if switch == "auto":
        switch = "ovs" if ovs_running() else "lxbr"
    switch_class = OVSBridge if switch == "ovs" else LinuxBridge
    net = Mininet(
        topo=make_topo(n, bw, delay, loss, cpu, hosts),
        switch=switch_class,
        controller=None,
        host=CPULimitedHost if cpu else Host,
        link=TCLink,
        autoSetMacs=True,
        waitConnected=False,
        build=False,
    )
    net.switch_name = switch
    try:
        net.build()
        net.start()
    except BaseException:
        net.stop()
        raise
    return net


def queue_note(packets: int, slowest_mbit: float) -> str:
    """What the links' queues mean in time: each shaped interface queues up
    to its txqueuelen of full frames before dropping."""
    seconds = packets * 1514 * 8 / (slowest_mbit * 1e6)
    seconds = round(seconds, 2 if seconds < 1 else 1)
    return (f"each interface queues up to {packets} packets (its txqueuelen, Mininet's default): "
            f"a full queue is {seconds:g} s of delay at the slowest uplink here ({slowest_mbit:g} Mbit/s)")


_TC_RATE = re.compile(r"\brate (\d+(?:\.\d+)?)([KMG]?)bit")


def tc_rate_mbit(shown: str) -> Optional[float]:
    """The first htb rate in `tc class show` output, in Mbit/s."""
    match = _TC_RATE.search(shown)
    if not match:
        return None
    return float(match.group(1)) * {"": 1e-6, "K": 1e-3, "M": 1.0, "G": 1e3}[match.group(2)]


def check_links(net, n: int, bw: float, hosts=None) -> List[str]:
    """Problems found: hosts that cannot reach h0, interfaces without their
    rate; with link classes (`hosts`), each direction at its own rate."""
    problems = []
    h0 = net.get("h0")
    for i in range(1, n + 1):
        host = net.get(f"h{i}")
        out = host.cmd(f"ping -c 1 -W 2 {h0.IP()}")
        if " 0% packet loss" not in out:
            problems.append(f"h{i} cannot reach h0 ({h0.IP()}): {out.strip().splitlines()[-1] if out.strip() else 'no output'}")
    for i, host in enumerate([h0] + [net.get(f"h{i}") for i in range(1, n + 1)]):
        up, down = (hosts[i - 1].up, hosts[i - 1].down) if hosts and i > 0 else (bw, bw)
        intf = host.defaultIntf()
        far = intf.link.intf2 if intf.link.intf1 is intf else intf.link.intf1
        for side, node, want in ((intf, host, up), (far, far.node, down)):
            got = tc_rate_mbit(node.cmd(f"tc class show dev {side}"))
            if got is None or abs(got - want) > 0.01 * want:
                problems.append(f"{host.name}: {side} shaped at {got} Mbit/s, not {want:g}")
    return problems


def machine_tcp() -> str:
    """This machine's default TCP congestion control (what new namespaces inherit)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
            return f.read().strip() or "?"
    except OSError:
        return "?"


def set_tcp(nodes, name: str) -> List[str]:
    """Sets each host's own TCP congestion control (a per-namespace sysctl)
    and reads it back. Each host would otherwise inherit this machine's
    default, which decides how the flows share every link: this VM is set
    to bbr, a stock Debian host runs cubic, and the same study differs
    between the two (README, "TCP in the emulated hosts"). Returns the
    problems found."""
    problems = []
    for node in nodes:
        out = node.cmd(f"sysctl -q -w net.ipv4.tcp_congestion_control={name} 2>&1; "
                       "cat /proc/sys/net/ipv4/tcp_congestion_control").strip().splitlines()
        got = out[-1].strip() if out else ""
        if got != name:
            problems.append(f"{node.name}: TCP congestion control is {got or '?'}, not {name}"
                            + (f" ({out[0].strip()})" if len(out) > 1 else ""))
    return problems


def apply_tcp(nodes, name: str) -> str:
    """`set_tcp` unless `name` is `system`; raises RuntimeError naming the
    hosts that refused. Returns the note that says what the hosts run."""
    if name != "system":
        problems = set_tcp(nodes, name)
        if problems:
            raise RuntimeError(f"--tcp {name}: " + "; ".join(problems[:3])
                               + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""))
    return tcp_note(name)


def tcp_note(name: str) -> str:
    if name == "system":
        return f"TCP congestion control: this machine's own, {machine_tcp()} (--tcp system)"
    return f"TCP congestion control in every host: {name} (this machine's own: {machine_tcp()})"


class MininetHost(LocalFiles):
    def __init__(self, node):
        self.node = node
        self.name = node.name
        self.ip = node.IP()

    def popen(self, argv: List[str], stdout, stderr, env: Optional[dict] = None):
        # mnexec -da: a new session inside the host's namespaces, then exec:
        # the PID returned is the command's own, so it can be stopped by PID.
        return self.node.popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env)

    def free_port(self) -> int:
        """Each host has its own network namespace: the usual BitTorrent port is free."""
        return 6881

    def http_get(self, url: str, timeout: float = 2.0) -> Optional[bytes]:
        out = self.node.cmd(f"curl -s -m {timeout:g} '{url}'")
        return out.encode() if out and out.lstrip().startswith("{") else None


class NoLimits:
    """In Mininet the links themselves have the rates: no flags."""

    def serve(self, host=None):
        return []

    fetch = seed = download = serve


class MininetEnvironment:
    """Builds the star for the largest N once; smaller N use h1..hN of it."""

    name = "mininet"
    remote = None  # every host is on this machine

    def __init__(self, cfg, max_n: int, features: Dict[str, Tuple[bool, str]]):
        self.notes = []
        delay, loss = cfg.delay, cfg.loss
        if (delay or loss) and not features.get("netem", (False, ""))[0]:
            self.notes.append(
                f"the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): running WITHOUT delay {delay or 0} and loss {loss}%"
            )
            delay, loss = None, 0.0
            cfg.delay, cfg.loss = None, 0.0
        self.net = build(max_n, cfg.bw, delay, loss, cfg.cpu, cfg.switch, cfg.hosts(max_n) if cfg.links else None)
        self.notes.append(
            f"Mininet star, switch {self.net.switch_name}, TCLink bw {cfg.bw:g} Mbit/s"
            + (f" for the server, hosts {cfg.links} (upload/download, each direction shaped)" if cfg.links else "")
            + (f", delay {delay}" if delay else "") + (f", loss {loss}%" if loss else "")
            + (f", CPU share {cfg.cpu} per host" if cfg.cpu else "")
        )
        problems = check_links(self.net, max_n, cfg.bw, cfg.hosts(max_n) if cfg.links else None)
        if problems:
            self.close()
            raise RuntimeError("the Mininet network does not work: " + "; ".join(problems))
        try:
            self.notes.append(apply_tcp([self.net.get(f"h{i}") for i in range(max_n + 1)], cfg.tcp))
        except RuntimeError:
            self.close()
            raise
        h1 = self.net.get("h1")
        shown = h1.cmd(f"cat /sys/class/net/{h1.defaultIntf()}/tx_queue_len").strip()
        if shown.isdigit():
            slowest = min([cfg.bw] + [c.up for c in cfg.hosts(max_n)] if cfg.links else [cfg.bw])
            self.notes.append(queue_note(int(shown), slowest))
        self.server = MininetHost(self.net.get("h0"))
        self.clients = [MininetHost(self.net.get(f"h{i}")) for i in range(1, max_n + 1)]
        self.limits = NoLimits()

    def close(self) -> None:
        if self.net is not None:
            net, self.net = self.net, None
            net.stop()
