#!/usr/bin/env bash
# Benchmark: `peer create` against `mktorrent -t <cores>` on the 1 GiB seed,
# same piece length (1 MiB), page cache warm, in one run with hyperfine.
# Prints both mean times, the ratio, and each tool's peak RSS.
# Targets: ratio (ours / mktorrent) <= 1.00, our peak RSS < 64 MiB.
#
# Usage: integration/bench/create.sh [WORKDIR]   (default bench-data/)
#   RUNS=N  timed runs per tool (default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(realpath -m "${1:-bench-data}")
runs=${RUNS:-10}
cores=$(nproc)
mkdir -p "$work"

bash integration/install-deps.sh --bench
cargo build --release --bins --locked -q
peer=$(realpath target/release/peer)
seed="$work/seed-1g.bin"
[ -f "$seed" ] || bash torrents/make-seed.sh 1G "$seed"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cat "$seed" >/dev/null   # warm the page cache

url=http://127.0.0.1:6969/announce
ours="$peer create $seed --piece-length 1M --no-date --force -a $url -o $out/peer.torrent"
theirs="mktorrent -t $cores -l 20 -a $url -o $out/mktorrent.torrent $seed"

hyperfine --style basic --warmup 2 --runs "$runs" --export-json "$out/times.json" \
  -n peer "$ours" -n mktorrent --prepare "rm -f $out/mktorrent.torrent" "$theirs" >&2

rss_kib() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n 1; }
rm -f "$out/mktorrent.torrent"
our_rss=$(rss_kib $ours)
rm -f "$out/mktorrent.torrent"
their_rss=$(rss_kib $theirs)

same=$([ "$("$peer" info --json "$out/peer.torrent" | python3 -c 'import json,sys;print(json.load(sys.stdin)["info_hash"])')" = \
         "$("$peer" info --json "$out/mktorrent.torrent" | python3 -c 'import json,sys;print(json.load(sys.stdin)["info_hash"])')" ] && echo yes || echo no)

python3 - "$out/times.json" "$our_rss" "$their_rss" "$cores" "$same" <<'PY'
import json, sys
times = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
ours, theirs = times["peer"], times["mktorrent"]
our_rss, their_rss, cores, same = int(sys.argv[2]) / 1024, int(sys.argv[3]) / 1024, sys.argv[4], sys.argv[5]
ratio = ours["mean"] / theirs["mean"]
print(f"peer create (1 GiB, 1 MiB pieces, {cores} cores): {ours['mean']:.3f} s ± {ours['stddev']:.3f}, peak RSS {our_rss:.1f} MiB")
print(f"mktorrent -t {cores}:                         {theirs['mean']:.3f} s ± {theirs['stddev']:.3f}, peak RSS {their_rss:.1f} MiB")
print(f"ratio peer/mktorrent: {ratio:.3f} (target <= 1.00: {'met' if ratio <= 1.0 else 'MISSED'})")
print(f"peer peak RSS target < 64 MiB: {'met' if our_rss < 64 else 'MISSED'}")
print(f"same info-hash from both: {same}")
print(json.dumps({"bench": "create", "peer_seconds": ours["mean"], "mktorrent_seconds": theirs["mean"],
                  "ratio": ratio, "peer_rss_mib": our_rss, "mktorrent_rss_mib": their_rss, "same_info_hash": same == "yes"}))
PY
