"""What a study writes: two CSV files, the Markdown tables and summary.json.

- `hosts.csv`: one row per host per run (the raw measurements);
- `runs.csv`: one row per (mode, N, run): overall time, bound, server bytes;
- `summary.json`: one record per (mode, N): the median overall time over the
  runs, the fluid bound, their ratio, and whether every copy verified;
- `tables.md`: the lab write-up tables, built from the rows above only, so
  `experiment.py --report DIR` can rebuild them from the CSV files.
"""

import csv
import json
import statistics
from typing import Dict, Iterable, List, Optional

from . import bounds

HOST_COLUMNS = [
    "environment", "mode", "n", "run", "host", "completed", "seconds", "own_seconds", "start_offset",
    "bytes", "verified", "peers", "uploaded", "downloaded", "hash_failures", "exit_code", "error", "link",
    "server",
]
RUN_COLUMNS = [
    "environment", "mode", "n", "run", "overall_seconds", "bound_seconds", "ratio", "server_bytes",
    "complete", "verified", "cpu_idle_min", "cpu_seconds_below", "cpu_seconds", "fidelity_met", "cpu_steal_max",
    "error",
]
_INTS = {"n", "run", "bytes", "peers", "uploaded", "downloaded", "hash_failures", "exit_code", "server_bytes",
         "cpu_seconds_below", "cpu_seconds"}
_FLOATS = {"seconds", "own_seconds", "start_offset", "overall_seconds", "bound_seconds", "ratio", "cpu_idle_min",
           "cpu_steal_max"}
_BOOLS = {"completed", "verified", "complete", "fidelity_met"}
MODE_NAMES = {"cs": "client-server", "p2p": "peer-to-peer"}


def host_rows(environment: str, trial) -> List[dict]:
    rows = []
    for h in trial.hosts:
        rows.append({
            "environment": environment, "mode": trial.mode, "n": trial.n, "run": trial.run, "host": h.host,
            "completed": h.completed, "seconds": h.seconds, "own_seconds": h.own_seconds,
            "start_offset": h.start_offset, "bytes": h.bytes, "verified": h.verified, "peers": h.peers,
            "uploaded": h.uploaded, "downloaded": h.downloaded, "hash_failures": h.hash_failures, "exit_code": h.exit_code, "error": h.error,
            "link": h.link, "server": h.server,
        })
    return rows


def run_row(environment: str, trial) -> dict:
    overall = trial.overall
    return {
        "environment": environment, "mode": trial.mode, "n": trial.n, "run": trial.run,
        "overall_seconds": overall, "bound_seconds": trial.bound,
        "ratio": overall / trial.bound if overall is not None else None,
        "server_bytes": trial.server_bytes, "complete": trial.complete, "verified": trial.verified,
        "cpu_idle_min": trial.cpu.get("cpu_idle_min"), "cpu_seconds_below": trial.cpu.get("cpu_seconds_below"),
        "cpu_seconds": trial.cpu.get("cpu_seconds"), "fidelity_met": trial.cpu.get("fidelity_met"),
        "cpu_steal_max": trial.cpu.get("cpu_steal_max"),
        "error": trial.error or "; ".join(f"{h.host}: {h.error}" for h in trial.hosts if h.error),
    }


def write_csv(path: str, rows: Iterable[dict], columns: List[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})


def _typed(key: str, text: str):
    if text == "":
        return None
    if key in _INTS:
        return int(text)
    if key in _FLOATS:
        return float(text)
    if key in _BOOLS:
        return text == "True"
    return text


def read_csv(path: str) -> List[dict]:
    with open(path, newline="", encoding="utf-8") as data:
        return [{k: _typed(k, v) for k, v in row.items()} for row in csv.DictReader(data)]


def summarize(run_rows: List[dict], modes: List[str], peers: List[int], file_bits: float, rate_bits: float,
              bound_of=None) -> List[dict]:
    """One record per (mode, N), for every pair asked for, measured or not;
    `bound_of(mode, n)` when hosts have links of their own (`links`), else
    every link at `rate_bits`."""
    records = []
    for mode in modes:
        for n in peers:
            rows = [r for r in run_rows if r["mode"] == mode and r["n"] == n]
            times = [r["overall_seconds"] for r in rows if r["complete"] and r["overall_seconds"] is not None]
            sent = [r["server_bytes"] for r in rows if r["server_bytes"] is not None]
            if bound_of:
                bound = bound_of(mode, n)
            else:
                bound = bounds.bound(mode, n, file_bits, rate_bits, rate_bits, rate_bits)
            median = statistics.median(times) if times else None
            checked = [r for r in rows if r.get("fidelity_met") is not None]
            idle = [r["cpu_idle_min"] for r in checked if r.get("cpu_idle_min") is not None]
            stolen = [r["cpu_steal_max"] for r in checked if r.get("cpu_steal_max") is not None]
            records.append({
                "mode": mode, "n": n, "runs": len(rows), "complete_runs": len(times),
                "times_seconds": times,
                "median_seconds": median,
                "bound_seconds": bound,
                "ratio": median / bound if median is not None else None,
                "complete": bool(rows) and len(times) == len(rows),
                "verified": bool(rows) and all(r["verified"] for r in rows),
                "server_bytes_median": statistics.median(sent) if sent else None,
                "server_copies": statistics.median(sent) / (file_bits / 8) if sent else None,
                # Mininet-HiFi's check, per run (fidelity.py): how many runs had
                # at least 35% CPU idle in every second, of those sampled.
                "fidelity_runs_met": sum(1 for r in checked if r["fidelity_met"]),
                "fidelity_runs_checked": len(checked),
                "fidelity_met": all(r["fidelity_met"] for r in checked) if checked else None,
                "cpu_idle_min": min(idle) if idle else None,
                # the most stolen second (fidelity.py), where it was recorded
                **({"cpu_steal_max": max(stolen)} if stolen else {}),
            })
    return records


def write_summary(path: str, config: dict, machine: Dict[str, str], records: List[dict], notes: List[str] = ()) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"config": config, "machine": machine, "notes": list(notes), "records": records}, out, indent=2)
        out.write("\n")


def _f(value: Optional[float], digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _table(header: List[str], rows: List[List[str]], align: Optional[List[str]] = None) -> str:
    align = align or ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def per_n_table(records: List[dict]) -> str:
    """Per N: both times, both bounds, measured/bound, the speed-up and the server's load."""
    by = {(r["mode"], r["n"]): r for r in records}
    peers = sorted({r["n"] for r in records})
    header = ["N", "client-server (s)", "peer-to-peer (s)", "CS bound (s)", "P2P bound (s)",
              "CS measured/bound", "P2P measured/bound", "P2P speed-up", "server sent, CS (× F)", "server sent, P2P (× F)"]
    # Studies from before the CPU was sampled have no such column.
    sampled = any(r.get("fidelity_runs_checked") for r in records)
    if sampled:
        header.append("runs with ≥ 35% idle CPU")
    rows = []
    for n in peers:
        cs, p2p = by.get(("cs", n)), by.get(("p2p", n))
        cs_t = cs["median_seconds"] if cs else None
        p2p_t = p2p["median_seconds"] if p2p else None
        rows.append([
            str(n), _f(cs_t), _f(p2p_t),
            _f(cs["bound_seconds"]) if cs else "—", _f(p2p["bound_seconds"]) if p2p else "—",
            _f(cs["ratio"]) if cs else "—", _f(p2p["ratio"]) if p2p else "—",
            _f(cs_t / p2p_t) if cs_t and p2p_t else "—",
            _f(cs["server_copies"]) if cs else "—", _f(p2p["server_copies"]) if p2p else "—",
        ] + ([_fidelity_cell([r for r in (cs, p2p) if r])] if sampled else []))
    return _table(header, rows)


def _fidelity_cell(records: List[dict]) -> str:
    """`5/6` runs met the idle check (of those sampled), or — if none was."""
    checked = sum(r.get("fidelity_runs_checked", 0) for r in records)
    met = sum(r.get("fidelity_runs_met", 0) for r in records)
    return f"{met}/{checked}" if checked else "—"


def _steal_recorded(run_rows: List[dict]) -> bool:
    """Whether any run recorded steal (studies before it did not)."""
    return any(r.get("cpu_steal_max") is not None for r in run_rows)


def fidelity_table(run_rows: List[dict]) -> str:
    """Per run: the lowest second's CPU idle, the seconds below 35%, the
    verdict, and, where recorded, the most stolen second (a virtual
    machine's host's share)."""
    stolen = _steal_recorded(run_rows)
    header = ["mode", "N", "run", "lowest idle (%)", "seconds below 35%", "met"]
    align = ["---", "---:", "---:", "---:", "---:", "---"]
    if stolen:
        header.append("most stolen (%)")
        align.append("---:")
    body = []
    for r in run_rows:
        met = r.get("fidelity_met")
        idle = r.get("cpu_idle_min")
        below, seconds = r.get("cpu_seconds_below"), r.get("cpu_seconds")
        row = [MODE_NAMES.get(r["mode"], r["mode"]), str(r["n"]), str(r["run"]),
               _f(idle * 100, 0) if idle is not None else "—",
               f"{below} of {seconds}" if seconds else "—",
               "—" if met is None else ("yes" if met else "**no**")]
        if stolen:
            steal = r.get("cpu_steal_max")
            row.append(_f(steal * 100, 0) if steal is not None else "—")
        body.append(row)
    return _table(header, body, align)


def per_host_table(host_rows: List[dict], mode: str, n: int, file_bits: float, own: bool = False) -> str:
    """Per host: its download time in each run, their average and the average
    speed; from its own start when hosts arrive over time (`own`)."""
    key = "own_seconds" if own else "seconds"
    rows = [r for r in host_rows if r["mode"] == mode and r["n"] == n]
    runs = sorted({r["run"] for r in rows})
    hosts = sorted({r["host"] for r in rows}, key=lambda h: (len(h), h))
    received = any(r.get("downloaded") is not None for r in rows)
    where = {r["host"]: r["server"] for r in rows if r.get("server")}
    header = ["host"] + (["server"] if where else []) + [f"run {k} (s)" for k in runs] + ["average (s)", "average speed (Mbit/s)"]
    if received:
        header.append("received (× F)")
    body = []
    for host in hosts:
        cells, times = [], []
        for k in runs:
            row = next((r for r in rows if r["host"] == host and r["run"] == k), None)
            ok = row is not None and row["completed"] and row[key] is not None
            cells.append(_f(row[key]) + ("" if row["verified"] else " ✗") if ok else "—")
            if ok:
                times.append(row[key])
        average = sum(times) / len(times) if times else None
        body.append([host] + ([where.get(host, "")] if where else []) + cells + [_f(average), _f(file_bits / average / 1e6, 1) if average else "—"])
        if received:
            got = [r["downloaded"] for r in rows if r["host"] == host and r.get("downloaded") is not None]
            body[-1].append(_f(sum(got) / len(got) / (file_bits / 8)) if got else "—")
    overall = []
    for k in runs:
        done = [r["seconds"] for r in rows if r["run"] == k and r["completed"] and r["seconds"] is not None]
        whole = len(done) == len([r for r in rows if r["run"] == k]) and done
        overall.append(_f(max(done)) if whole else "—")
    finished = [float(c) for c in overall if c != "—"]
    mean = sum(finished) / len(finished) if finished else None
    body.append(["**overall (last host)**"] + ([""] if where else []) + overall + [_f(mean), _f(file_bits / mean / 1e6, 1) if mean else "—"])
    if received:
        body[-1].append("")
    return _table(header, body)


def per_class_table(host_rows: List[dict], file_bits: float, own: bool = False) -> str:
    """With link classes: per mode, N and class, the hosts' times over all runs
    (median and slowest) against the class's own floor, F over its download."""
    header = ["mode", "N", "link (up/down)", "hosts", "median host (s)", "slowest host (s)", "F / d (s)"]
    body = []
    keys = sorted({(r["mode"], r["n"]) for r in host_rows if r.get("link")})
    for mode, n in keys:
        rows = [r for r in host_rows if r["mode"] == mode and r["n"] == n and r.get("link")]
        for label in dict.fromkeys(r["link"] for r in rows):
            mine = [r for r in rows if r["link"] == label]
            key = "own_seconds" if own else "seconds"
            times = [r[key] for r in mine if r["completed"] and r[key] is not None]
            down = _link_down_bits(label)
            body.append([MODE_NAMES.get(mode, mode), str(n), label, str(len({r["host"] for r in mine})),
                         _f(statistics.median(times)) if times else "—",
                         _f(max(times)) if len(times) == len(mine) and times else "—",
                         _f(file_bits / down) if down else "—"])
    return _table(header, body, ["---", "---:", "---", "---:", "---:", "---:", "---:"])


def _link_down_bits(label: str) -> Optional[float]:
    """`1/16 Mbit/s` -> 16e6."""
    try:
        return float(label.split("/")[1].split()[0]) * 1e6
    except (IndexError, ValueError):
        return None


def markdown(title_lines: List[str], host_rows: List[dict], records: List[dict], file_bits: float,
             run_rows: Optional[List[dict]] = None, own_times: bool = False) -> str:
    parts = ["# Client-server against peer-to-peer", ""] + title_lines + ["", "## Overall time per N", "",
             "Median over the runs of the time until the last host had the file; bounds from the fluid model.", "",
             per_n_table(records), ""]
    since = ("the host's own start (hosts arrive over time; *overall* is still from the first start)" if own_times
             else "the start of the first download")
    parts += ["## Per host", "", f"Seconds from {since} until the host's copy was complete "
              "(✗: its SHA-1 differed from the seed; —: it did not finish). Peer-to-peer: *received* is what the "
              "host downloaded, duplicate blocks included, as it announced to the tracker on completion, in copies "
              "of the file (1.00: no duplicates).", ""]
    for r in records:
        if not any(h["mode"] == r["mode"] and h["n"] == r["n"] for h in host_rows):
            continue
        parts += [f"### {MODE_NAMES[r['mode']]}, N = {r['n']}", "", per_host_table(host_rows, r["mode"], r["n"], file_bits, own_times), ""]
    if any(h.get("link") for h in host_rows):
        parts += ["## Per link class", "", "Each class's hosts (upload/download), all runs together; the overall bound "
                  "is the general one, max(F/u_s, F/d_min, N·F/(u_s + Σu_i)).", "", per_class_table(host_rows, file_bits, own_times), ""]
    if run_rows and any(r.get("fidelity_met") is not None for r in run_rows):
        parts += ["## Machine fidelity", "", "The machine's CPU idle, sampled every second of each run (/proc/stat, all "
                  "cores). Mininet-HiFi's criterion: at least 35% idle in every second. A run that missed it may have "
                  "waited for the CPU rather than the links, so its times are an upper bound on the network's."
                  + (" *Most stolen*: the largest share of a second the virtual machine's host gave another guest "
                     "(steal, counted as not idle)." if _steal_recorded(run_rows) else ""), "",
                  fidelity_table(run_rows), ""]
    return "\n".join(parts)
