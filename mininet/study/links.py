"""Host link classes (`--links 15x1/16mbit,15x4/32mbit`): how many hosts have
which upload and download rate, and the fluid bound they give.

A class is COUNTxUP/DOWN: COUNT hosts, each with UP to upload and DOWN to
download. A rate is a number with `kbit`, `mbit` or `gbit` (decimal, as tc
and `peer` read them); a rate without a unit takes the other side's, else
Mbit/s. Hosts take the classes in order: h1..h15 the first class above,
h16..h30 the second. The server h0 keeps `--bw` both ways.

With classes the bound is the general one (Kurose and Ross 2.5), with u_s the
server's upload, d_min the slowest download and u_i each host's upload:

    client-server:  max(N F / u_s, F / d_min)
    peer-to-peer:   max(F / u_s, F / d_min, N F / (u_s + sum u_i))
"""

import dataclasses
import re
from typing import List, Optional

from . import arrivals, bounds, placement

_CLASS = re.compile(r"^\s*(\d+)\s*x\s*([\d.]+)\s*([kmg]bit)?\s*/\s*([\d.]+)\s*([kmg]bit)?\s*$", re.IGNORECASE)
_UNIT = {"kbit": 1e-3, "mbit": 1.0, "gbit": 1e3}
MAX_HOSTS = 1000
MAX_MBIT = 10_000.0


@dataclasses.dataclass(frozen=True)
class LinkClass:
    count: int
    up: float  # Mbit/s
    down: float  # Mbit/s

    @property
    def label(self) -> str:
        """`1/16 Mbit/s`: upload/download."""
        return f"{self.up:g}/{self.down:g} Mbit/s"


def parse(text: str) -> List[LinkClass]:
    """`15x1/16mbit,15x4/32mbit` -> two classes; raises ValueError with the reason."""
    classes = []
    for part in str(text).split(","):
        match = _CLASS.match(part)
        if not match:
            raise ValueError(f"bad link class {part.strip()!r}: expected COUNTxUP/DOWN, e.g. 15x1/16mbit")
        count, up, up_unit, down, down_unit = match.groups()
        up_unit = (up_unit or down_unit or "mbit").lower()
        down_unit = (down_unit or up_unit).lower()
        try:
            cls = LinkClass(int(count), float(up) * _UNIT[up_unit], float(down) * _UNIT[down_unit])
        except ValueError:
            raise ValueError(f"bad link class {part.strip()!r}: a rate is not a number") from None
        if cls.count < 1:
            raise ValueError(f"bad link class {part.strip()!r}: at least one host")
        for rate in (cls.up, cls.down):
            if not 0 < rate <= MAX_MBIT:
                raise ValueError(f"bad link class {part.strip()!r}: rates must be in (0, {MAX_MBIT:g}] Mbit/s")
        classes.append(cls)
    total = sum(c.count for c in classes)
    if total > MAX_HOSTS:
        raise ValueError(f"--links names {total} hosts; at most {MAX_HOSTS}")
    return classes


def hosts(classes: Optional[List[LinkClass]], n: int, bw: float) -> List[LinkClass]:
    """The class of each of h1..hN (one host each); every host at `bw` without classes."""
    if not classes:
        return [LinkClass(1, bw, bw)] * n
    each = [LinkClass(1, c.up, c.down) for c in classes for _ in range(c.count)]
    if n > len(each):
        raise ValueError(f"N = {n} but --links names only {len(each)} hosts")
    return each[:n]


def bound(mode: str, n: int, file_bits: float, server_mbit: float, host_classes: List[LinkClass],
          starts: Optional[List[float]] = None) -> float:
    """The fluid bound for `mode` with these hosts (see the module docs), or,
    when they start at different times, the bound of `arrivals`."""
    if len(host_classes) != n:
        raise ValueError(f"{len(host_classes)} host rates for N = {n}")
    ups = [c.up * 1e6 for c in host_classes]
    if starts and any(starts):
        return arrivals.bound(mode, file_bits, server_mbit * 1e6, ups, [c.down * 1e6 for c in host_classes], starts)
    down = min(c.down for c in host_classes) * 1e6
    return bounds.bound(mode, n, file_bits, server_mbit * 1e6, down, ups)


def rate_flag(mbit: float) -> str:
    """A rate as `peer` reads it: bits per second with a decimal suffix."""
    if mbit == int(mbit):
        return f"{int(mbit)}mbit"
    kbit = mbit * 1000
    if abs(kbit - round(kbit)) < 1e-9:
        return f"{int(round(kbit))}kbit"
    return str(int(round(mbit * 1e6 / 8)))  # plain bytes per second


def classes_of(cfg_links: Optional[str]) -> Optional[List[LinkClass]]:
    return parse(cfg_links) if cfg_links else None


def bound_of(cfg: dict):
    """`bound(mode, n)` for a study's config (as summary.json keeps it)."""
    classes = classes_of(cfg.get("links"))
    file_bits = cfg["size"] * 8.0
    schedule = arrivals.parse(cfg.get("arrivals") or "all")

    def of(mode: str, n: int) -> float:
        starts = arrivals.offsets(schedule, n, cfg.get("arrival_seed", 1))
        fluid = bound(mode, n, file_bits, cfg["bw"], hosts(classes, n, cfg["bw"]), starts)
        if not cfg.get("cluster") or not cfg.get("trunk_bw"):
            return fluid
        seeder = cfg.get("seeder_server") or cfg["cluster"][0]
        where = placement.place(cfg["cluster"], seeder, n)
        return max(fluid, placement.trunk_bound(mode, file_bits, where, seeder, cfg["trunk_bw"]))

    return of
