#!/usr/bin/env bash
# Benchmark: how long a trackerless magnet link takes to find its first peer
# through the DHT, ours against libtorrent, on the same loopback DHT: one
# python3-libtorrent node that everyone bootstraps from, NODES of our own
# `peer dht` nodes, and one libtorrent seeder that announced the torrent.
# Each client gets only the magnet link (the hash) and the bootstrap node;
# the time from its start to its first peer is taken, RUNS times each,
# alternating:
#   ours        `peer download MAGNET --dht-bootstrap NODE`, the log's "first
#               peers from the DHT" line (its timestamp against the start)
#   libtorrent  integration/lt_dht.py magnet, its "first_peer" event (seconds
#               from its own start, after the interpreter and the module load)
# Prints each run and the medians. Loopback only; every process it starts is
# stopped by PID.
#
# Usage: integration/bench/dht.sh   (NODES=30 RUNS=7)
set -euo pipefail
cd "$(dirname "$0")/../.."
nodes=${NODES:-30}
runs=${RUNS:-7}
bash integration/install-deps.sh
cargo build --release --bins --locked -q
peer=$(realpath target/release/peer)
lt_dht=$(realpath integration/lt_dht.py)

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Waits for a JSON line with "event" $2 in file $1 and prints field $3.
field_of() {
  for _ in $(seq 600); do
    if value=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    try: e=json.loads(l)
    except ValueError: continue
    if e.get("event")==sys.argv[2]: print(e[sys.argv[3]]); sys.exit(0)
sys.exit(1)' "$1" "$2" "$3" 2>/dev/null); then
      echo "$value"
      return 0
    fi
    sleep 0.05
  done
  echo "no $2 event in $1" >&2
  return 1
}

mkdir -p "$tmp/data"
bash torrents/make-seed.sh 4M "$tmp/data/payload.bin"
"$peer" create -l 256K --no-date -o "$tmp/t.torrent" "$tmp/data/payload.bin" >/dev/null
hash=$("$peer" info --json "$tmp/t.torrent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["info_hash"])')
link="magnet:?xt=urn:btih:$hash"

/usr/bin/python3 "$lt_dht" node > "$tmp/node.out" 2>/dev/null &
pids+=($!)
boot="127.0.0.1:$(field_of "$tmp/node.out" listening port)"
for i in $(seq "$nodes"); do
  "$peer" dht --listen 127.0.0.1:0 --dht-bootstrap "$boot" < /dev/null > "$tmp/dht-$i.out" 2>/dev/null &
  pids+=($!)
done
/usr/bin/python3 "$lt_dht" seed "$tmp/t.torrent" "$tmp/data" --bootstrap "$boot" > "$tmp/seed.out" 2>/dev/null &
pids+=($!)
field_of "$tmp/seed.out" seeding seconds > /dev/null
# Let the DHT settle and the seeder's announce land.
sleep 5
echo "DHT: one libtorrent node, $nodes of ours, one libtorrent seeder; magnet $link"

ours_once() {
  local out="$tmp/ours-$1" start log
  start=$(date +%s.%N)
  log=$(RUST_LOG=peer=info timeout 60 "$peer" download "$link" --dht-bootstrap "$boot" --output "$out" --port 0 2>&1 >/dev/null || true)
  python3 - "$start" <<PY
import sys, datetime
start = float(sys.argv[1])
for line in """$log""".splitlines():
    if "first peers from the DHT" in line:
        ts = datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
        print(f"{ts - start:.4f}")
        break
else:
    sys.exit("no 'first peers from the DHT' line")
PY
  rm -rf "$out"
}

lt_once() {
  local out="$tmp/lt-$1"
  mkdir -p "$out"
  LT_DHT_REANNOUNCE=0 /usr/bin/python3 "$lt_dht" magnet "$link" "$out" --bootstrap "$boot" > "$tmp/lt-$1.out" 2>/dev/null &
  local pid=$!
  pids+=($pid)
  local seconds
  seconds=$(field_of "$tmp/lt-$1.out" first_peer seconds)
  field_of "$tmp/lt-$1.out" complete seconds > /dev/null
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$out"
  printf '%.4f\n' "$seconds"
}

ours=() lt=()
for i in $(seq "$runs"); do
  ours+=("$(ours_once "$i")")
  lt+=("$(lt_once "$i")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
spread() { printf '%s\n' "$@" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s", lo, hi }'; }
mo=$(median "${ours[@]}")
ml=$(median "${lt[@]}")
echo "ours:       ${ours[*]} s  (median $mo s, spread $(spread "${ours[@]}"))"
echo "libtorrent: ${lt[*]} s  (median $ml s, spread $(spread "${lt[@]}"))"
python3 -c "import sys; print(f'ratio libtorrent / ours: {float(sys.argv[2]) / float(sys.argv[1]):.2f}')" "$mo" "$ml"
