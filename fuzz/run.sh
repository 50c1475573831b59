#!/usr/bin/env bash
# Builds the fuzz targets and runs each one for a set time, one after another,
# then prints per target: executions, coverage (`cov:` edges and `ft:`
# features from libFuzzer's final line), corpus size, and any crash with its
# artifact. Exits non-zero if any target crashed, timed out or ran out of memory.
#
#   fuzz/run.sh [SECONDS] [TARGET...]   SECONDS per target (default 600);
#                                       the grown corpus stays in fuzz/corpus/
#   fuzz/run.sh --smoke                 CI: every target for 20 s on a throwaway
#                                       corpus; installs cargo-fuzz if missing
#
# Every build and fuzzer runs under `nice -n 19`. Stable Rust is enough:
# RUSTC_BOOTSTRAP=1 lets it take the -Z flags cargo-fuzz passes. The
# sanitizer is AddressSanitizer unless FUZZ_SANITIZER says otherwise (none).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(bencode metainfo wire_codec handshake tracker_query tracker_response ext_handshake ut_metadata ut_pex ledbat_delay udp_request udp_response krpc dht_state)
smoke=false
seconds=600
if [[ ${1:-} == --smoke ]]; then
    smoke=true
    seconds=${FUZZ_SMOKE_SECONDS:-20}
    shift
elif [[ ${1:-} =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
targets=("${@:-${ALL_TARGETS[@]}}")

export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    nice -n 19 cargo install cargo-fuzz --locked --version '^0.13'
fi
sanitizer=${FUZZ_SANITIZER:-address}
build_flags=(--debug-assertions --sanitizer "$sanitizer")

started=$(date +%s)
nice -n 19 cargo fuzz build "${build_flags[@]}"
built=$(date +%s)

# Per-target libFuzzer options: dictionaries, and input sizes that reach the
# limits (a query over MAX_QUERY_BYTES, a frame of a whole 16 KiB block).
options_for() {
    case $1 in
        bencode | metainfo | tracker_response | ext_handshake | ut_pex | ledbat_delay) echo "-dict=fuzz/dict/bencode.dict" ;;
        ut_metadata) echo "-dict=fuzz/dict/bencode.dict -max_len=20000" ;;
        tracker_query) echo "-dict=fuzz/dict/tracker_query.dict -max_len=9000" ;;
        wire_codec) echo "-dict=fuzz/dict/wire_codec.dict -max_len=40000" ;;
        handshake) echo "-max_len=128" ;;
        udp_request | udp_response) echo "-max_len=2048" ;;
        krpc) echo "-dict=fuzz/dict/bencode.dict -max_len=5000" ;;
        dht_state) echo "-dict=fuzz/dict/bencode.dict -max_len=70000" ;;
    esac
}

logs=fuzz/logs
mkdir -p "$logs"
if $smoke; then
    corpus_root=$(mktemp -d)
    trap 'rm -rf "$corpus_root"' EXIT
else
    corpus_root=fuzz/corpus
fi

failed=0
summary=()
for target in "${targets[@]}"; do
    corpus=$corpus_root/$target
    mkdir -p "$corpus"
    log=$logs/$target.log
    # shellcheck disable=SC2046 # the options are words
    if nice -n 19 cargo fuzz run "${build_flags[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        $(options_for "$target") >"$log" 2>&1; then
        result=ok
    else
        artifact=$(grep -o 'Test unit written to .*' "$log" | tail -1 | cut -d' ' -f5 || true)
        result=${artifact:+CRASH $artifact}
        result=${result:-FAILED (see $log)}
        failed=1
    fi
    # The last status line, e.g. `#840618 DONE cov: 681 ft: 3081 corp: 265/230Kb ...`.
    status=$(grep -E $'^#[0-9]+\t' "$log" | tail -1 || true)
    field() { sed -nE "s/.* $1: ([^ ]+).*/\\1/p" <<<"$status"; }
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
    rate=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+)/\1/p' "$log" | tail -1)
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }')
    summary+=("$(printf '%-17s %11s %7s %5s %6s %12s %6s %10s  %s' "$target" "${execs:-?}" "${rate:-?}" \
        "$(field cov)" "$(field ft)" "$(field corp)" "$files" "$bytes" "$result")")
done

{
    echo "fuzz: $seconds s per target, sanitizer $sanitizer, build $((built - started)) s, total $(($(date +%s) - started)) s"
    printf '%-17s %11s %7s %5s %6s %12s %6s %10s  %s\n' target executions exec/s cov ft corp: files bytes result
    printf '%s\n' "${summary[@]}"
} | tee "$logs/summary.txt"
exit "$failed"
