#!/usr/bin/env bash
# The main job, for now: regenerate the deterministic 1 GiB seed, create its
# torrent with `peer create`, check it against the committed
# torrents/seed-1g.torrent, and show what it holds.
#
# Usage: ./run.sh [WORKDIR]   (default: bench-data/, about 1 GiB of disk)
set -euo pipefail
cd "$(dirname "$0")"
work=${1:-bench-data}
mkdir -p "$work"

cargo build --release --bins --locked
peer=target/release/peer
seed="$work/seed-1g.bin"
[ -f "$seed" ] || { echo "generating $seed"; bash torrents/make-seed.sh 1G "$seed"; }

"$peer" create "$seed" --no-date --force -a http://127.0.0.1:6969/announce -o "$work/seed-1g.torrent"
made=$("$peer" info --json "$work/seed-1g.torrent" | python3 -c 'import json,sys; print(json.load(sys.stdin)["info_hash"])')
committed=$("$peer" info --json torrents/seed-1g.torrent | python3 -c 'import json,sys; print(json.load(sys.stdin)["info_hash"])')
"$peer" info "$work/seed-1g.torrent"
if [ "$made" = "$committed" ]; then
  echo "OK: the regenerated seed matches torrents/seed-1g.torrent ($made)"
else
  echo "MISMATCH: regenerated $made, committed $committed" >&2
  exit 1
fi
