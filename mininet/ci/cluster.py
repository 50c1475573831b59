#!/usr/bin/python3
"""CI for the cluster mode (issue 18), as root on one machine: a second
server in a namespace (`mininet/cluster/netns-server.sh`), the quick preset
with `--cluster localhost,mnsrv2`, and:

- every (mode, N) complete with every copy verified, each host's server in
  hosts.csv and tables.md, the trunk link named;
- its ratios to the bounds within TOLERANCE of the one-machine Mininet run of
  the same preset (`--compare DIR`, made by mininet/ci.sh just before);
- a second cluster study started meanwhile is refused (the lock);
- afterwards no namespace, bridge, tunnel, sshd, ssh master, study process,
  study folder or lock is left, on either server.

Usage: mininet/ci/cluster.py --compare MININET_QUICK_DIR --out DIR [--bin target/release]
Prints ok/FAIL lines; exits 0 only when every check passed.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MININET = os.path.dirname(HERE)
sys.path.insert(0, MININET)

from study import check as study_check  # noqa: E402
from study import results  # noqa: E402

SERVER = "mnsrv2"
TOLERANCE = 0.20  # |cluster - one machine| <= 20% of the one-machine ratio, per (mode, N)
failures = []


def ok(condition: bool, what: str) -> None:
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def ratios(folder: str) -> dict:
    with open(os.path.join(folder, "summary.json")) as data:
        return {(r["mode"], r["n"]): r["ratio"] for r in json.load(data)["records"]}


def leftovers() -> list:
    found = []
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split()[0].split("@")[0] if line.strip() else ""
        if name in ("s1", "s2") or name.startswith(("s1-", "s2-", "h0-", "h1-", SERVER)) or "vxlan" in line:
            found.append(f"interface {name}")
    if SERVER in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout:
        found.append(f"namespace {SERVER}")
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                line = cmd.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if ("peer-lab-study-" in line or "mininet:" in line or f"peer-lab-cluster-{SERVER}/sshd" in line
                or "peer-lab-ssh-" in line):
            found.append(f"process {pid}: {line[:100]}")
    for pattern in ("/tmp/peer-lab-study-*", "/tmp/peer-lab-ssh-*", "/tmp/peer-lab-cluster-study-*.lock",
                    f"/tmp/peer-lab-cluster-{SERVER}"):
        found += [f"path {p}" for p in glob.glob(pattern)]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", required=True, help="results of the one-machine Mininet quick preset")
    parser.add_argument("--out", required=True)
    parser.add_argument("--bin", default=os.path.join(MININET, "..", "target", "release"))
    args = parser.parse_args()
    before = leftovers()
    ok(not before, f"nothing of a cluster study on this machine before the test: {before or 'none'}")
    up = subprocess.run(["bash", os.path.join(MININET, "cluster", "netns-server.sh"), "up", SERVER],
                        capture_output=True, text=True)
    ok(up.returncode == 0, f"namespace server {SERVER} up")
    if up.returncode:
        print(up.stderr, file=sys.stderr)
        return 1
    ssh_config = json.loads(up.stdout.strip().splitlines()[-1])["ssh_config"]
    study = [sys.executable, os.path.join(MININET, "experiment.py"), "--preset", "quick", "--bin", args.bin,
             "--cluster", f"localhost,{SERVER}", "--ssh-config", ssh_config]
    try:
        started = time.monotonic()
        first = subprocess.Popen(study + ["--out", args.out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # Once machine.txt is written the network is up and the locks are held.
        while not os.path.exists(os.path.join(args.out, "machine.txt")) and first.poll() is None:
            time.sleep(0.2)
        second = subprocess.run(study + ["--peers", "1", "--modes", "cs", "--out", args.out + "-second"],
                                capture_output=True, text=True, timeout=300)
        ok(second.returncode != 0 and "another cluster study holds" in second.stderr,
           f"a second cluster study meanwhile is refused: {second.stderr.strip().splitlines()[-1:]}")
        output, _ = first.communicate(timeout=900)
        print(output[-1500:])
        ok(first.returncode == 0, f"quick preset over two servers ({time.monotonic() - started:.0f} s)")
        swept = [line for line in output.splitlines() if "killed by the sweep" in line]
        ok(not swept, f"every process stopped by its PID, none left for the final sweep: {swept or 'none'}")
        problems = [f"{name}: {detail}" for name, good, detail in study_check.check(args.out) + study_check.claims(args.out)
                    if not good]
        ok(not problems, f"study.check --claims: every (mode, N) complete, every copy verified, the claims hold: "
                         f"{problems or 'yes'}")
        hosts = results.read_csv(os.path.join(args.out, "hosts.csv"))
        where = {r["host"]: r["server"] for r in hosts}
        ok(set(where.values()) == {"localhost", SERVER}, f"hosts.csv says where each host ran: {where}")
        tables = open(os.path.join(args.out, "tables.md"), encoding="utf-8").read()
        ok("| host | server |" in tables and "VXLAN" in tables and "Mininet Cluster Edition, 2 servers" in tables,
           "tables.md names the setting, the trunk (VXLAN) and each host's server")
        mine, theirs = ratios(args.out), ratios(args.compare)
        for key in sorted(theirs):
            a, b = mine.get(key), theirs[key]
            ok(a is not None and b is not None and abs(a - b) <= TOLERANCE * b,
               f"{key[0]} N={key[1]}: ratio to the bound {a and round(a, 2)} over two servers, "
               f"{b and round(b, 2)} on one (tolerance {TOLERANCE:.0%})")
    finally:
        subprocess.run(["bash", os.path.join(MININET, "cluster", "netns-server.sh"), "down", SERVER])
    left = leftovers()
    ok(not left, f"nothing left: {left or 'no namespace, bridge, tunnel, sshd, ssh master, study process or folder'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
