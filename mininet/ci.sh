#!/usr/bin/env bash
# CI for the study: installs what it needs from Debian, runs the unit tests
# (and checks how many ran), then the quick preset for real on one machine
# (--local) and in Mininet, and checks both results folders (every (mode, N)
# present, every run complete, every copy verified, the plot drawn) and the
# study's claims on them (study.check --claims: measured/bound, server
# copies, speed-up). Then ./run.sh itself at a small size with every peer
# option, topo.py's lab for real, and a SIGTERM in the middle of a study on
# one machine and in Mininet (nothing left behind). Ends with
# "N passed, M failed".
#
# Usage: bash mininet/ci.sh     (as root, or with sudo, for apt-get and Mininet)
set -uo pipefail
cd "$(dirname "$0")/.."
py=/usr/bin/python3   # Debian's python3: the one apt-get's mininet and matplotlib are for
export PATH="$PATH:/usr/sbin:/sbin"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

# command -> Debian package. No Open vSwitch: the study uses it only when it
# is already running, and the Linux bridge needs no daemon or kernel module.
declare -A needed=(
  [mn]=mininet [mnexec]=mininet
  [brctl]=bridge-utils [ethtool]=ethtool [tc]=iproute2 [ip]=iproute2
  [ping]=iputils-ping [curl]=curl [openssl]=openssl [numfmt]=coreutils
)
missing=()
for tool in "${!needed[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${needed[$tool]}")
done
$py -c 'import matplotlib' 2>/dev/null || missing+=(python3-matplotlib)
$py -c 'import libtorrent' 2>/dev/null || missing+=(python3-libtorrent)  # --client libtorrent
command -v aria2c >/dev/null 2>&1 || missing+=(aria2)  # --client aria2
command -v transmission-cli >/dev/null 2>&1 || missing+=(transmission-cli)  # --client transmission
if [ ${#missing[@]} -gt 0 ]; then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "ci: installing $packages"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $packages >/dev/null
fi
# PROFILE: the cargo profile whose binaries the study runs (./test.sh passes
# `checked`, the suite's own; `release` when run by hand).
profile=${PROFILE:-release}
bin="$PWD/target/$profile"
if [ ! -x "$bin/peer" ] || [ ! -x "$bin/tracker" ]; then
  cargo build --profile "$profile" --bins --locked
fi

passed=0 failed=0
result() {  # result NAME STATUS
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}
tally() {  # tally NAME COMMAND...: runs a checker that prints ok/FAIL lines, adds them up;
  # a checker that exits non-zero without a FAIL line (a crash), or prints no check at all, is a failure too
  local name=$1 out status oks fails
  shift
  out=$("$@" 2>&1)
  status=$?
  echo "$out"
  oks=$(grep -c '^ok ' <<<"$out")
  fails=$(grep -c '^FAIL' <<<"$out")
  passed=$((passed + oks))
  failed=$((failed + fails))
  if [ "$status" -ne 0 ] && [ "$fails" -eq 0 ]; then
    result "$name: exited $status without a FAIL line" 1
  elif [ "$oks" -eq 0 ] && [ "$fails" -eq 0 ]; then
    result "$name: printed no check" 1
  fi
}

# The unit tests; `unittest discover` exits 0 when it finds none, so the count is checked too.
min_unit_tests=100
unit=$(cd mininet && $py -m unittest discover -s tests -t . 2>&1)
status=$?
tail -3 <<<"$unit"
ran=$(sed -n 's/^Ran \([0-9]*\) tests\? in .*/\1/p' <<<"$unit")
[ "$status" -eq 0 ] && [ "${ran:-0}" -ge "$min_unit_tests" ]
result "unit tests (bounds, tables, summary, trial, options, report, CPU check): ${ran:-no} tests ran, at least $min_unit_tests expected" $?

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
local_out=$scratch/local net_out=$scratch/mininet small_out=$scratch/run.sh

start=$(date +%s)
$py mininet/experiment.py --local --preset quick --events --bin "$bin" --out "$local_out"
result "quick preset on one machine, with --events ($(($(date +%s) - start)) s)" $?
tally "study.check local" bash -c "cd mininet && $py -m study.check --claims '$local_out'"
# --events: every host recorded every piece, with the seeder among the senders, and the picture is drawn.
tally "--events and the piece picture" bash -c "cd mininet && $py - '$local_out'" <<'PY'
import os, sys
from study import pieces
out = sys.argv[1]
hosts = pieces.load(os.path.join(out, "logs", "p2p-n3-r1"))
leechers = [h for h in hosts.values() if h.name != "seeder"]
ok = len(leechers) == 3 and all(h.done is not None for h in leechers) and hosts["seeder"].peer_id
ok = ok and sum(pieces.seeder_copies(hosts).values()) >= leechers[0].pieces
ok = ok and all(os.path.getsize(os.path.join(out, f"pieces-p2p-n{n}-r1.png")) > 10000 for n in (1, 3))
print(("ok  " if ok else "FAIL") + f" --events: {len(leechers)} hosts recorded every piece, pictures drawn")
sys.exit(0 if ok else 1)
PY

start=$(date +%s)
$sudo $py mininet/experiment.py --preset quick --bin "$bin" --out "$net_out"
result "quick preset in Mininet ($(($(date +%s) - start)) s)" $?
tally "study.check mininet" bash -c "cd mininet && $py -m study.check --claims '$net_out'"
tally "hosts' TCP congestion control" $py - "$net_out" <<'PY'
import json, sys
summary = json.load(open(f"{sys.argv[1]}/summary.json"))
# --tcp's default: every host set to cubic and read back (net.set_tcp), whatever this machine runs.
cc, notes = summary["config"].get("tcp"), summary["notes"]
ok = cc == "cubic" and any(n.startswith("TCP congestion control in every host: cubic") for n in notes)
print(("ok  " if ok else "FAIL") + f" Mininet hosts ran TCP {cc}; notes: {[n for n in notes if 'TCP' in n]}")
PY

# The same quick preset over two servers (Mininet Cluster Edition; issue 18): this machine and a namespace
# with its own sshd. Every copy verified, ratios within 20% of the run above, a second cluster study
# refused meanwhile, and nothing left on either server afterwards (cluster.py prints ok/FAIL lines).
tally "cluster: quick preset over two servers" $sudo $py mininet/ci/cluster.py --compare "$net_out" \
  --out "$scratch/cluster" --bin "$bin"

# Two link classes on one machine: the general bound, each class's times in tables.md.
start=$(date +%s)
links_out=$scratch/links
$py mininet/experiment.py --local --links 2x2/16mbit,1x8/32mbit --size 2M --bw 8 --runs 1 --bin "$bin" --out "$links_out"
result "two link classes on one machine ($(($(date +%s) - start)) s)" $?
tally "study.check links" bash -c "cd mininet && $py -m study.check '$links_out'"
tally "link classes reported" bash -c "cd mininet && $py - '$links_out'" <<'PY'
import json, sys
folder = sys.argv[1]
summary = json.load(open(f"{folder}/summary.json"))
p2p = next(r for r in summary["records"] if r["mode"] == "p2p")
f = summary["config"]["size"] * 8.0
want = max(f / 8e6, f / 16e6, 3 * f / (8e6 + 2e6 + 2e6 + 8e6))
ok = summary["config"]["peers"] == [3] and abs(p2p["bound_seconds"] - want) < 1e-6
print(("ok  " if ok else "FAIL") + f" --links: N = 3 and the general P2P bound {p2p['bound_seconds']:.3f} s (want {want:.3f})")
tables = open(f"{folder}/tables.md", encoding="utf-8").read()
rows = [l for l in tables.splitlines() if "| 2/16 Mbit/s |" in l or "| 8/32 Mbit/s |" in l]
print(("ok  " if len(rows) == 4 and "—" not in "".join(rows) else "FAIL") + f" --links: tables.md times each class in both modes: {len(rows)} rows")
PY

# Staggered arrivals, hosts leaving once done: on schedule, own times, every copy verified.
start=$(date +%s)
arrivals_out=$scratch/arrivals
$py mininet/experiment.py --local --peers 3 --size 2M --bw 16 --runs 1 --arrivals stagger:1 --leave-on-complete \
  --bin "$bin" --out "$arrivals_out"
result "staggered arrivals, --leave-on-complete, on one machine ($(($(date +%s) - start)) s)" $?
tally "study.check arrivals" bash -c "cd mininet && $py -m study.check '$arrivals_out'"
tally "arrivals reported" bash -c "cd mininet && $py - '$arrivals_out'" <<'PY'
import sys
from study import results
folder = sys.argv[1]
rows = results.read_csv(f"{folder}/hosts.csv")
p2p = sorted((r for r in rows if r["mode"] == "p2p"), key=lambda r: r["host"])
starts = [round(r["start_offset"]) for r in p2p]
print(("ok  " if starts == [0, 1, 2] else "FAIL") + f" arrivals: hosts started at {starts} s, want 0, 1, 2")
left = all(r["exit_code"] == 0 and r["verified"] for r in p2p)
print(("ok  " if left else "FAIL") + " --leave-on-complete: each peer exited by itself (code 0) with a verified copy")
tables = open(f"{folder}/tables.md", encoding="utf-8").read()
print(("ok  " if "from the host's own start" in tables and "arrivals: stagger:1" in tables else "FAIL")
      + " arrivals: tables.md times hosts from their own start and names the schedule")
PY

# Another client in the same harness: libtorrent on every host (seeder and leechers), one machine.
start=$(date +%s)
client_out=$scratch/client
$py mininet/experiment.py --local --client libtorrent --peers 3 --size 4M --bw 16 --runs 1 --modes p2p \
  --bin "$bin" --out "$client_out"
result "--client libtorrent on one machine ($(($(date +%s) - start)) s)" $?
tally "study.check client" bash -c "cd mininet && $py -m study.check '$client_out'"
tally "client reported" bash -c "cd mininet && $py - '$client_out'" <<'PY'
import json, sys
from study import results
folder = sys.argv[1]
rows = [r for r in results.read_csv(f"{folder}/hosts.csv") if r["mode"] == "p2p"]
ok = len(rows) == 3 and all(r["verified"] for r in rows)
print(("ok  " if ok else "FAIL") + f" --client libtorrent: {sum(r['verified'] for r in rows)} of 3 copies verified")
seeder = [json.loads(l) for l in open(f"{folder}/logs/p2p-n3-r1/seeder.out") if l.startswith("{")]
sent = next((l["uploaded"] for l in seeder if l.get("event") == "stopped"), 0)
print(("ok  " if sent >= 4 << 20 else "FAIL") + f" --client libtorrent: its seeder sent {sent} bytes, at least the file")
tables = open(f"{folder}/tables.md", encoding="utf-8").read()
print(("ok  " if "peer-to-peer client: **libtorrent**" in tables else "FAIL") + " --client: tables.md names the client")
PY

# Transmission in the same harness, in Mininet (it ignores peers on 127.0.0.0/8): two hosts.
start=$(date +%s)
tr_out=$scratch/transmission
$sudo $py mininet/experiment.py --client transmission --peers 2 --size 4M --bw 16 --runs 1 --modes p2p \
  --bin "$bin" --out "$tr_out"
result "--client transmission in Mininet ($(($(date +%s) - start)) s)" $?
tally "study.check transmission" bash -c "cd mininet && $py -m study.check '$tr_out'"
tally "transmission reported" bash -c "cd mininet && $py - '$tr_out'" <<'PY'
import json, sys
from study import results
folder = sys.argv[1]
rows = [r for r in results.read_csv(f"{folder}/hosts.csv") if r["mode"] == "p2p"]
ok = len(rows) == 2 and all(r["verified"] for r in rows)
print(("ok  " if ok else "FAIL") + f" --client transmission: {sum(r['verified'] for r in rows)} of 2 copies verified")
seeder = [json.loads(l) for l in open(f"{folder}/logs/p2p-n2-r1/seeder.out") if l.startswith("{")]
sent = next((l["uploaded"] for l in seeder if l.get("event") == "stopped"), 0)
# Its uploaded bytes come from its two-decimal share ratio: at least 0.99 of the file.
print(("ok  " if sent >= 0.99 * (4 << 20) else "FAIL") + f" --client transmission: its seeder sent {sent} bytes")
PY


# ./run.sh itself (the README's main job), small, with every peer option the study passes on:
# the peer must accept each, and the results must record them.
start=$(date +%s)
table=$(PROFILE=$profile ./run.sh "$small_out" --size 2M --peers 1,2 --plain-seed --unchoke-slots 2 \
  --seeder-unchoke-slots 1 --max-peers 5 --piece-length 64K 2>&1)
status=$?
echo "$table" | tail -4
grep -q '^| 2 | ' <<<"$table" || status=1
result "./run.sh at 2 MiB, N = 1, 2, with --plain-seed, unchoke slots, --max-peers, --piece-length ($(($(date +%s) - start)) s)" $status
tally "study.check run.sh" bash -c "cd mininet && $py -m study.check '$small_out'"
tally "run.sh options recorded" $py - "$small_out" <<'PY'
import json, sys
folder = sys.argv[1]
cfg = json.load(open(f"{folder}/summary.json"))["config"]
want = dict(environment="local", size=2 << 20, peers=[1, 2], runs=1, bw=100.0, super_seed=False,
            unchoke_slots=2, seeder_unchoke_slots=1, max_peers=5, piece_length="64K")
got = {k: cfg.get(k) for k in want}
print(("ok  " if got == want else "FAIL") + f" run.sh: summary.json records the options: {got}")
tables = open(f"{folder}/tables.md", encoding="utf-8").read()
line = "- peer options: --unchoke-slots 2 --seeder-unchoke-slots 1 --max-peers 5 --piece-length 64K"
print(("ok  " if line in tables and "plain `peer seed`" in tables else "FAIL") + " run.sh: tables.md names the options and the plain seeder")
PY

# topo.py's lab, for real: reachability, rates, a CPU share, the servers on h0, a fetch and a download.
tally "topo.py" $sudo $py mininet/ci/topo_lab.py --bin "$bin"
# SIGTERM in the middle of a study: nothing left, by PID and by name (and in Mininet, with --cpu).
tally "SIGTERM local" $py mininet/ci/sigterm.py --bin "$bin"
tally "SIGTERM mininet" $sudo $py mininet/ci/sigterm.py --bin "$bin" --mininet --cpu 0.5

echo "mininet/ci.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
