#!/usr/bin/env bash
# Benchmark: every listening server beside well-formed but hostile load
# (issue 16), in one run, on loopback only. For each server, an honest
# client's wall time with no load, then under each attack:
#
#   server        honest client                        partial request of "idle"
#   peer serve    peer fetch of a 3.9 KB file           GET / HTTP/1.1 head, no blank line
#   nginx         the same peer fetch                   the same
#   peer seed     peer download of 8 MiB (its tracker   4 of the handshake's 68 bytes
#                 is another, unloaded one)
#   tracker       one HTTP announce with curl           GET /announce?info_hash=%42%42
#
#   idle       IDLE (5,000) connections, each sends a partial request, held open
#   half-open  HALF_OPEN (2,000) connections that complete TCP's handshake and send
#              nothing: the protocol's handshake (HTTP head, BitTorrent handshake)
#              never begins
#   storm      connections opened and closed, no byte sent, as fast as one core
#              (one Python process) can, for STORM_SECONDS (10)
#   idle again the idle attack once more, last: the first attack on a fresh server
#              also pays for the first use of its allocator's arenas and buffers,
#              so RSS that grows in the first row and holds after is no leak; a
#              leak grows again here
#   flood      tracker only: announces from FLOOD_SOURCES (1,000) source addresses,
#              each one peer over HTTP and another over UDP, announcing again and
#              again as fast as one core can for STORM_SECONDS (2,000 peers stored:
#              about 200 KB)
#
# The attackers are integration/bench/hostile.py; their connections come from
# 127.0.1.1 on (two per address for idle and half-open), so a per-address limit
# alone cannot shed them; the honest client comes from 127.0.0.1. Each attack
# is bounded in count and time; the script stops only the processes it started,
# by PID. nginx is Debian's with Debian's default nginx.conf limits
# (worker_processes auto, worker_connections 768, client_header_timeout 60 s).
#
# Per row: the honest client's slowest of RUNS tries under the attack (spread
# over the storm's and the flood's time), its
# unloaded time (median of RUNS after a warm-up), the ratio, the target (slowest
# <= 2 x unloaded + 1 s, every try succeeded), the server's RSS before the
# attack and 2 s after it ended (its workers' included; target: after within
# 10% of before), and whether the honest client still succeeds afterwards.
# Last, one JSON line with every row.
#
# Usage: integration/bench/hostile-load.sh   (wrap it in `flock /tmp/cpu.lock` on a shared machine)
#   SERVERS="serve nginx seed tracker"   which servers (default: all)
#   IDLE=5000 HALF_OPEN=2000 FLOOD_SOURCES=1000 STORM_SECONDS=10 RUNS=3
set -euo pipefail
cd "$(dirname "$0")/../.."
servers=" ${SERVERS:-serve nginx seed tracker} "
idle_count=${IDLE:-5000}
half_open_count=${HALF_OPEN:-2000}
flood_sources=${FLOOD_SOURCES:-1000}
storm_seconds=${STORM_SECONDS:-10}
runs=${RUNS:-3}
honest_limit=20 # seconds an honest client may take before it counts as failed

bash integration/install-deps.sh --bench
export PATH="$PATH:/usr/sbin:/sbin"
# The attacker holds IDLE sockets, the servers as many (peer serve closes what
# it evicts; the tracker holds up to 8,192).
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((idle_count + 1024)) ]; then
  echo "hostile-load.sh: ulimit -n is $(ulimit -n), too few for $idle_count idle connections" >&2
  exit 1
fi
cargo build --release --bins --locked -q
peer=$(realpath target/release/peer)
tracker_bin=$(realpath target/release/tracker)
hostile=$(realpath integration/bench/hostile.py)

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Drops a reaped PID from the list cleanup kills, so a reused PID is never hit.
forget() {
  local kept=() pid
  for pid in "${pids[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  pids=("${kept[@]}")
}
wants() { [[ "$servers" == *" $1 "* ]]; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Waits (at most 10 s) until the file $1 has a line.
wait_line() {
  for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "hostile-load.sh: nothing in $1 after 10 s" >&2
  return 1
}
json_field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())[sys.argv[1]])' "$1"; }
now() { echo "$EPOCHREALTIME"; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", a - b }'; }

# The resident memory of a PID and its children (nginx's workers), in KiB.
rss_kib() {
  local pid total=0 kib
  for pid in "$1" $(pgrep -P "$1" || true); do
    kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${kib:-0}))
  done
  echo "$total"
}

# ---- the honest clients: each sets `took` (seconds) and returns 0 on success ----
fetch_out="$tmp/fetch"
honest_fetch() { # URL
  local start
  rm -rf "$fetch_out"
  start=$(now)
  if timeout "$honest_limit" "$peer" fetch "$1" --output "$fetch_out" >/dev/null 2>&1 &&
    cmp -s "$tmp/www/a.txt" "$fetch_out/a.txt"; then
    took=$(minus "$(now)" "$start")
    return 0
  fi
  took=$(minus "$(now)" "$start")
  return 1
}
honest_download() { # TORRENT
  local start out="$tmp/download"
  rm -rf "$out"
  start=$(now)
  if timeout "$honest_limit" "$peer" download "$1" --output "$out" --port 0 >/dev/null 2>&1 &&
    cmp -s "$tmp/bt/payload.bin" "$out/payload.bin"; then
    took=$(minus "$(now)" "$start")
    return 0
  fi
  took=$(minus "$(now)" "$start")
  return 1
}
honest_query="info_hash=$(printf '%%42%.0s' $(seq 20))&peer_id=$(printf '%%01%.0s' $(seq 20))&port=6881&uploaded=0&downloaded=0&left=1000&compact=1"
honest_announce() { # HOST:PORT
  local start
  rm -f "$tmp/announce.body"
  start=$(now)
  curl -s --max-time "$honest_limit" -o "$tmp/announce.body" "http://$1/announce?$honest_query" || true
  took=$(minus "$(now)" "$start")
  grep -qa "8:interval" "$tmp/announce.body" 2>/dev/null
}

# ---- one server's rows ----
results="$tmp/results.txt"
: >"$results"
honest_cmd=()

# Unloaded: a warm-up, then the median of RUNS.
unloaded_time() {
  local times=() i
  "${honest_cmd[@]}" || { echo "hostile-load.sh: the honest client fails on an idle server" >&2; exit 1; }
  for i in $(seq "$runs"); do
    "${honest_cmd[@]}" || { echo "hostile-load.sh: the honest client fails on an idle server" >&2; exit 1; }
    times+=("$took")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{ t[NR] = $1 } END { print t[int((NR + 1) / 2)] }'
}

# attack SERVER PID TARGET UNLOADED LABEL KIND [hostile.py arguments...]
attack() {
  local server=$1 pid=$2 target=$3 unloaded=$4 label=$5 kind=$6
  shift 6
  local out="$tmp/attack.out" attacker worst=0 failures=0 i rss_before rss_after accepts load
  rss_before=$(rss_kib "$pid")
  : >"$out"
  python3 "$hostile" "$kind" "$target" "$@" >"$out" 2>"$tmp/attack.err" &
  attacker=$!
  pids+=("$attacker")
  local timed=no gap=0
  case $kind in
    idle | half-open)
      # Opening is bounded by the attacker's own --budget.
      for _ in $(seq 600); do [ -s "$out" ] && break; sleep 0.1; done ;;
    *)
      # A storm or flood runs its fixed time; the tries are spread over it.
      timed=yes
      gap=$(awk -v s="$storm_seconds" -v r="$runs" 'BEGIN { printf "%.2f", (s - 2) / r }')
      sleep 1 ;;
  esac
  for i in $(seq "$runs"); do
    "${honest_cmd[@]}" || failures=$((failures + 1))
    worst=$(awk -v a="$worst" -v b="$took" 'BEGIN { print (b > a ? b : a) }')
    if [ "$timed" = yes ] && [ "$i" -lt "$runs" ]; then sleep "$gap"; fi
  done
  # A storm or flood stops by itself (--seconds); the others are told to.
  if [ "$timed" = no ]; then kill -TERM "$attacker" 2>/dev/null || true; fi
  wait "$attacker" || true
  forget "$attacker"
  load=$(python3 -c 'import json,sys; print(json.dumps([json.loads(l) for l in sys.stdin if l.strip()]))' <"$out")
  sleep 2 # the server takes in the closes
  rss_after=$(rss_kib "$pid")
  if "${honest_cmd[@]}"; then accepts=yes; else accepts=no; fi
  echo "$server|$label|$worst|$unloaded|$failures|$rss_before|$rss_after|$accepts|$load" >>"$results"
  echo "  $server, $label: honest ${worst}s (unloaded ${unloaded}s), $failures failed; RSS $rss_before -> $rss_after KiB; load $load" >&2
}

# The three attacks every server meets, then the first again (see the top).
common_attacks() { # SERVER PID TARGET UNLOADED PAYLOAD
  local idle=(idle --count "$idle_count" --payload "$5" --block 1 --budget 20 --hold 120)
  attack "$1" "$2" "$3" "$4" idle "${idle[@]}"
  attack "$1" "$2" "$3" "$4" half-open half-open --count "$half_open_count" --block 1 --budget 20 --hold 120
  attack "$1" "$2" "$3" "$4" storm storm --block 1 --seconds "$storm_seconds"
  attack "$1" "$2" "$3" "$4" "idle again" "${idle[@]}"
}

mkdir -p "$tmp/www"
for _ in $(seq 300); do echo "a small file"; done >"$tmp/www/a.txt"

if wants serve; then
  echo "== peer serve" >&2
  "$peer" serve "$tmp/www" --bind 127.0.0.1 --port 0 >"$tmp/serve.out" 2>"$tmp/serve.log" &
  serve_pid=$!
  pids+=("$serve_pid")
  wait_line "$tmp/serve.out"
  addr=$(json_field listening <"$tmp/serve.out")
  honest_cmd=(honest_fetch "http://$addr/a.txt")
  unloaded=$(unloaded_time)
  common_attacks "peer serve" "$serve_pid" "$addr" "$unloaded" http
fi

if wants nginx; then
  echo "== nginx" >&2
  port=$(free_port)
  mkdir -p "$tmp/nginx"
  {
    [ "$(id -u)" -eq 0 ] && echo "user root;"
    cat <<EOF
daemon off;
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log crit;
events { worker_connections 768; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$port;
    root $tmp/www;
  }
}
EOF
  } >"$tmp/nginx/nginx.conf"
  nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
  nginx_pid=$!
  pids+=("$nginx_pid")
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/a.txt" && break; sleep 0.1; done
  honest_cmd=(honest_fetch "http://127.0.0.1:$port/a.txt")
  unloaded=$(unloaded_time)
  common_attacks nginx "$nginx_pid" "127.0.0.1:$port" "$unloaded" http
fi

if wants seed; then
  echo "== peer seed" >&2
  mkdir -p "$tmp/bt"
  bash torrents/make-seed.sh 8M "$tmp/bt/payload.bin"
  "$tracker_bin" --listen 127.0.0.1:0 --no-udp --interval 5 >"$tmp/bt-tracker.out" 2>/dev/null &
  pids+=($!)
  wait_line "$tmp/bt-tracker.out"
  bt_tracker=$(json_field listening <"$tmp/bt-tracker.out")
  "$peer" create "$tmp/bt/payload.bin" -l 256K --no-date -a "http://$bt_tracker/announce" \
    -o "$tmp/payload.torrent" >/dev/null
  "$peer" seed "$tmp/payload.torrent" --data "$tmp/bt" --port 0 >/dev/null 2>"$tmp/seed.log" &
  seed_pid=$!
  pids+=("$seed_pid")
  seeder=""
  for _ in $(seq 200); do
    seeder=$(python3 - "$bt_tracker" <<'PY' || true
import json, sys, urllib.request
stats = json.load(urllib.request.urlopen(f"http://{sys.argv[1]}/stats"))
print(next(p["address"] for s in stats["swarms"] for p in s["peers"] if p["seeder"]))
PY
    )
    [ -n "$seeder" ] && break
    sleep 0.1
  done
  [ -n "$seeder" ] || { echo "hostile-load.sh: the seeder never announced" >&2; exit 1; }
  honest_cmd=(honest_download "$tmp/payload.torrent")
  unloaded=$(unloaded_time)
  common_attacks "peer seed" "$seed_pid" "$seeder" "$unloaded" bt
fi

if wants tracker; then
  echo "== tracker" >&2
  "$tracker_bin" --listen 127.0.0.1:0 >"$tmp/tracker.out" 2>/dev/null &
  tracker_pid=$!
  pids+=("$tracker_pid")
  wait_line "$tmp/tracker.out"
  addr=$(json_field listening <"$tmp/tracker.out")
  udp_port=$(json_field udp <"$tmp/tracker.out" | sed 's/.*://')
  honest_cmd=(honest_announce "$addr")
  unloaded=$(unloaded_time)
  common_attacks tracker "$tracker_pid" "$addr" "$unloaded" announce
  attack tracker "$tracker_pid" "$addr" "$unloaded" flood flood --sources "$flood_sources" --block 1 \
    --udp-port "$udp_port" --seconds "$storm_seconds"
fi

python3 - "$results" "$runs" <<'PY'
import json, sys
rows = [line.rstrip("\n").split("|", 8) for line in open(sys.argv[1])]
runs = int(sys.argv[2])

def load_summary(kind, load):
    first = load[0] if load else {}
    if kind in ("idle", "idle again", "half-open"):
        held = load[1].get("held_at_end", "?") if len(load) > 1 else "?"
        return f"{first.get('open', '?')} open, {held} held at end"
    if kind == "storm":
        return f"{first.get('per_second', '?')} conn/s"
    if kind == "flood":
        return f"{first.get('per_second', '?')} announces/s x2 (HTTP+UDP)"
    return ""

head = (f"{'server':<11} {'attack':<10} {'honest s':>9} {'unloaded s':>10} {'ratio':>7} {'target':>7} "
        f"{'RSS before':>11} {'RSS after':>10} {'RSS':>6} {'accepts':>8}  load")
print(f"honest time: the slowest of {runs} tries under the attack; target: every try succeeded "
      "and the slowest <= 2 x unloaded + 1 s; RSS in KiB, after within 10% of before")
print(head)
print("-" * len(head))
report = []
for server, kind, worst, unloaded, failures, before, after, accepts, load in rows:
    worst, unloaded, failures = float(worst), float(unloaded), int(failures)
    before, after, load = int(before), int(after), json.loads(load)
    ratio = worst / unloaded if unloaded else float("inf")
    met = failures == 0 and worst <= 2 * unloaded + 1
    rss_ok = after <= 1.10 * before
    honest = f"{worst:.3f}" if failures == 0 else f"{failures}/{runs} fail"
    print(f"{server:<11} {kind:<10} {honest:>9} {unloaded:>10.3f} {ratio:>7.1f} "
          f"{'met' if met else 'MISSED':>7} {before:>11} {after:>10} {'ok' if rss_ok else 'GREW':>6} "
          f"{accepts:>8}  {load_summary(kind, load)}")
    report.append({"server": server, "attack": kind, "honest_seconds": worst, "failed_tries": failures,
                   "unloaded_seconds": unloaded, "ratio": round(ratio, 2), "target_met": met,
                   "rss_kib_before": before, "rss_kib_after": after, "rss_within_10pct": rss_ok,
                   "accepts_after": accepts == "yes", "load": load})
print(json.dumps({"bench": "hostile-load", "runs": runs, "rows": report}))
PY
