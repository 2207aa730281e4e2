#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and fails if any crashes.
# Usage (from anywhere): fuzz/run-all.sh [seconds-per-target, default 60]
# Needs cargo-fuzz (`cargo install cargo-fuzz`); stable Rust with
# RUSTC_BOOTSTRAP=1, as in the README's Fuzzing section.
set -uo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$PWD/fuzz/target"
cargo fuzz build || exit 2
status=0
for t in $(cargo fuzz list); do
    mkdir -p "fuzz/corpus/$t"
    # Seeds and kept regression inputs are read too (new inputs go to corpus/).
    seeds=()
    for d in "fuzz/seeds/$t" "fuzz/regressions/$t"; do
        [ -d "$d" ] && seeds+=("$d")
    done
    echo "== $t: ${secs}s"
    if cargo fuzz run "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -max_len=4096 >"fuzz/$t.log" 2>&1; then
        grep -E "^Done|stat::number_of_executed_units" "fuzz/$t.log" | tail -n 1
    else
        echo "!! $t crashed: see fuzz/$t.log and fuzz/artifacts/$t/"
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "all targets ran ${secs}s each with 0 crashes"
exit "$status"
