#!/usr/bin/env bash
# Benchmark: our tracker against opentracker, in one run, on loopback.
#
# 1. Announce rate: wrk, 2 threads, 64 connections, 10 s each, every announce
#    on a fresh connection (Connection: close), random peer_ids spread over a
#    fixed set of swarms; opentracker (whitelist build) gets the same
#    info-hashes with -w. Ours runs twice: on one thread (opentracker is
#    single-threaded: the like-for-like comparison) and on every core.
#    Prints the rates, the p99 latencies, the ratios.
#    Targets: ratio >= 1.0, our p99 no worse.
# 2. Memory per stored peer: announces with unique peer_ids (keep-alive, for
#    speed) until at least one million peers are stored, then
#    (RSS after - RSS before) / peers. Target: <= 200 bytes per peer.
#
# Usage: integration/bench/tracker.sh   (DURATION=10 SWARMS=100 PEERS=1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${DURATION:-10}
swarm_count=${SWARMS:-100}
target_peers=${PEERS:-1000000}

bash integration/install-deps.sh --bench
cargo build --release --bins --locked -q
tracker=$(realpath target/release/tracker)
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

python3 -c "
import random
r = random.Random(42)
for _ in range($swarm_count): print(''.join(r.choice('0123456789abcdef') for _ in range(40)))" >"$work/swarms.txt"
export SWARMS="$work/swarms.txt"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; return 1; }

start_ours() { # $1 = extra args; sets port and pid
  port=$(free_port)
  "$tracker" --listen "127.0.0.1:$port" --max-peers 3000000 $1 >/dev/null 2>&1 &
  pid=$!; pids+=("$pid"); wait_port "$port"
}
start_opentracker() {
  port=$(free_port)
  # It chroots into its working directory and drops root for nobody: the
  # whitelist path is relative to it, and nobody must be let in.
  chmod 755 "$work"
  (cd "$work" && exec opentracker -i 127.0.0.1 -p "$port" -P "$(free_port)" -d "$work" -w swarms.txt) >/dev/null 2>&1 &
  pid=$!; pids+=("$pid"); wait_port "$port"
  # The whitelist loads in a thread of its own: until then every announce
  # is refused, quickly. Wait for one of the swarms to be served.
  local hash escaped
  hash=$(head -1 "$work/swarms.txt")
  escaped=$(python3 -c 'import sys; print("".join("%" + sys.argv[1][i:i+2] for i in range(0, 40, 2)))' "$hash")
  for _ in $(seq 100); do
    curl -s "http://127.0.0.1:$port/announce?info_hash=$escaped&peer_id=-WT0001-000000000000&port=1&left=1&compact=1" \
      | grep -qv "failure reason" && return 0
    sleep 0.1
  done
  echo "opentracker never served the whitelisted swarm $hash" >&2; return 1
}

# Runs wrk; prints "requests_per_second p99_ms non_2xx".
load() { # $1 port, $2 close (1/0), $3 seconds, $4 connections
  CLOSE=$2 wrk -t2 -c"$4" -d"$3s" --latency -s integration/bench/lua/announce.lua "http://127.0.0.1:$1/announce" >"$work/wrk.txt" 2>&1 || true
  python3 - "$work/wrk.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(rate, float(p99.group(1)) * scale, bad.group(1) if bad else 0)
PY
}

echo "== announce rate: wrk -t2 -c64 -d${duration}s, Connection: close, $swarm_count swarms ==" >&2
start_ours "--threads 1"; read -r our_rate our_p99 our_bad < <(load "$port" 1 "$duration" 64); kill "$pid"
start_opentracker; read -r ot_rate ot_p99 ot_bad < <(load "$port" 1 "$duration" 64); kill "$pid"
start_ours ""; read -r all_rate all_p99 all_bad < <(load "$port" 1 "$duration" 64); kill "$pid"

echo "== memory: announces with unique peer_ids until $target_peers peers are stored ==" >&2
start_ours "--interval 3600"
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
peers_stored() { # sum of complete + incomplete over a full scrape
  python3 - "$1" <<'PY'
import re, sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/scrape").read()
print(sum(int(n) for n in re.findall(rb"(?:8:complete|10:incomplete)i(\d+)e", body)))
PY
}
rss_before=$(rss_kib "$pid")
stored=0
for round in $(seq 1 15); do
  load "$port" 0 10 64 >/dev/null
  stored=$(peers_stored "$port")
  echo "  round $round: $stored peers stored" >&2
  [ "$stored" -ge "$target_peers" ] && break
done
rss_after=$(rss_kib "$pid")

python3 - "$our_rate" "$our_p99" "$ot_rate" "$ot_p99" "$our_bad" "$ot_bad" "$rss_before" "$rss_after" "$stored" "$target_peers" "$all_rate" "$all_p99" <<'PY'
import json, sys
our_rate, our_p99, ot_rate, ot_p99 = map(float, sys.argv[1:5])
our_bad, ot_bad = int(sys.argv[5]), int(sys.argv[6])
before, after, stored, target = int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10])
all_rate, all_p99 = float(sys.argv[11]), float(sys.argv[12])
ratio = our_rate / ot_rate
per_peer = (after - before) * 1024 / stored if stored else float("nan")
print(f"our tracker, 1 thread:  {our_rate:10.0f} announces/s, p99 {our_p99:.2f} ms, non-2xx {our_bad}")
print(f"our tracker, all cores: {all_rate:10.0f} announces/s, p99 {all_p99:.2f} ms (ratio {all_rate / ot_rate:.2f})")
print(f"opentracker:            {ot_rate:10.0f} announces/s, p99 {ot_p99:.2f} ms, non-2xx {ot_bad}")
print(f"rate ratio ours/opentracker: {ratio:.2f} (target >= 1.0: {'met' if ratio >= 1.0 else 'MISSED'}); "
      f"p99 {'no worse' if our_p99 <= ot_p99 else 'WORSE'} ({our_p99:.2f} vs {ot_p99:.2f} ms)")
print(f"memory: {stored} peers stored, RSS {before/1024:.1f} -> {after/1024:.1f} MiB, {per_peer:.0f} bytes per peer "
      f"(target <= 200: {'met' if per_peer <= 200 and stored >= target else 'MISSED'})")
print(json.dumps({"bench": "tracker", "ours_rps": our_rate, "ours_all_cores_rps": all_rate, "opentracker_rps": ot_rate, "ratio": ratio,
                  "ours_p99_ms": our_p99, "opentracker_p99_ms": ot_p99, "peers": stored, "bytes_per_peer": per_peer}))
PY
