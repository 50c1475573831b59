#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks drive, when missing.
# Needs root (or sudo) for apt-get; does nothing when everything is present.
#
# Usage: integration/install-deps.sh [--bench]
#   --bench  also the tools only the benchmarks use (hyperfine, GNU time, nginx, wrk)
set -euo pipefail

# command -> Debian package
declare -A needed=(
  [transmission-show]=transmission-cli
  [transmission-create]=transmission-cli
  [aria2c]=aria2
  [mktorrent]=mktorrent
  [openssl]=openssl
  [numfmt]=coreutils
  [curl]=curl
  [ip]=iproute2
  [chromium]=chromium
  [opentracker]=opentracker
)
if [ "${1:-}" = "--bench" ]; then
  needed[hyperfine]=hyperfine
  needed[/usr/bin/time]=time
  needed[nginx]=nginx
  needed[wrk]=wrk
fi

# nginx lives in /usr/sbin, outside a normal user's PATH.
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
for tool in "${!needed[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${needed[$tool]}")
done
# libtorrent's Python binding, for Debian's python3 (integration/lt_peer.py).
/usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1 || missing+=(python3-libtorrent)
[ ${#missing[@]} -eq 0 ] && exit 0

packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
echo "install-deps: installing $packages" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $packages >/dev/null
# Debian's package enables and starts opentracker.service where systemd runs:
# a daemon on port 6969, our tracker's default port. The tests start their own
# opentracker and need none; say so rather than touch the system's services.
if [[ " $packages " == *" opentracker "* ]] && [ -d /run/systemd/system ]; then
  echo "install-deps: opentracker.service may now hold port 6969 (tracker's default);" \
    "stop it with: systemctl disable --now opentracker" >&2
fi
