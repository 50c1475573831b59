#!/usr/bin/env bash
# A second Mininet "server" on this machine, for trying and testing the
# study's cluster mode (Mininet Cluster Edition) without a second machine:
# a network namespace joined to this one by a veth pair, running its own
# sshd (its own config, port, host key and authorized key; never the system
# service). The namespace shares this machine's files, so a cluster study
# over it needs no copying to work, but it copies anyway, as to a real server.
#
# Usage (as root):
#   mininet/cluster/netns-server.sh up   [NAME]   makes it, prints one JSON line
#   mininet/cluster/netns-server.sh down [NAME]   removes it and everything it made
#   mininet/cluster/netns-server.sh status [NAME] exit 0 when it is up
# NAME defaults to mnsrv2; server k of this script's making gets 10.201.k.2/24
# (this machine's side 10.201.k.1), k from 2 to 254 by NAME's trailing number.
#
# What `up` prints: {"server": NAME, "address": "10.201.K.2", "ssh_config": FILE}.
# `ssh -F FILE NAME` (or the address) reaches the namespace as root with the key
# made here; Mininet's cluster.py takes no ssh options, so experiment.py
# --cluster gives it `-F FILE` through its own subclass. Everything lives in /tmp/peer-lab-cluster-NAME; `down` stops the sshd by the
# PID it wrote and deletes the namespace (and with it the veth pair), nothing else.
set -euo pipefail

action=${1:-}
name=${2:-mnsrv2}
[[ $name =~ ^[a-z][a-z0-9]{0,9}$ ]] || { echo "netns-server: NAME must be a-z0-9, at most 10 characters" >&2; exit 2; }
k=$(echo "$name" | grep -o '[0-9]*$' || true)
k=${k:-2}
[ "$k" -ge 2 ] && [ "$k" -le 254 ] || { echo "netns-server: NAME's number must be 2 to 254" >&2; exit 2; }
ours=10.201.$k.1
theirs=10.201.$k.2
port=2222
state=/tmp/peer-lab-cluster-$name
host_if=${name}h
ns_if=${name}n

need_root() { [ "$(id -u)" -eq 0 ] || { echo "netns-server: run as root" >&2; exit 1; }; }

install_sshd() {
  local missing=()
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v sudo >/dev/null 2>&1 || missing+=(sudo)  # cluster.py runs `sudo` on every server
  [ ${#missing[@]} -eq 0 ] && return 0
  # Install without starting the system's ssh service: a policy-rc.d that
  # says no, unless one is there already.
  local made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=yes
  fi
  echo "netns-server: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
    || { DEBIAN_FRONTEND=noninteractive apt-get update >&2 && \
         DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  return 0
}

is_up() {
  ip netns list 2>/dev/null | grep -qw "^$name" && [ -s "$state/sshd.pid" ] \
    && kill -0 "$(cat "$state/sshd.pid")" 2>/dev/null
}

up() {
  need_root
  if is_up; then
    echo "netns-server: $name is already up" >&2
  else
    install_sshd
    if ip netns list | grep -qw "^$name"; then
      echo "netns-server: a namespace $name exists that this script did not leave running; remove it first (down)" >&2
      exit 1
    fi
    mkdir -p "$state" /run/sshd
    chmod 700 "$state"
    ip netns add "$name"
    ip link add "$host_if" type veth peer name "$ns_if"
    ip link set "$ns_if" netns "$name"
    ip addr add "$ours/24" dev "$host_if"
    ip link set "$host_if" up
    ip -n "$name" addr add "$theirs/24" dev "$ns_if"
    ip -n "$name" link set "$ns_if" up
    ip -n "$name" link set lo up
    [ -s "$state/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$state/host_key"
    [ -s "$state/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$state/client_key"
    cp "$state/client_key.pub" "$state/authorized_keys"
    cat > "$state/sshd_config" <<CONF
Port $port
ListenAddress $theirs
HostKey $state/host_key
PidFile $state/sshd.pid
AuthorizedKeysFile $state/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitTunnel yes
MaxSessions 200
MaxStartups 100:30:200
StrictModes no
AcceptEnv *
Subsystem sftp internal-sftp
CONF
    ip netns exec "$name" /usr/sbin/sshd -f "$state/sshd_config" -E "$state/sshd.log"
    for _ in $(seq 50); do [ -s "$state/sshd.pid" ] && break; sleep 0.1; done
    cat > "$state/ssh_config" <<CONF
Host $name $theirs
  HostName $theirs
  Port $port
  User root
  IdentityFile $state/client_key
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
CONF
    if ! ssh -F "$state/ssh_config" -o BatchMode=yes -o ConnectTimeout=5 "$name" true; then
      echo "netns-server: sshd in $name does not answer; see $state/sshd.log" >&2
      down
      exit 1
    fi
  fi
  printf '{"server": "%s", "address": "%s", "ssh_config": "%s"}\n' "$name" "$theirs" "$state/ssh_config"
}

down() {
  need_root
  if [ -s "$state/sshd.pid" ]; then
    local pid
    pid=$(cat "$state/sshd.pid")
    # Its sessions first (children of that PID), then the listener.
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  fi
  # Only our namespace, by the name this script gave it (its veth end goes with it).
  if ip netns list 2>/dev/null | grep -qw "^$name"; then
    ip netns del "$name"
  fi
  ip link del "$host_if" 2>/dev/null || true
  rm -rf "$state"
}

case $action in
  up) up ;;
  down) down ;;
  status) is_up ;;
  *) sed -n '2,24p' "$0" >&2; exit 2 ;;
esac
