#!/usr/bin/env bash
# Benchmark: how long a magnet link takes to become a torrent. One seeder of
# ours serves a torrent with many pieces (SIZE, 16 KiB pieces: a large info
# dictionary, 20 bytes per piece); each client is given only the magnet link
# and the seeder's address, and the time from its start to the info
# dictionary being verified is taken, RUNS times each, alternating:
#   ours        `peer download MAGNET --peer SEEDER`, the log's "metadata
#               verified" line (its timestamp against the start)
#   libtorrent  integration/lt_peer.py (python3-libtorrent), its "metadata"
#               event (seconds from its own start, after its session is up)
# Prints each run and the medians. Loopback only; every process it starts is
# stopped by PID.
#
# Usage: integration/bench/magnet.sh   (SIZE=256M RUNS=5)
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${SIZE:-256M}
runs=${RUNS:-5}
bash integration/install-deps.sh
cargo build --release --bins --locked -q
peer=$(realpath target/release/peer)
tracker_bin=$(realpath target/release/tracker)
lt_peer=$(realpath integration/lt_peer.py)

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

mkdir -p "$tmp/data"
bash torrents/make-seed.sh "$size" "$tmp/data/payload.bin"
"$tracker_bin" --listen 127.0.0.1:0 > "$tmp/tracker.out" 2>/dev/null &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/tracker.out" ] && break; sleep 0.1; done
taddr=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["listening"])' "$tmp/tracker.out")
"$peer" create -l 16K --no-date -a "http://$taddr/announce" -o "$tmp/t.torrent" "$tmp/data/payload.bin" >/dev/null
hash=$("$peer" info --json "$tmp/t.torrent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["info_hash"])')
"$peer" seed "$tmp/t.torrent" --data "$tmp/data" --port 0 >/dev/null 2>&1 &
pids+=($!)
seeder=""
for _ in $(seq 600); do
  seeder=$(curl -s "http://$taddr/stats" | python3 -c 'import json,sys
s=json.load(sys.stdin)["swarms"]
print(s[0]["peers"][0]["address"] if s and s[0]["seeders"] else "")' 2>/dev/null || true)
  [ -n "$seeder" ] && break
  sleep 0.1
done
[ -n "$seeder" ] || { echo "the seeder never announced" >&2; exit 1; }
link="magnet:?xt=urn:btih:$hash"
metadata_bytes=$(python3 -c 'import sys
d=open(sys.argv[1],"rb").read(); i=d.index(b"4:info")+6; print(len(d)-i-1)' "$tmp/t.torrent")
echo "magnet: $size in 16 KiB pieces, an info dictionary of $metadata_bytes bytes, one seeder of ours at $seeder"

ours_once() {
  local out="$tmp/ours-$1" start log
  start=$(date +%s.%N)
  log=$(RUST_LOG=peer=info "$peer" download "$link" --peer "$seeder" --output "$out" --port 0 2>&1 >/dev/null)
  # The log's first timestamp is near the start; the verified line's against it.
  python3 - "$start" <<PY
import sys, datetime
start = float(sys.argv[1])
for line in """$log""".splitlines():
    if "metadata verified" in line:
        ts = datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
        print(f"{ts - start:.4f}")
        break
else:
    sys.exit("no 'metadata verified' line")
PY
  rm -rf "$out"
}

lt_once() {
  local out="$tmp/lt-$1"
  mkdir -p "$out"
  /usr/bin/python3 "$lt_peer" magnet "$link" "$out" "$seeder" > "$tmp/lt.out" 2>/dev/null &
  local pid=$!
  pids+=($pid)
  local seconds=""
  for _ in $(seq 600); do
    seconds=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e=json.loads(l)
    if e["event"]=="metadata": print("%.4f" % e["seconds"]); break' "$tmp/lt.out" 2>/dev/null || true)
    [ -n "$seconds" ] && break
    sleep 0.05
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$out"
  [ -n "$seconds" ] || { echo "libtorrent never had the metadata" >&2; exit 1; }
  echo "$seconds"
}

ours=() lt=()
for i in $(seq "$runs"); do
  ours+=("$(ours_once "$i")")
  lt+=("$(lt_once "$i")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mo=$(median "${ours[@]}")
ml=$(median "${lt[@]}")
echo "ours:       ${ours[*]} s  (median $mo s)"
echo "libtorrent: ${lt[*]} s  (median $ml s)"
python3 -c "import sys; print(f'ratio libtorrent / ours: {float(sys.argv[2]) / float(sys.argv[1]):.2f}')" "$mo" "$ml"
