#!/usr/bin/env bash
# The main job: build everything, then measure how the time to hand one file
# to N hosts grows with N, client-server (`peer serve` + N x `peer fetch`)
# against peer-to-peer (`tracker` + `peer seed` + N x `peer download --seed`),
# on this machine without root: every host is a process on 127.0.0.1 and
# every link's 100 Mbit/s is emulated by peer's rate limits. A 64 MiB file,
# N = 1, 2, 4, 6, one run (about 3 minutes); prints the table and leaves the
# CSV, the Markdown tables, summary.json and plot.png in OUT.
#
# Usage: ./run.sh [OUT [experiment.py options...]]   (OUT defaults to bench-data/study)
#   e.g. ./run.sh bench-data/study --runs 3 --size 100M   (options given override the defaults)
# PROFILE=checked ./run.sh ...  builds and runs that cargo profile instead of release (CI: a small
# size with the suite's own build).
# The study itself, in Mininet too: mininet/experiment.py (README, "The study").
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-bench-data/study}
shift || true
py=/usr/bin/python3   # Debian's python3, the one apt-get's python3-matplotlib is for

sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
can_install() { [ -z "$sudo" ] || sudo -n true 2>/dev/null; }
apt_install() {
  echo "run.sh: installing $*" >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

[ -x "$py" ] || { can_install && apt_install python3; } || { echo "run.sh: $py is missing (apt-get install python3)" >&2; exit 1; }
command -v openssl >/dev/null || { can_install && apt_install openssl; } ||
  { echo "run.sh: openssl is missing (apt-get install openssl); torrents/make-seed.sh needs it" >&2; exit 1; }
if ! "$py" -c 'import matplotlib' 2>/dev/null; then
  if can_install; then
    apt_install python3-matplotlib || echo "run.sh: could not install python3-matplotlib: the table only, no plot" >&2
  else
    echo "run.sh: python3-matplotlib is missing and there is no root or sudo to install it:" \
      "the table is printed, the plot is skipped" >&2
  fi
fi

profile=${PROFILE:-release}
cargo build --profile "$profile" --bins --locked
"$py" mininet/experiment.py --local --size 64M --peers 1,2,4,6 --runs 1 --bw 100 --bin "$PWD/target/$profile" --out "$out" "$@"
