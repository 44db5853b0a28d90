#!/usr/bin/env bash
# First cut of issue 13's history benchmark (SQLite only): SERIES series with a year of hour
# roll-ups and a day of raw one-minute checks, generated straight into a fresh store by
# crates/store/examples/history_size.rs, then `netvantage serve --as-of` the history's end and
# wrk (Debian's package) with 32 connections against the overview, a target page and
# /api/v1/targets, on loopback. Needs a release build (cargo build --release -p netvantage
# -p netvantage-store --example history_size) and wrk (apt-get install wrk).
#
#   bench/history/run.sh [SERIES] [SECONDS]      (defaults: 100 series, 10 s a page)
# BIN_DIR=target/debug runs a debug build instead (figures for checking the script only).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
series=${1:-100}
seconds=${2:-10}
release=${BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 3; }
work=$(mktemp -d -t nvhistory.XXXXXX)
serve_pid=
cleanup() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores; $series series"
"$release/examples/history_size" sqlite "$work/nv.db" "$series" | tee "$work/seed.txt"
now=$(sed -n 's/.*the page.s now: \([0-9]*\).*/\1/p' "$work/seed.txt")
"$release/netvantage" serve --sqlite "$work/nv.db" --listen 127.0.0.1:0 --as-of "$now" > "$work/serve.out" 2> "$work/serve.err" &
serve_pid=$!
for _ in $(seq 1 100); do grep -q listening "$work/serve.out" && break; sleep 0.1; done
base=$(sed -n 's/^listening \(http:[^ ]*\)\/$/\1/p' "$work/serve.out")
[ -n "$base" ] || { cat "$work/serve.err" >&2; exit 4; }
id=$(curl -s "$base/api/v1/targets?per_page=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
for page in "/" "/targets/$id" "/api/v1/targets"; do
  echo "## GET $page"
  # One request first: the figures are the steady state a page's readers see, not the first
  # snapshot's computation (its time is printed here).
  curl -s -o /dev/null -w "first request: %{time_total} s\n" "$base$page"
  wrk -t 2 -c 32 -d "${seconds}s" --latency "$base$page" | grep -E 'Requests/sec|50%|99%|Non-2xx|Socket errors' || true
done
