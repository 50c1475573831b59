"""Where each host of a cluster study runs, and what the links between
servers add to the bounds (`experiment.py --cluster`). Pure: no ssh here.

The seeder's server holds h0 and one bridge; every other server holds one
bridge joined to the seeder's by a trunk (a star of trunks). h1..hN are
dealt round-robin starting with the server after the seeder's, so even
N = 1 crosses a trunk and every N of a study spreads its hosts.

A trunk is a link too. When it is shaped (`--trunk-bw C`), two more lower
bounds hold, for each server s other than the seeder's with k_s hosts:

    client-server:  k_s F / C   (every one of their copies crosses it)
    peer-to-peer:   F / C       (every piece crosses it at least once)

and the study's bound is the largest of these and the fluid bound. An
unshaped trunk adds no term; the tables then say how much it may have to
carry (`trunk_demand`), so a reader can judge whether it could bind.
"""

from typing import Dict, List, Optional, Sequence

MAX_SERVERS = 16


def parse_servers(text: str) -> List[str]:
    """`localhost,mnsrv2` -> ["localhost", "mnsrv2"]; the first must be this machine."""
    servers = [part.strip() for part in str(text).split(",") if part.strip()]
    if len(servers) < 2:
        raise ValueError(f"--cluster {text!r}: name at least two servers, this machine (localhost) first")
    if servers[0] != "localhost":
        raise ValueError(f"--cluster {text!r}: the first server must be localhost (this machine)")
    if len(set(servers)) != len(servers):
        raise ValueError(f"--cluster {text!r}: a server is named twice")
    if len(servers) > MAX_SERVERS:
        raise ValueError(f"--cluster names {len(servers)} servers; at most {MAX_SERVERS}")
    for name in servers:
        if not all(c.isalnum() or c in "-._" for c in name) or name.startswith("-"):
            raise ValueError(f"--cluster: bad server name {name!r}")
    return servers


def place(servers: Sequence[str], seeder_server: str, n: int) -> List[str]:
    """The server of each of h1..hN: round-robin from the one after the seeder's."""
    if seeder_server not in servers:
        raise ValueError(f"the seeder's server {seeder_server!r} is not one of {', '.join(servers)}")
    first = (list(servers).index(seeder_server) + 1) % len(servers)
    return [servers[(first + i) % len(servers)] for i in range(n)]


def counts(servers: Sequence[str], placement: Sequence[str]) -> Dict[str, int]:
    """Hosts per server (every server named, even with none)."""
    return {s: sum(1 for p in placement if p == s) for s in servers}


def trunk_bound(mode: str, file_bits: float, placement: Sequence[str], seeder_server: str,
                trunk_mbit: Optional[float]) -> float:
    """The trunks' own lower bound (module docs); 0 when they are unshaped."""
    if not trunk_mbit:
        return 0.0
    if trunk_mbit <= 0:
        raise ValueError("a trunk's rate must be positive")
    far = [sum(1 for p in placement if p == s) for s in dict.fromkeys(placement) if s != seeder_server]
    if not far:
        return 0.0
    rate = trunk_mbit * 1e6
    if mode == "cs":
        return max(k * file_bits / rate for k in far)
    if mode == "p2p":
        return file_bits / rate
    raise ValueError(f"unknown mode {mode!r}")


def trunk_demand(placement: Sequence[str], seeder_server: str, server_mbit: float,
                 ups: Sequence[float], downs: Sequence[float]) -> Dict[str, float]:
    """Per server other than the seeder's: the most its trunk can be asked to
    carry toward it, in Mbit/s: the least of what its hosts can download and
    what everyone else (the seeder included) can upload."""
    if not (len(placement) == len(ups) == len(downs)):
        raise ValueError("one server, upload and download per host")
    demand = {}
    for server in dict.fromkeys(placement):
        if server == seeder_server:
            continue
        into = sum(d for p, d in zip(placement, downs) if p == server)
        out_there = server_mbit + sum(u for p, u in zip(placement, ups) if p != server)
        demand[server] = min(into, out_there)
    return demand


TRUNKS = ("gre", "vxlan", "ssh")


def choose_trunk(kinds: dict, wanted: str = "auto") -> str:
    """The link between servers: GRE if every server's kernel has it, else
    VXLAN, else an SSH tunnel (`kinds`: server -> set of kinds it can make);
    `wanted` other than auto is taken if every server can make it."""
    if wanted != "auto":
        if wanted != "ssh" and any(wanted not in k for k in kinds.values()):
            missing = [s for s, k in kinds.items() if wanted not in k]
            raise ValueError(f"--trunk-link {wanted}: not supported by the kernel on {', '.join(missing)}")
        return wanted
    for kind in ("gre", "vxlan"):
        if all(kind in k for k in kinds.values()):
            return kind
    return "ssh"
