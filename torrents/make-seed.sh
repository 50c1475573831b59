#!/usr/bin/env bash
# Writes the deterministic seed file: the first SIZE bytes of an AES-128-CTR
# keystream under a fixed key and IV (OpenSSL, hardware AES where the CPU has
# it: about 1 GB/s or more). Every host gets the same bytes, and a smaller
# file is a prefix of a larger one.
#
# Usage: torrents/make-seed.sh [SIZE [OUTPUT]]
#   SIZE    a byte count with an optional K/M/G suffix (powers of 1024); default 1G
#   OUTPUT  default seed-1g.bin in the current directory
#
# The file appears under its final name only once complete.
set -euo pipefail

size=${1:-1G}
out=${2:-seed-1g.bin}
key=000102030405060708090a0b0c0d0e0f   # fixed: changing it changes every torrent made from the seed
iv=00000000000000000000000000000000

bytes=$(numfmt --from=iec "$size") || { echo "make-seed: bad size '$size'" >&2; exit 2; }
command -v openssl >/dev/null || { echo "make-seed: openssl is needed (apt-get install openssl)" >&2; exit 1; }

part="$out.part.$$"
trap 'rm -f "$part"' EXIT
# head closes the pipe when it has enough, which ends openssl with SIGPIPE:
# that is expected, so only head's status and the final size are checked.
{ openssl enc -aes-128-ctr -nosalt -K "$key" -iv "$iv" -in /dev/zero 2>/dev/null || true; } | head -c "$bytes" >"$part"
actual=$(stat -c %s "$part")
if [ "$actual" != "$bytes" ]; then
  echo "make-seed: wrote $actual bytes instead of $bytes" >&2
  exit 1
fi
mv "$part" "$out"
trap - EXIT
