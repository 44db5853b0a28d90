#!/usr/bin/env bash
# Fuzzes every target of fuzz/ for a bounded time each (default 60 s): coverage-guided, with
# cargo-fuzz and libFuzzer. Not part of scripts/test.sh (CI time); the test suite runs the
# committed corpus and regressions instead (crates/fuzzing/tests/corpus.rs).
#
#   fuzz/run.sh [SECONDS] [TARGET...]      e.g. fuzz/run.sh 60, fuzz/run.sh 10 host_lines
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). A stable toolchain works: libFuzzer's
# instrumentation needs nightly-only flags, which RUSTC_BOOTSTRAP=1 unlocks on stable (set
# here unless the active toolchain is nightly). New inputs that grow coverage are kept in
# fuzz/artifacts/TARGET/corpus/ (minimise and commit useful ones to fuzz/corpus/TARGET/ with
# `cargo fuzz cmin`); an input that crashes is copied to
# fuzz/regressions/TARGET/, where the test suite runs it from then on, and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 3
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 3
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi
export CARGO_INCREMENTAL=0
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

# One build for every target (address sanitizer: memory errors in C dependencies and unsafe
# code abort the run), then each runs for its time.
cargo fuzz build

failed=()
for target in "${targets[@]}"; do
    # New inputs go to the first folder (artifacts/, not committed); the committed seeds and
    # regressions are read as they are.
    mkdir -p "corpus/$target" "regressions/$target" "artifacts/$target/corpus"
    echo "== $target: ${seconds}s" >&2
    log="artifacts/$target/run.log"
    # -timeout: one input taking a second is a hang; -rss_limit_mb: an input that eats memory
    # (a YAML bomb, an unbounded read) is a crash. libFuzzer's exit status says what happened.
    if cargo fuzz run "$target" "artifacts/$target/corpus" "corpus/$target" "regressions/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" | sed "s/^/   /" >&2 || true
    else
        failed+=("$target")
        echo "   FAILED: see fuzz/$log" >&2
        for crash in "artifacts/$target"/crash-* "artifacts/$target"/oom-* "artifacts/$target"/timeout-*; do
            [ -e "$crash" ] && cp "$crash" "regressions/$target/" && echo "   kept $crash in fuzz/regressions/$target/" >&2
        done
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz/run.sh: failing targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz/run.sh: ${#targets[@]} targets, ${seconds}s each, no crash" >&2
