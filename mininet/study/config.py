"""The parameters of a study: presets, sizes, rates and the parsed command line."""

import argparse
import dataclasses
import re
from typing import List, Optional

from . import arrivals as arrival_schedules
from . import links as link_classes
from . import placement as cluster_placement

MODES = ("cs", "p2p")
# Peer-to-peer clients: ours, or one that other_client.py runs.
CLIENTS = ("ours", "libtorrent", "aria2", "transmission")

# The lab: the 1 GiB seed, N in 1, 2, 4, 6, three runs, 100 Mbit/s links.
# Quick: small enough for CI on two cores, still both modes for real.
PRESETS = {
    "lab": dict(size="1G", peers=[1, 2, 4, 6], runs=3, bw=100.0),
    "quick": dict(size="16M", peers=[1, 3], runs=1, bw=100.0),
}

_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]?)(i?B?)?\s*$", re.IGNORECASE)
_TCP = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)?\s*$")


def parse_size(text: str) -> int:
    """Bytes, with an optional K, M or G suffix in powers of 1024 (`100M`, `1G`, `16MiB`)."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"bad size {text!r}: expected bytes with an optional K, M or G suffix")
    number, suffix = int(match.group(1)), match.group(2).upper()
    size = number * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[suffix]
    if size <= 0:
        raise ValueError(f"the size must be positive, got {text!r}")
    return size


def format_size(size: int) -> str:
    """`104857600` -> `100 MiB`."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def parse_peers(text: str) -> List[int]:
    """`1,2,4,6` -> [1, 2, 4, 6], each at least 1, sorted, no repeats."""
    try:
        peers = sorted({int(part) for part in str(text).split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"bad peer list {text!r}: expected numbers separated by commas") from None
    if not peers or peers[0] < 1:
        raise ValueError(f"bad peer list {text!r}: every N must be at least 1")
    return peers


def parse_modes(text: str) -> List[str]:
    modes = [part.strip() for part in str(text).split(",") if part.strip()]
    unknown = [m for m in modes if m not in MODES]
    if not modes or unknown:
        raise ValueError(f"bad modes {text!r}: expected cs, p2p or cs,p2p")
    return [m for m in MODES if m in modes]


def parse_tcp(text: Optional[str], environment: str) -> str:
    """The emulated hosts' TCP congestion control: a kernel module's name
    (`cubic`, `reno`, `bbr`), or `system` for whatever this machine uses.
    Mininet's default is cubic, Linux's own default, so that hosts behave as
    most end hosts do whatever the emulating machine was set to; on one
    machine every peer shares the machine's stack, so only `system`."""
    if text is None:
        return "cubic" if environment == "mininet" else "system"
    name = str(text).strip().lower()
    if not _TCP.match(name):
        raise ValueError(f"bad --tcp {text!r}: expected a congestion control's name (cubic, reno, bbr) or system")
    if environment == "local" and name != "system":
        raise ValueError("--tcp needs Mininet: on one machine every peer shares this machine's TCP (--tcp system)")
    return name


def parse_delay(text: Optional[str]) -> Optional[str]:
    """`5ms`, `0.5ms`, `200us`, `5` (ms); `0` or empty means none."""
    if text is None or str(text).strip() in ("", "0", "0ms"):
        return None
    match = _DELAY.match(str(text))
    if not match:
        raise ValueError(f"bad delay {text!r}: expected e.g. 5ms")
    return f"{match.group(1)}{match.group(2) or 'ms'}"


@dataclasses.dataclass
class Config:
    """Everything one invocation of experiment.py measures."""

    environment: str  # "mininet" or "local"
    size: int  # file size, bytes
    peers: List[int]
    runs: int
    bw: float  # every link's rate, Mbit/s (10^6 bit/s)
    modes: List[str]
    delay: Optional[str] = None
    loss: float = 0.0
    cpu: Optional[float] = None
    switch: str = "auto"
    piece_length: str = "auto"
    unchoke_slots: Optional[int] = None
    seeder_unchoke_slots: Optional[int] = None
    super_seed: bool = True  # the seeder runs `peer seed --super-seed`
    max_peers: Optional[int] = None
    timeout: Optional[float] = None
    log_level: Optional[str] = None
    events: bool = False  # every peer writes --events to the trial's log folder
    links: Optional[str] = None  # host link classes (links.py), e.g. 15x1/16mbit,15x4/32mbit
    arrivals: str = "all"  # when hosts start (arrivals.py): all, stagger:S, poisson:M
    arrival_seed: int = 1
    leave_on_complete: bool = False  # a host stops (no --seed) once it has the file
    client: str = "ours"  # the peer-to-peer client of every host: ours or another (other_client.py)
    preset: Optional[str] = None
    cluster: Optional[List[str]] = None  # Mininet Cluster Edition: the servers, this machine first
    seeder_server: Optional[str] = None  # where h0 runs (default: the first server)
    trunk_bw: Optional[float] = None  # Mbit/s of each trunk between servers (None: unshaped)
    tcp: str = "system"  # TCP congestion control in the emulated hosts, or "system": the machine's own

    @property
    def file_bits(self) -> float:
        return self.size * 8.0

    @property
    def rate_bits(self) -> float:
        """Each link's rate in bits per second."""
        return self.bw * 1e6

    @property
    def rate_flag(self) -> str:
        """The same rate as `peer` reads it: bits per second with a decimal suffix."""
        return link_classes.rate_flag(self.bw)

    def hosts(self, n: int) -> List[link_classes.LinkClass]:
        """The link of each of h1..hN: its class from --links, else --bw both ways."""
        return link_classes.hosts(link_classes.classes_of(self.links), n, self.bw)

    def offsets(self, n: int) -> List[float]:
        """When h1..hN start, seconds after h1 (--arrivals)."""
        return arrival_schedules.offsets(arrival_schedules.parse(self.arrivals), n, self.arrival_seed)

    def placement(self, n: int) -> Optional[List[str]]:
        """With --cluster, the server of each of h1..hN (placement.py)."""
        if not self.cluster:
            return None
        return cluster_placement.place(self.cluster, self.seeder_server or self.cluster[0], n)

    def bound(self, mode: str, n: int) -> float:
        """The fluid bound of `mode` at N, with each host's own rates and start
        (and, with --cluster and --trunk-bw, the trunks' own bound)."""
        return link_classes.bound_of(self.to_json())(mode, n)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by experiment.py (and, in part, topo.py)."""
    parser.add_argument("--preset", choices=sorted(PRESETS), help="lab (default: 1 GiB, N 1,2,4,6, 3 runs) or quick (16 MiB, N 1,3, 1 run)")
    parser.add_argument("--peers", help="the values of N, comma-separated (lab: 1,2,4,6)")
    parser.add_argument("--size", help="file size, bytes with K/M/G (powers of 1024) (lab: 1G)")
    parser.add_argument("--bw", type=float, help="every link's rate in Mbit/s (default 100)")
    parser.add_argument("--delay", help="one-way delay per link, e.g. 5ms (Mininet, needs netem; default none)")
    parser.add_argument("--loss", type=float, default=0.0, help="loss per link in percent (Mininet, needs netem; default 0)")
    parser.add_argument("--runs", type=int, help="repetitions of every (mode, N) (lab: 3)")
    parser.add_argument("--modes", default="cs,p2p", help="cs, p2p or cs,p2p (default)")
    parser.add_argument("--arrivals", default="all",
                        help="when hosts start: all (default), stagger:SECONDS or poisson:MEAN_SECONDS")
    parser.add_argument("--arrival-seed", type=int, default=1, help="the seed of --arrivals poisson (default 1)")
    parser.add_argument("--leave-on-complete", action="store_true",
                        help="peer-to-peer: a host stops the moment it has the file (no seeding)")
    parser.add_argument("--client", choices=list(CLIENTS), default="ours",
                        help="peer-to-peer: every host (seeder and leechers) runs this client (default ours; "
                             "transmission in Mininet only)")
    parser.add_argument("--cluster", metavar="localhost,SERVER[,...]",
                        help="Mininet Cluster Edition: spread the hosts over these servers (this machine first), "
                             "reached by ssh (README: several machines)")
    parser.add_argument("--seeder-server", help="--cluster: the server of h0, the seeder (default: the first)")
    parser.add_argument("--trunk-bw", type=float,
                        help="--cluster: shape each trunk between servers to this many Mbit/s and count it in the "
                             "bound (default: unshaped)")
    parser.add_argument("--tcp", metavar="NAME",
                        help="TCP congestion control in every emulated host (Mininet): cubic (default, Linux's "
                             "default), reno, bbr, ..., or system: this machine's own")
    parser.add_argument("--links", help="host link classes COUNTxUP/DOWN, e.g. 15x1/16mbit,15x4/32mbit "
                                        "(N is then their total; the server keeps --bw)")


def from_arguments(args: argparse.Namespace, environment: str) -> Config:
    """The preset (lab unless named), then every option given on top of it."""
    preset = PRESETS[args.preset or "lab"]
    runs = args.runs if args.runs is not None else preset["runs"]
    if runs < 1:
        raise ValueError("--runs must be at least 1")
    bw = args.bw if args.bw is not None else preset["bw"]
    if not 0 < bw <= 1000:
        raise ValueError("--bw must be in (0, 1000] Mbit/s")
    if not 0 <= args.loss < 100:
        raise ValueError("--loss must be a percentage in [0, 100)")
    delay = parse_delay(args.delay)
    peers = parse_peers(args.peers) if args.peers else list(preset["peers"])
    links = getattr(args, "links", None)
    if links:
        total = sum(c.count for c in link_classes.parse(links))
        if args.peers and peers != [total]:
            raise ValueError(f"--links names {total} hosts: --peers must be {total} or left out")
        peers = [total]
    if environment == "local" and getattr(args, "client", "ours") == "transmission":
        raise ValueError("--client transmission needs Mininet: Transmission ignores peers on 127.0.0.0/8")
    cluster = getattr(args, "cluster", None)
    servers = cluster_placement.parse_servers(cluster) if cluster else None
    seeder_server = getattr(args, "seeder_server", None)
    trunk_bw = getattr(args, "trunk_bw", None)
    if (seeder_server or trunk_bw is not None) and not servers:
        raise ValueError("--seeder-server and --trunk-bw are for --cluster")
    if servers and environment == "local":
        raise ValueError("--cluster runs Mininet on every server; it cannot be --local")
    if servers and seeder_server and seeder_server not in servers:
        raise ValueError(f"--seeder-server {seeder_server} is not one of --cluster's servers")
    if trunk_bw is not None and not 0 < trunk_bw <= 10_000:
        raise ValueError("--trunk-bw must be in (0, 10000] Mbit/s")
    if environment == "local" and (delay or args.loss):
        # Refused before anything is made (the seed, the results folder).
        raise ValueError("--delay and --loss need Mininet (netem); --local emulates only link rates")
    return Config(
        environment=environment,
        size=parse_size(args.size or preset["size"]),
        peers=peers,
        runs=runs,
        bw=bw,
        modes=parse_modes(args.modes),
        delay=delay,
        loss=args.loss,
        preset=args.preset or "lab",
        links=links or None,
        arrivals=arrival_schedules.parse(getattr(args, "arrivals", "all")).kind_text(),
        arrival_seed=getattr(args, "arrival_seed", 1),
        leave_on_complete=getattr(args, "leave_on_complete", False),
        client=getattr(args, "client", "ours"),
        cluster=servers,
        seeder_server=(seeder_server or servers[0]) if servers else None,
        trunk_bw=trunk_bw,
        tcp=parse_tcp(getattr(args, "tcp", None), environment),
    )
