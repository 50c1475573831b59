#!/usr/bin/env bash
# Runs every test: installs the system packages the tests need, builds the
# binaries, then runs the unit tests of every crate and the end-to-end tests
# in integration/ against the real third-party tools.
set -euo pipefail
cd "$(dirname "$0")"

bash integration/install-deps.sh
# The `checked` profile: release optimisation with overflow checks and debug
# assertions on (Cargo.toml); the benchmarks build `release` on their own.
cargo build --profile checked --bins --locked
cargo test --profile checked --workspace --locked
# Every fuzz target builds and survives 20 s (fuzz/smoke.sh; installs cargo-fuzz if missing).
bash fuzz/smoke.sh
PROFILE=checked bash mininet/ci.sh   # the study: unit tests, then the quick preset for real on loopback and in Mininet (~30 s)
