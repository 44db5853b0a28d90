#!/usr/bin/env bash
# Benchmark of `netvantage http` against Prometheus blackbox_exporter on local targets only
# (127.0.0.1). Builds release binaries, raises the open-file limit to the hard limit, then runs
# bench.py, which prints a markdown table and writes bench/out/http.json.
#
#   bench/http/run.sh                      # 1,000 and 10,000 endpoints, concurrency 256
#   bench/http/run.sh --sizes 1000         # quicker
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v prometheus-blackbox-exporter >/dev/null; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install prometheus-blackbox-exporter (apt-get install prometheus-blackbox-exporter)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-blackbox-exporter >/dev/null
fi

cargo build --release --locked -p netvantage -p netvantage-http --bin netvantage --example bench_server
ulimit -n "$(ulimit -Hn)"
exec python3 bench/http/bench.py \
  --netvantage target/release/netvantage \
  --server target/release/examples/bench_server \
  "$@"
