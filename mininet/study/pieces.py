"""What our peers recorded with `--events` (see peer/src/bt/events.rs), read
back per trial and drawn: when each host got each piece and from whom.

The picture (pieces-<mode>-n<N>-r<run>.png, one per trial with events) has
three panels:
- a piece x host map: one column per piece, in the order the pieces first
  left the seeder, one row per host, fastest at the top; the colour is when
  the host had the piece, and a piece it got from the seeder itself is a
  black dot. Super-seeding shows as about one dot per column; rarest-first
  as colours that change across a column faster than along a row;
- the seeder's upload over time (what the hosts got from it, per second)
  against its link's rate;
- each host's completion time as a cumulative distribution.

Times are seconds since each process started (all start within a few
milliseconds of each other)."""

import glob
import json
import os
from typing import Dict, List, Optional

# A line longer than this is not one of ours.
MAX_LINE = 1 << 16


class Host:
    def __init__(self, name: str):
        self.name = name
        self.peer_id: Optional[str] = None
        self.pieces = 0
        self.piece_length = 0
        # (t, piece, [names of the hosts that sent blocks of it])
        self.arrivals: List[tuple] = []

    @property
    def done(self) -> Optional[float]:
        """When the last piece verified, if the host has every piece."""
        got = {piece for _, piece, _ in self.arrivals}
        if self.pieces and len(got) == self.pieces:
            return max(t for t, _, _ in self.arrivals)
        return None


def _lines(path: str):
    with open(path, encoding="utf-8", errors="replace") as data:
        for line in data:
            if len(line) > MAX_LINE:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut short when the process was stopped
            if isinstance(event, dict):
                yield event


def load(log_dir: str) -> Dict[str, Host]:
    """Every `<name>.events.jsonl` in a trial's log folder, with senders named
    by host (an id no host of ours had, another client's, is kept as is)."""
    hosts: Dict[str, Host] = {}
    raw: Dict[str, List[dict]] = {}
    for path in sorted(glob.glob(os.path.join(log_dir, "*.events.jsonl"))):
        name = os.path.basename(path)[: -len(".events.jsonl")]
        host = hosts[name] = Host(name)
        raw[name] = []
        for event in _lines(path):
            kind = event.get("event")
            if kind == "start":
                host.peer_id = str(event.get("peer_id"))
                host.pieces = int(event.get("pieces", 0))
                host.piece_length = int(event.get("piece_length", 0))
            elif kind == "piece":
                raw[name].append(event)
    names = {h.peer_id: h.name for h in hosts.values() if h.peer_id}
    for name, events in raw.items():
        for event in events:
            senders = [names.get(str(s), str(s)) for s in event.get("from", []) if s is not None]
            try:
                hosts[name].arrivals.append((float(event["t"]), int(event["piece"]), senders))
            except (KeyError, TypeError, ValueError):
                continue
    return hosts


def seeder_copies(hosts: Dict[str, Host], seeder: str = "seeder") -> Dict[int, int]:
    """How many hosts got each piece with blocks from the seeder."""
    copies: Dict[int, int] = {}
    for host in hosts.values():
        for _, piece, senders in host.arrivals:
            if seeder in senders:
                copies[piece] = copies.get(piece, 0) + 1
    return copies


def seeder_upload(hosts: Dict[str, Host], seeder: str = "seeder", step: float = 1.0) -> List[float]:
    """Bytes per second the hosts got from the seeder, per `step` seconds (a
    piece from several senders counts for each in proportion)."""
    length = max((h.piece_length for h in hosts.values()), default=0)
    bins: List[float] = []
    for host in hosts.values():
        for t, _, senders in host.arrivals:
            if seeder in senders:
                slot = int(t // step)
                bins.extend([0.0] * (slot + 1 - len(bins)))
                bins[slot] += length / len(senders) / step
    return bins


def draw(path: str, hosts: Dict[str, Host], link_bits: float, title: str, seeder: str = "seeder") -> bool:
    """The three panels; False (nothing drawn) when no host recorded a piece."""
    leechers = [h for h in hosts.values() if h.name != seeder and h.arrivals]
    if not leechers:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy

    first: Dict[int, float] = {}
    for host in leechers:
        for t, piece, senders in host.arrivals:
            if seeder in senders:
                first[piece] = min(first.get(piece, t), t)
    pieces = max(h.pieces for h in leechers)
    order = sorted(range(pieces), key=lambda p: first.get(p, float("inf")))
    column = {piece: i for i, piece in enumerate(order)}
    leechers.sort(key=lambda h: h.done if h.done is not None else float("inf"))
    when = numpy.full((len(leechers), pieces), numpy.nan)
    dots_x, dots_y = [], []
    for row, host in enumerate(leechers):
        for t, piece, senders in host.arrivals:
            if 0 <= piece < pieces:
                when[row, column[piece]] = t
                if seeder in senders:
                    dots_x.append(column[piece])
                    dots_y.append(row)

    fig = plt.figure(figsize=(10, 8.5), dpi=110)
    grid = fig.add_gridspec(2, 2, height_ratios=[2.2, 1], hspace=0.35, wspace=0.25)
    ax = fig.add_subplot(grid[0, :])
    image = ax.imshow(when, aspect="auto", interpolation="nearest", cmap="viridis", origin="upper")
    ax.scatter(dots_x, dots_y, s=3, c="black", marker="o", linewidths=0, label="from the seeder")
    ax.set_xlabel("piece, in the order it first left the seeder")
    ax.set_ylabel("host, first done at the top")
    ax.set_yticks(range(len(leechers)))
    ax.set_yticklabels([h.name for h in leechers], fontsize=6)
    ax.legend(loc="upper right", fontsize=8, markerscale=3)
    fig.colorbar(image, ax=ax, label="seconds: when the host had the piece")
    ax.set_title(title, fontsize=9)

    up = fig.add_subplot(grid[1, 0])
    rates = seeder_upload(hosts, seeder)
    up.plot([i + 0.5 for i in range(len(rates))], [r * 8 / 1e6 for r in rates], color="tab:blue", label="seeder's upload")
    up.axhline(link_bits / 1e6, color="grey", linestyle="--", label="its link")
    up.set_xlabel("seconds")
    up.set_ylabel("Mbit/s")
    up.legend(fontsize=8)
    copies = seeder_copies(hosts, seeder)
    sent = sum(copies.values()) / pieces if pieces else 0
    up.set_title(f"the seeder sent {sent:.2f} copies of each piece", fontsize=9)

    cdf = fig.add_subplot(grid[1, 1])
    times = sorted(h.done for h in leechers if h.done is not None)
    cdf.step(times, [(i + 1) / len(leechers) for i in range(len(times))], where="post", color="tab:green")
    cdf.set_xlabel("seconds to the whole file")
    cdf.set_ylabel("share of hosts done")
    cdf.set_ylim(0, 1.02)
    cdf.set_title("completion times", fontsize=9)
    fig.savefig(path)
    plt.close(fig)
    return True
