#!/usr/bin/env bash
# CI for the study: installs what it needs from Debian, runs the unit tests,
# then the quick preset for real on one machine (--local) and in Mininet,
# and checks both results folders (every (mode, N) present, every run
# complete, every copy verified). Ends with "N passed, M failed".
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
tally() {  # adds the ok/FAIL lines printed by study.check
  local out=$1
  echo "$out"
  passed=$((passed + $(grep -c '^ok ' <<<"$out")))
  failed=$((failed + $(grep -c '^FAIL' <<<"$out")))
}

(cd mininet && $py -m unittest discover -s tests -t . 2>&1 | tail -3)
result "unit tests (bounds, tables, summary)" "${PIPESTATUS[0]}"

local_out=$(mktemp -d) net_out=$(mktemp -d)
trap 'rm -rf "$local_out" "$net_out"' EXIT

start=$(date +%s)
$py mininet/experiment.py --local --preset quick --bin "$bin" --out "$local_out"
result "quick preset on one machine ($(($(date +%s) - start)) s)" $?
tally "$(cd mininet && $py -m study.check "$local_out")"

start=$(date +%s)
$sudo $py mininet/experiment.py --preset quick --bin "$bin" --out "$net_out"
result "quick preset in Mininet ($(($(date +%s) - start)) s)" $?
tally "$(cd mininet && $py -m study.check "$net_out")"

echo "mininet/ci.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
