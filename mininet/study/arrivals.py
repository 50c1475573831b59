"""When each host starts (`--arrivals`), and the lower bound on the time until
the last host has the file when hosts arrive over time.

- `all`: every host at once (the lab);
- `stagger:S`: host hI starts (I - 1) x S seconds after h1;
- `poisson:M`: h1 at 0, then gaps drawn from an exponential distribution of
  mean M seconds (a Poisson process), from `--arrival-seed`, so every run of
  a study and every study with the same seed gets the same schedule.

The bound, T from h1's start until the last host is done, with arrival times
a_1 = 0 <= a_2 <= ... <= a_N, file F, server upload u_s, host i's upload u_i
and download d_i (all bits per second). Each line is a necessary condition:

1. every host must receive F after it arrives: T >= a_i + F / d_i for all i;
2. client-server: the server cannot send to a host before it arrives, so the
   copies for the hosts arriving at a_k or later, N - k + 1 of them, all leave
   the server after a_k: T >= a_k + (N - k + 1) F / u_s for every k;
3. peer-to-peer: the server must send every bit at least once: T >= F / u_s;
4. peer-to-peer: N copies must be uploaded by the server or by hosts, and
   host i can upload only after it arrives:
   N F <= u_s T + sum_i u_i max(0, T - a_i); the right side grows with T, so
   the least T that satisfies it is found by bisection.

T is the largest of these. With every a_i = 0 it is the usual fluid bound.
With `--leave-on-complete` a host stops uploading when it is done, which only
lowers what 4. counts on: the bound still holds, and is looser.
"""

import dataclasses
import random
import re
from typing import List, Optional, Sequence

_SPEC = re.compile(r"^\s*(all|stagger|poisson)\s*(?::\s*([\d.]+)\s*)?$", re.IGNORECASE)
MAX_SECONDS = 3600.0


@dataclasses.dataclass(frozen=True)
class Arrivals:
    kind: str  # all, stagger, poisson
    seconds: float = 0.0  # the gap (stagger) or the mean gap (poisson)

    def kind_text(self) -> str:
        """As --arrivals takes it: `all`, `stagger:5`."""
        return "all" if self.kind == "all" else f"{self.kind}:{self.seconds:g}"


def parse(text: Optional[str]) -> Arrivals:
    """`all`, `stagger:5`, `poisson:10`; raises ValueError with the reason."""
    match = _SPEC.match(str(text or "all"))
    if not match:
        raise ValueError(f"bad arrivals {text!r}: expected all, stagger:SECONDS or poisson:MEAN_SECONDS")
    kind, number = match.group(1).lower(), match.group(2)
    if kind == "all":
        if number is not None:
            raise ValueError("--arrivals all takes no number")
        return Arrivals("all")
    try:
        seconds = float(number) if number is not None else None
    except ValueError:
        seconds = None
    if seconds is None or not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"bad arrivals {text!r}: {kind} needs seconds in (0, {MAX_SECONDS:g}]")
    return Arrivals(kind, seconds)


def offsets(arrivals: Arrivals, n: int, seed: int = 1) -> List[float]:
    """Start times of h1..hN, seconds after h1's."""
    if arrivals.kind == "all":
        return [0.0] * n
    if arrivals.kind == "stagger":
        return [i * arrivals.seconds for i in range(n)]
    rng = random.Random(seed)
    times, now = [], 0.0
    for i in range(n):
        if i:
            now += rng.expovariate(1.0 / arrivals.seconds)
        times.append(now)
    return times


def bound(mode: str, file_bits: float, server_up: float, ups: Sequence[float], downs: Sequence[float],
          starts: Sequence[float]) -> float:
    """The bound in the module docs; rates in bits per second."""
    n = len(starts)
    if not (n == len(ups) == len(downs)) or n < 1:
        raise ValueError("one upload, download and start per host")
    if file_bits <= 0 or server_up <= 0 or min(ups) <= 0 or min(downs) <= 0 or min(starts) < 0:
        raise ValueError("sizes and rates must be positive, starts not negative")
    order = sorted(starts)
    t = max(a + file_bits / d for a, d in zip(starts, downs))
    if mode == "cs":
        return max([t] + [order[k] + (n - k) * file_bits / server_up for k in range(n)])
    if mode != "p2p":
        raise ValueError(f"unknown mode {mode!r}")
    t = max(t, file_bits / server_up)

    def uploaded(at: float) -> float:
        return server_up * at + sum(u * max(0.0, at - a) for u, a in zip(ups, starts))

    low, high = 0.0, n * file_bits / server_up  # the server alone would do it by `high`
    for _ in range(100):
        mid = (low + high) / 2
        if uploaded(mid) >= n * file_bits:
            high = mid
        else:
            low = mid
    return max(t, high)
