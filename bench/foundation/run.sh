#!/usr/bin/env bash
# Before/after benchmark of a refactor (issue 11): the same benchmarks from two checkouts,
# interleaved in one run on one machine, so a slow spell falls on both alike.
#
#   bench/foundation/run.sh BEFORE_DIR AFTER_DIR [REPEAT]
#
# Each DIR is a checkout with its release binaries built (`cargo build --release -p netvantage
# -p netvantage-testfleet -p netvantage-http --bin netvantage --bin nv-testfleet --example
# bench_server`). Runs, REPEAT times (default 3), alternating the checkouts:
#   - ports: bench/ports/run.py, 10k and 100k, all-up and mixed, netvantage (100 ms) against the
#     bare epoll loop and nmap -T4 in the same run;
#   - http: bench/http/bench.py at 1,000 endpoints against blackbox_exporter in the same run.
# Needs root (network namespaces). Output: one log per run under bench/foundation/out/.
set -euo pipefail
before=$(cd "$1" && pwd); after=$(cd "$2" && pwd); repeat=${3:-3}
out="$(cd "$(dirname "$0")" && pwd)/out"; mkdir -p "$out"
ulimit -n "$(ulimit -Hn)"
for i in $(seq 1 "$repeat"); do
  for side in before after; do
    dir=$before; [ "$side" = after ] && dir=$after
    echo "== run $i $side ($dir)" >&2
    (cd "$dir" && python3 bench/ports/run.py --sizes 10000,100000 --mixes all-up,mixed \
        --only "netvantage (timeout 100ms),nmap -T4,epoll") > "$out/ports-$side-$i.txt" 2>&1
    (cd "$dir" && python3 bench/http/bench.py --netvantage target/release/netvantage \
        --server target/release/examples/bench_server --sizes 1000 \
        --out "$out/http-$side-$i.json") > "$out/http-$side-$i.txt" 2>&1
  done
done
echo "logs in $out" >&2
