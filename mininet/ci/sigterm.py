#!/usr/bin/python3
"""CI check: a SIGTERM in the middle of a study leaves nothing behind.

Starts experiment.py (peer-to-peer, N = 2, a file big enough to still be
downloading), waits until both downloaders have been started, records what
the study has created by then, sends SIGTERM and checks, once it has exited:

- its exit code is 130 and it said it stopped on SIGTERM;
- no process it started is left, by PID (with its start time, so a reused
  PID is not mistaken for it) and by name (no process runs the study's
  private copy of the binaries);
- in Mininet: no process is left in any network namespace its hosts had, and
  no interface it created (s1, s1-ethK, the kernel probe's pl*) is left;
  with --cpu, each host had its CPU share (cgroup CFS quota) and no cgroup is left;
- its scratch folder (the seed, the binaries' copy) is gone.

    /usr/bin/python3 mininet/ci/sigterm.py --bin target/checked [--mininet [--cpu SHARE]]

Prints `ok`/`FAIL` lines and exits 1 if any check failed. Cleans up after
itself what the study left, by PID and by name, so that a failure here does
not leak into the next check.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXPERIMENT = os.path.join(os.path.dirname(HERE), "experiment.py")
# Interfaces the study creates in the root namespace: the switch, its ports,
# and the kernel probe's scratch devices (net.kernel_features).
OURS = re.compile(r"^(s1|s1-eth\d+|h\d+-eth\d+|pl(probe|pa|pb|br)\d+)$")


CPU_CGROUPS = "/sys/fs/cgroup/cpu"  # cgroup v1, where Mininet's CPULimitedHost puts h0, h1, ...


def cpu_share(path):
    """A cgroup's CFS quota as a share of the whole machine (None if unreadable or unlimited)."""
    try:
        with open(os.path.join(path, "cpu.cfs_quota_us")) as quota, open(os.path.join(path, "cpu.cfs_period_us")) as period:
            q, p = int(quota.read()), int(period.read())
    except (OSError, ValueError):
        return None
    return q / p / os.cpu_count() if q > 0 else None


def start_time(pid):
    """The process's start time in clock ticks since boot (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def processes():
    """pid -> (ppid, argv, net namespace), for every process readable now."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                argv = [a.decode(errors="replace") for a in cmd.read().split(b"\0") if a]
            netns = os.readlink(f"/proc/{pid}/ns/net")
        except (OSError, IndexError, ValueError):
            continue
        table[pid] = (ppid, argv, netns)
    return table


def descendants(root, table):
    found, todo = set(), [root]
    while todo:
        parent = todo.pop()
        for pid, (ppid, _, _) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                todo.append(pid)
    return found


def interfaces():
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def netns_names():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def wait_for(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--mininet", action="store_true", help="in Mininet (root) instead of --local")
    parser.add_argument("--cpu", type=float, help="Mininet: passed on; checks each host's CPU cgroup, and that it goes")
    args = parser.parse_args(argv)
    env = "mininet" if args.mininet else "local"
    results = []

    def check(name, ok, detail=""):
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} SIGTERM ({env}): {name}" + (f": {detail}" if detail else ""), flush=True)

    root_ns = os.readlink("/proc/self/ns/net")
    links_before, netns_before = interfaces(), netns_names()
    cgroups_before = set(os.listdir(CPU_CGROUPS)) if os.path.isdir(CPU_CGROUPS) else set()
    out = tempfile.mkdtemp(prefix="study-sigterm-")
    cmd = [sys.executable, EXPERIMENT, "--modes", "p2p", "--peers", "2", "--size", "64M", "--runs", "1",
           "--bin", os.path.abspath(args.bin), "--out", out] + ([] if args.mininet else ["--local"])
    if args.cpu:
        cmd += ["--cpu", str(args.cpu)]
    cgroups = [f"{CPU_CGROUPS}/h{i}" for i in range(3)] if args.cpu else []
    study = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = os.path.join(out, "logs", "p2p-n2-r1", "h2.out")
    leftovers, work = [], None
    try:
        if not wait_for(lambda: os.path.exists(started) or study.poll() is not None, 90):
            check("both downloaders started within 90 s", False)
            return 1
        if study.poll() is not None:
            check("the study was still running", False, f"exit {study.returncode}: {study.stderr.read()[-500:]}")
            return 1
        table = processes()
        ours = descendants(study.pid, table)
        # The study runs private copies of the binaries, WORK/bin/peer and WORK/bin/tracker.
        work = next((os.path.dirname(os.path.dirname(table[p][1][0])) for p in ours
                     if table[p][1] and table[p][1][0].endswith("/bin/peer")), None)
        recorded = {pid: start_time(pid) for pid in ours}
        spaces = {table[p][2] for p in ours} - {root_ns}
        created = {name for name in interfaces() - links_before if OURS.match(name)}
        names = [os.path.basename(table[p][1][0]) for p in ours if table[p][1]]
        check("found what the study started", work is not None and "peer" in names and "tracker" in names
              and (not args.mininet or (len(spaces) >= 3 and "s1" in created)),
              f"{len(ours)} processes ({', '.join(sorted(set(names)))}), {len(spaces)} namespaces, "
              f"interfaces {', '.join(sorted(created)) or 'none'}, work {work}")

        if cgroups:
            shares = [cpu_share(path) for path in cgroups]
            check(f"each host has its CPU share ({args.cpu} of {os.cpu_count()} cores)",
                  all(s is not None and abs(s - args.cpu) < 0.01 for s in shares), f"shares {shares}")

        study.send_signal(signal.SIGTERM)
        try:
            _, err = study.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            study.kill()
            _, err = study.communicate()
            check("exited within 60 s of SIGTERM", False)
        check("exit code 130 and 'stopped (SIGTERM)'", study.returncode == 130 and "stopped (SIGTERM)" in err,
              f"exit {study.returncode}: {(err.strip().splitlines() or [''])[-1]}")

        alive = [pid for pid, t in recorded.items() if t is not None and start_time(pid) == t]
        check("no process it started is left (by PID)", not alive,
              ", ".join(f"{pid} {' '.join(table[pid][1][:2])}" for pid in alive))
        now = processes()
        by_name = [pid for pid, (_, argv_, _) in now.items() if work and argv_ and argv_[0].startswith(work + "/")]
        check("no process runs its copy of the binaries (by name)", not by_name, " ".join(map(str, by_name)))
        in_spaces = [pid for pid, (_, _, ns) in now.items() if ns in spaces]
        if args.mininet:
            check("no process is left in its hosts' namespaces", not in_spaces, " ".join(map(str, in_spaces)))
        left_links = sorted(created & interfaces())
        new_links = sorted(name for name in interfaces() - links_before if OURS.match(name))
        left_ns = sorted(name for name in netns_names() - netns_before if name.startswith("plprobe"))
        check("no interface or named namespace it created is left", not (left_links or new_links or left_ns),
              ", ".join(sorted(set(left_links + new_links)) + left_ns))
        if cgroups:
            left = [path for path in cgroups if os.path.exists(path)]
            check("no CPU cgroup it created is left", not left, ", ".join(left))
        check("its scratch folder is gone", work is not None and not os.path.exists(work), str(work))
        leftovers = sorted(set(alive + by_name + in_spaces))
        return 0 if all(results) else 1
    finally:
        # Whatever the study left (only when a check above failed): by PID, by name.
        if study.poll() is None:
            study.kill()
            study.wait()
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for name in sorted({n for n in interfaces() - links_before if OURS.match(n)}):
            subprocess.run(["ip", "link", "del", name], capture_output=True)
        for name in netns_names() - netns_before:
            if name.startswith("plprobe"):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for path in cgroups:
            if os.path.basename(path) not in cgroups_before and os.path.isdir(path):
                try:
                    os.rmdir(path)  # empty once its processes are gone
                except OSError:
                    pass
        if work and os.path.basename(work).startswith("peer-lab-study-"):
            shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
