"""Checks a results folder as CI does: every (mode, N) asked for has its
record, every run completed, every copy verified, every host row is whole.

    /usr/bin/python3 -m study.check DIR     (from mininet/)

Prints one line per check (`ok` or `FAIL`) and exits 1 if any failed.
"""

import json
import os
import sys
from typing import List, Tuple

from . import plot, results


def check(folder: str) -> List[Tuple[str, bool, str]]:
    checks = []
    try:
        with open(os.path.join(folder, "summary.json")) as data:
            summary = json.load(data)
        hosts = results.read_csv(os.path.join(folder, "hosts.csv"))
    except (OSError, ValueError) as error:
        return [(f"{folder}: results readable", False, str(error))]
    cfg = summary["config"]
    env = cfg["environment"]
    records = {(r["mode"], r["n"]): r for r in summary["records"]}
    for mode in cfg["modes"]:
        for n in cfg["peers"]:
            name = f"{env} {mode} N={n}"
            record = records.get((mode, n))
            if record is None:
                checks.append((name, False, "no record in summary.json"))
                continue
            rows = [h for h in hosts if h["mode"] == mode and h["n"] == n]
            whole = all(h["completed"] and h["seconds"] is not None and h["bytes"] == cfg["size"] for h in rows)
            problems = []
            if record["runs"] != cfg["runs"]:
                problems.append(f"{record['runs']} of {cfg['runs']} runs")
            if not record["complete"]:
                problems.append("a run did not complete")
            if not record["verified"]:
                problems.append("a copy did not verify")
            if len(rows) != n * cfg["runs"] or not whole:
                problems.append(f"{len(rows)} host rows, expected {n * cfg['runs']} complete ones")
            if record["median_seconds"] is None or record["bound_seconds"] is None or record["ratio"] is None:
                problems.append("time, bound or ratio missing")
            detail = "; ".join(problems) or (
                f"{record['median_seconds']:.2f} s, bound {record['bound_seconds']:.2f} s, x{record['ratio']:.2f}, all verified")
            checks.append((name, not problems, detail))
    wanted = ["tables.md", "runs.csv", "machine.txt"] + (["plot.png"] if plot.available() is None else [])
    for name in wanted:
        path = os.path.join(folder, name)
        checks.append((f"{env} {name}", os.path.isfile(path) and os.path.getsize(path) > 0, path))
    return checks


def main(argv: List[str]) -> int:
    failed = 0
    for folder in argv:
        for name, ok, detail in check(folder):
            print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
            failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
