#!/usr/bin/python3
"""CI check of mininet/topo.py, for real (root): the classic lab.

Runs `topo.py --peers 2 --bw 20 --cpu 0.5 --cli --size 1M` with a script on its
standard input instead of a person at the Mininet CLI: h1 fetches the seed
from `peer serve` on h0, h2 downloads it through the tracker and seeder on
h0, and sha1sum compares both copies with h0's seed. Checks that topo.py
exits 0, every host reached h0, both transfers completed with every byte,
the copies match the seed, the fetch went no faster than the link's 20 Mbit/s,
h1's CPU cgroup has its share, and that nothing is left afterwards (the switch's interfaces, topo.py's
scratch folder).

    /usr/bin/python3 mininet/ci/topo_lab.py --bin target/checked

Prints `ok`/`FAIL` lines and exits 1 if any check failed.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOPO = os.path.join(os.path.dirname(HERE), "topo.py")
SIZE = 1 << 20
BW = 20.0  # Mbit/s
CPU = 0.5  # each host's share of the machine
H0 = "10.0.0.1"  # Mininet's first host


def links():
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def json_lines(text):
    found = []
    for match in re.finditer(r"\{\"[^\n]*?\}(?=\s*(\n|mininet>|$))", text):
        try:
            found.append(json.loads(match.group(0)))
        except ValueError:
            pass
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True)
    args = parser.parse_args(argv)
    peer = os.path.join(os.path.abspath(args.bin), "peer")
    scratch = tempfile.mkdtemp(prefix="study-topo-")
    tmp, out = os.path.join(scratch, "tmp"), os.path.join(scratch, "out")
    os.makedirs(tmp)
    # topo.py's scratch folder is TMP/peer-lab-topo-*: the only one under TMP.
    work = f"$(echo {tmp}/peer-lab-topo-*)"
    script = "\n".join([
        f"h1 {peer} fetch http://{H0}:2680/seed-1m.bin --output {out}/h1",
        f"h2 {peer} download {work}/study.torrent --output {out}/h2",
        f"h0 sha1sum {work}/seed/seed-1m.bin {out}/h1/seed-1m.bin {out}/h2/seed-1m.bin",
        # `sh` runs in the root namespace, where the cgroup tree is.
        "sh echo cpu-share $(cat /sys/fs/cgroup/cpu/h1/cpu.cfs_quota_us /sys/fs/cgroup/cpu/h1/cpu.cfs_period_us)",
        "exit",
    ]) + "\n"
    before = links()
    results = []

    def check(name, ok, detail=""):
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} topo.py: {name}" + (f": {detail}" if detail else ""), flush=True)

    try:
        try:
            done = subprocess.run([sys.executable, TOPO, "--peers", "2", "--bw", f"{BW:g}", "--cpu", str(CPU), "--cli", "--size", "1M",
                                   "--bin", os.path.abspath(args.bin)],
                                  input=script, capture_output=True, text=True, timeout=120,
                                  env=dict(os.environ, TMPDIR=tmp))
            text, code = done.stdout + done.stderr, done.returncode
        except subprocess.TimeoutExpired as timeout:
            text, code = str(timeout.stdout or "") + str(timeout.stderr or ""), None
        check("exit code 0", code == 0, f"exit {code}: {text.strip()[-400:]}" if code != 0 else "")
        pinged = [h for h in ("h1", "h2") if re.search(rf"\*\*\* {h} -> h0: rtt", text)]
        check("h1 and h2 reach h0", pinged == ["h1", "h2"], f"pinged: {pinged}")
        lines = json_lines(text)
        fetched = next((l for l in lines if "file" in l and "bytes" in l), None)
        check("h1 fetched the seed from peer serve on h0", fetched is not None and fetched["bytes"] == SIZE, str(fetched))
        if fetched:
            rate_mbit = fetched["rate"] * 8 / 1e6
            check(f"the fetch went no faster than the link's {BW:g} Mbit/s", rate_mbit <= BW * 1.25,
                  f"{rate_mbit:.1f} Mbit/s")
        completed = next((l for l in lines if l.get("event") == "complete"), None)
        check("h2 downloaded it through the tracker and seeder on h0",
              completed is not None and completed["bytes"] == SIZE and completed.get("peers", 0) >= 1, str(completed))
        sums = re.findall(r"^(?:mininet> )*([0-9a-f]{40})\s+(\S+)$", text, re.MULTILINE)
        check("both copies match h0's seed", len(sums) == 3 and len({s for s, _ in sums}) == 1,
              "; ".join(f"{s[:12]} {os.path.basename(os.path.dirname(p))}" for s, p in sums))
        share = re.search(r"^(?:mininet> )*cpu-share (\d+) (\d+)$", text, re.MULTILINE)
        got = int(share.group(1)) / int(share.group(2)) / os.cpu_count() if share and int(share.group(1)) > 0 else None
        check(f"h1 has its CPU share ({CPU} of {os.cpu_count()} cores)", got is not None and abs(got - CPU) < 0.01,
              f"quota {share.group(1)} of period {share.group(2)}" if share else
              "no cgroup quota: " + "; ".join(l for l in text.splitlines() if "cpu-share" in l))
        left = sorted(name for name in links() - before if re.match(r"^s1(-eth\d+)?$", name))
        check("no interface left", not left, ", ".join(left))
        check("its scratch folder is gone", os.listdir(tmp) == [], ", ".join(os.listdir(tmp)))
        return 0 if all(results) else 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
