#!/usr/bin/env bash
# Benchmark: the client-server baseline, `peer serve` + `peer fetch`, against
# nginx (sendfile on) + `curl -s -o`, serving the 1 GiB seed on loopback to 1
# and to 6 clients at once, in one run. Each client writes its own copy to its
# own directory; rounds alternate between the two pairs, and every copy is
# checked for its size (and the first of each pair byte for byte).
# Prints each pair's wall times for each client count and the ratio of the
# medians (the median resists rounds slowed by other work on the machine), and
# the CPU seconds each pair used (server and clients), which other work
# disturbs less than wall time.
# Target: ratio (ours / nginx+curl) <= 1.10 for 1 and for 6 clients.
#
# Usage: integration/bench/baseline.sh [WORKDIR]   (default bench-data/)
#   RUNS=N        timed rounds per pair and client count (default 5)
#   CLIENTS="1 6" the client counts
#   OUT=DIR       clients write in DIR/baseline-out (default: a temporary directory in WORKDIR)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(realpath -m "${1:-bench-data}")
runs=${RUNS:-5}
clients=${CLIENTS:-1 6}
mkdir -p "$work"

bash integration/install-deps.sh --bench
export PATH="$PATH:/usr/sbin:/sbin"
cargo build --release --bins --locked -q
peer=$(realpath target/release/peer)
seed="$work/seed-1g.bin"
[ -f "$seed" ] || bash torrents/make-seed.sh 1G "$seed"
size=$(stat -c %s "$seed")
name=$(basename "$seed")

tmp=$(mktemp -d)
if [ -n "${OUT:-}" ]; then
  out=$(realpath -m "$OUT")/baseline-out
  mkdir "$out"   # fails rather than reuse a directory it would empty
else
  out=$(mktemp -d "$work/baseline-out.XXXXXX")
fi
serve_pid=""
nginx_pid=""
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp" "$out"
}
trap cleanup EXIT
cat "$seed" >/dev/null   # warm the page cache

# Waits (at most 10 s) until the command succeeds.
wait_until() {
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "baseline.sh: timed out waiting for: $*" >&2
  return 1
}

# Ours, on a port the system chooses (it prints the address first).
"$peer" serve "$work" --bind 127.0.0.1 --port 0 >"$tmp/serve.out" 2>"$tmp/serve.log" &
serve_pid=$!
wait_until test -s "$tmp/serve.out"
peer_url="http://$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["listening"])' <"$tmp/serve.out")/$name"

# nginx as a foreground process with its own minimal configuration.
nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/nginx"
{
  [ "$(id -u)" -eq 0 ] && echo "user root;"
  cat <<EOF
daemon off;
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 256; }
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
    listen 127.0.0.1:$nginx_port;
    root $work;
  }
}
EOF
} >"$tmp/nginx/nginx.conf"
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" &
nginx_pid=$!
nginx_url="http://127.0.0.1:$nginx_port/$name"
wait_until curl -sf -r 0-0 -o /dev/null "$nginx_url"

# CPU seconds (user + system) used so far by a server, its workers included.
ticks=$(getconf CLK_TCK)
server_cpu() {
  local pids
  if [ "$1" = peer ]; then pids=$serve_pid; else pids="$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"; fi
  # shellcheck disable=SC2086
  for pid in $pids; do cat "/proc/$pid/stat"; done |
    awk -v t="$ticks" '{ s += $14 + $15 } END { printf "%.3f", s / t }'
}

# One round: N clients of one pair at once; sets `elapsed` (wall seconds) and
# `cpu` (CPU seconds of the server, then of all the clients together).
round() {
  local pair=$1 n=$2 check=$3 pids=() i start end cpu0 clients_cpu server_cpu_used
  rm -rf "$out"/*
  for i in $(seq "$n"); do mkdir -p "$out/$i"; done
  cpu0=$(server_cpu "$pair")
  start=$(date +%s.%N)
  for i in $(seq "$n"); do
    if [ "$pair" = peer ]; then
      /usr/bin/time -f "%U %S" -o "$out/$i.cpu" "$peer" fetch "$peer_url" --output "$out/$i" >"$out/$i.json" &
    else
      /usr/bin/time -f "%U %S" -o "$out/$i.cpu" curl -sf -o "$out/$i/$name" "$nginx_url" &
    fi
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  end=$(date +%s.%N)
  clients_cpu=$(cat "$out"/*.cpu | awk '{ s += $1 + $2 } END { printf "%.3f", s }')
  server_cpu_used=$(python3 -c "print(f'{$(server_cpu "$pair") - $cpu0:.2f}')")
  cpu="$server_cpu_used $clients_cpu"
  for i in $(seq "$n"); do
    [ "$(stat -c %s "$out/$i/$name")" -eq "$size" ] || { echo "baseline.sh: $pair copy $i is short" >&2; exit 1; }
  done
  if [ "$check" = yes ]; then cmp -s "$seed" "$out/1/$name" || { echo "baseline.sh: $pair copy differs" >&2; exit 1; }; fi
  rm -rf "$out"/*
  elapsed=$(python3 -c "print(f'{$end - $start:.3f}')")
}

results="$tmp/results.txt"
for n in $clients; do
  round peer "$n" no    # warm-up, untimed
  round nginx "$n" no
  for r in $(seq "$runs"); do
    check=$([ "$r" -eq 1 ] && echo yes || echo no)
    round peer "$n" "$check"
    echo "peer $n $elapsed $cpu" >>"$results"
    round nginx "$n" "$check"
    echo "nginx $n $elapsed $cpu" >>"$results"
  done
done

kill -TERM "$serve_pid"
wait "$serve_pid" || true
serve_pid=""
summary=$(tail -n 1 "$tmp/serve.out")

python3 - "$results" "$size" "$summary" "$runs" "$clients" <<'PY'
import json, statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
size, summary, runs = int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
times, cpus, split = {}, {}, {}
for pair, n, t, server, clients in rows:
    times.setdefault((pair, int(n)), []).append(float(t))
    cpus.setdefault((pair, int(n)), []).append(float(server) + float(clients))
    split.setdefault((pair, int(n)), []).append((float(server), float(clients)))
report = {"bench": "baseline", "file_bytes": size, "runs": int(runs), "clients": {}}
for n in sorted({n for _, n in times}):
    ours, theirs = times[("peer", n)], times[("nginx", n)]
    mo, mt = statistics.median(ours), statistics.median(theirs)
    ratio = mo / mt
    print(f"{n} client(s), {n * size / 2**30:.0f} GiB in all, {runs} rounds (median; mean ± sd; all):")
    for label, ts, m in (("peer serve + peer fetch", ours, mo), ("nginx + curl           ", theirs, mt)):
        sd = statistics.stdev(ts) if len(ts) > 1 else 0.0
        print(f"  {label}: {m:.3f} s ({n * size / m / 2**20:.0f} MiB/s); "
              f"{statistics.mean(ts):.3f} ± {sd:.3f}; {' '.join(f'{t:.2f}' for t in ts)}")
    print(f"  ratio ours/theirs (medians): {ratio:.3f} (target <= 1.10: {'met' if ratio <= 1.10 else 'MISSED'})")
    co, ct = statistics.median(cpus[("peer", n)]), statistics.median(cpus[("nginx", n)])
    print(f"  CPU seconds, server + clients (median): ours {co:.2f}, theirs {ct:.2f}, ratio {co / ct:.3f}")
    for label, pair in (("ours", "peer"), ("theirs", "nginx")):
        server = statistics.median(s for s, _ in split[(pair, n)])
        clients = statistics.median(c for _, c in split[(pair, n)])
        print(f"    {label:6}: server {server:.2f}, clients {clients:.2f} (medians)")
    report["clients"][n] = {"peer_seconds": ours, "nginx_curl_seconds": theirs, "ratio_of_medians": ratio,
                            "peer_cpu_seconds": cpus[("peer", n)], "nginx_curl_cpu_seconds": cpus[("nginx", n)]}
# Every round of ours, warm-up included, fetched the whole file once per client.
expected = (int(runs) + 1) * sum(int(n) for n in sys.argv[5].split()) * size
print(f"peer serve summary: {json.dumps(summary)}")
print(f"  bytes_sent = every byte our clients received: {'yes' if summary.get('bytes_sent') == expected else 'NO'} ({expected})")
report["server_bytes_sent"] = summary.get("bytes_sent")
print(json.dumps(report))
PY
