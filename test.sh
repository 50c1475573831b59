#!/usr/bin/env bash
# Runs every test: installs the system packages the tests need, builds the
# binaries, then runs the unit tests of every crate and the end-to-end tests
# in integration/ against the real third-party tools.
set -euo pipefail
cd "$(dirname "$0")"

bash integration/install-deps.sh
cargo build --release --bins --locked
cargo test --release --workspace --locked
# Every fuzz target builds and survives 20 s (fuzz/smoke.sh; installs cargo-fuzz if missing).
bash fuzz/smoke.sh
bash mininet/ci.sh   # the study: unit tests, then the quick preset for real on loopback and in Mininet (~30 s)
