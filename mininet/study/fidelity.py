"""Was the machine idle enough for a trial's figures to be the network's?

An emulated network is only as good as the machine under it: when every
core is busy, packets wait for a CPU, not for the link, and times grow for
reasons the fluid model knows nothing of. Mininet-HiFi (Handigol et al.,
CoNEXT 2012) checks this from the machine's side: a run counts only if the
CPU had at least 35% idle in every second of it.

`Sampler` reads the machine-wide counters of /proc/stat once a second during
a trial (a thread; no child process); `idle_shares` turns consecutive
samples into each second's idle share (idle + iowait over all time), and
`summarize` gives what the tables and summary.json record per run: the
lowest second, how many seconds fell below the threshold out of how many,
and whether the run met the criterion. `write_series` keeps each second's
share beside the trial's logs (`cpu-idle.csv`), so that a reader can see
when in a run the machine was busy.

On a virtual machine some of the time the study does not get is *steal*:
the hypervisor ran another guest on our cores. It counts against idle (the
CPU was not ours to use), and the most stolen second is recorded beside the
verdict, so that a missed check can be told apart: our processes busy, or
the machine's host.
"""

import time

import threading
from typing import List, Optional, Tuple

THRESHOLD = 0.35  # Mininet-HiFi: at least 35% idle in every second


Counters = Tuple[int, int, int]  # (idle, total, steal) jiffies


def read_counters(path: str = "/proc/stat") -> Optional[Counters]:
    """(idle, total, steal) jiffies over all CPUs since boot; None if
    unreadable."""
    try:
        with open(path) as stat:
            return parse_counters(stat.readline())
    except OSError:
        return None


def parse_counters(line: str) -> Optional[Counters]:
    """(idle, total, steal) from /proc/stat's first line; None if it is
    not that line."""
    fields = line.split()
    if not fields or fields[0] != "cpu":
        return None
    try:
        values = [int(v) for v in fields[1:]]
    except ValueError:
        return None
    # user nice system idle iowait irq softirq steal (guest time is already
    # counted in user and nice, so it is left out of the total)
    values = values[:8]
    if len(values) < 4:
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    steal = values[7] if len(values) > 7 else 0
    return idle, sum(values), steal


def _shares(samples: List[Counters], field: int) -> List[float]:
    """Each interval's share of `field` (0: idle, 2: steal) in its total.
    An interval in which no time passed (or the counters went back) is
    skipped."""
    shares = []
    for before, after in zip(samples, samples[1:]):
        elapsed = after[1] - before[1]
        part = after[field] - before[field]
        if elapsed <= 0 or part < 0:
            continue
        shares.append(min(1.0, part / elapsed))
    return shares


def idle_shares(samples: List[Counters]) -> List[float]:
    """Each interval's idle share, from consecutive samples."""
    return _shares(samples, 0)


def steal_shares(samples: List[Counters]) -> List[float]:
    """Each interval's stolen share, from consecutive samples."""
    return _shares(samples, 2)


def summarize(shares: List[float], threshold: float = THRESHOLD,
              steal: Optional[List[float]] = None) -> dict:
    """What a run records: the lowest second's idle share, the seconds below
    `threshold` and all seconds sampled, whether none fell below, and the
    most stolen second (`steal`). With no sample (a trial shorter than a
    second), nothing is claimed."""
    below = sum(1 for s in shares if s < threshold)
    return {
        "cpu_idle_min": min(shares) if shares else None,
        "cpu_seconds_below": below,
        "cpu_seconds": len(shares),
        "fidelity_met": (below == 0) if shares else None,
        "cpu_steal_max": max(steal) if steal else None,
    }


def summarize_samples(samples: List[Counters]) -> dict:
    """`summarize` over raw counter samples."""
    return summarize(idle_shares(samples), steal=steal_shares(samples))


def combine(summaries: List[dict]) -> dict:
    """One record for a trial sampled on several servers (a cluster study):
    the lowest second of any, the most seconds below of any, and met only
    if every server met the criterion (None if none was sampled)."""
    sampled = [s for s in summaries if s.get("cpu_idle_min") is not None]
    if not sampled:
        return summarize([])
    steal = [s["cpu_steal_max"] for s in sampled if s.get("cpu_steal_max") is not None]
    return {
        "cpu_idle_min": min(s["cpu_idle_min"] for s in sampled),
        "cpu_seconds_below": max(s["cpu_seconds_below"] for s in sampled),
        "cpu_seconds": max(s["cpu_seconds"] for s in sampled),
        "fidelity_met": all(s["fidelity_met"] for s in sampled),
        "cpu_steal_max": max(steal) if steal else None,
    }


class Sampler:
    """Samples /proc/stat every `period` seconds between `start` and `stop`."""

    def __init__(self, period: float = 1.0, read=read_counters):
        self.period = period
        self.read = read
        self.samples: List[Counters] = []
        self.times: List[float] = []  # time.monotonic() of each sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-idle", daemon=True)

    def _run(self):
        while True:
            sample = self.read()
            if sample is not None:
                self.samples.append(sample)
                self.times.append(time.monotonic())
            if self._stop.wait(self.period):
                break

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> dict:
        """Stops sampling (taking one last sample) and summarizes."""
        self._stop.set()
        self._thread.join()
        last = self.read()
        if last is not None:
            self.samples.append(last)
            self.times.append(time.monotonic())
        return summarize_samples(self.samples)

    def series(self) -> List[Tuple[float, float, float]]:
        """(seconds since the first sample, idle share, stolen share of the
        interval ending then) for each interval `idle_shares` keeps."""
        out = []
        for i in range(1, len(self.samples)):
            pair = self.samples[i - 1:i + 1]
            share, steal = idle_shares(pair), steal_shares(pair)
            if share:
                out.append((self.times[i] - self.times[0], share[0], steal[0] if steal else 0.0))
        return out


def write_series(path: str, series: List[Tuple[float, float, float]]) -> None:
    """Writes `Sampler.series` as CSV: seconds, idle share, stolen share."""
    with open(path, "w") as out:
        out.write("seconds,idle,steal\n")
        for at, share, steal in series:
            out.write(f"{at:.1f},{share:.3f},{steal:.3f}\n")
