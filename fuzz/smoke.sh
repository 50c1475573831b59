#!/usr/bin/env bash
# CI smoke test: builds every fuzz target and runs each for 20 s
# (FUZZ_SMOKE_SECONDS), so a target that no longer builds or crashes at once
# fails the build. Installs cargo-fuzz if missing.
exec "$(dirname "$0")/run.sh" --smoke "$@"
