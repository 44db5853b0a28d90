#!/usr/bin/env bash
# Issue 13's page benchmark, both backends: SERIES series (two vantage points a target, a tenth
# of the targets HTTP over 20 domains) with DAYS of hour roll-ups and RAW_HOURS of raw one-minute
# checks, generated straight into a fresh store and rolled (crates/store/examples/history_size.rs
# prints how long each step took), then `netvantage serve --as-of` the history's end and wrk
# (Debian's package) with 32 connections against the overview (first and a deep page), a target
# page and /api/v1/targets, on loopback. The floor: the same hardened server
# (crates/server/examples/static_page.rs) answering with a saved copy of the same page, measured
# in the same run; each page's p99 is printed beside the floor's as a ratio.
#
#   bench/history/run.sh [SERIES] [SECONDS] [DAYS] [RAW_HOURS]
#       defaults: 10000 series, 10 s a page, 365 days, 24 raw hours
#   BACKENDS="sqlite" (or "postgres") runs one backend; the default is both. PostgreSQL is a
#   throwaway database on 127.0.0.1:5432 (user postgres, trust auth), dropped on exit.
#   KEEP=DIR keeps the seeded stores for another run (the SQLite file in DIR, the PostgreSQL
#   database nvkeep_SERIES_DAYS_RAW_HOURS) and reuses them when they are there: for comparing
#   builds on one history. Drop them by hand (rm DIR/*.db; DROP DATABASE …).
#
# Needs a release build (cargo build --release --workspace --bin netvantage --example
# history_size --example static_page) and wrk (apt-get install wrk). BIN_DIR=target/debug runs
# a debug build instead (figures for checking the script only).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
series=${1:-10000}
seconds=${2:-10}
days=${3:-365}
raw_hours=${4:-24}
backends=${BACKENDS:-sqlite postgres}
bin=${BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 3; }
for tool in "$bin/netvantage" "$bin/examples/history_size" "$bin/examples/static_page"; do
  [ -x "$tool" ] || { echo "$tool is missing: cargo build --release --workspace --bin netvantage --example history_size --example static_page" >&2; exit 3; }
done
work=$(mktemp -d -t nvhistory.XXXXXX)
pids=()
databases=()
pg="host=127.0.0.1 port=5432 user=postgres"
cleanup() {
  for pid in "${pids[@]:-}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  for db in "${databases[@]}"; do psql -q "$pg dbname=postgres" -c "DROP DATABASE IF EXISTS $db" || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts a server (its command line after the output file's name); sets $url to its base URL.
start() {
  local out=$1; shift
  "$@" > "$out" 2> "$out.err" &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q listening "$out" && break; sleep 0.1; done
  url=$(sed -n 's/^listening \(http:[^ ]*\)\/$/\1/p' "$out")
  [ -n "$url" ] || { cat "$out.err" >&2; exit 4; }
}

# Stops the server started last.
stop_last() {
  local pid=${pids[${#pids[@]}-1]}
  kill "$pid"; wait "$pid" 2>/dev/null || true
  unset "pids[${#pids[@]}-1]"
}

# wrk's p50 and p99 in ms and requests/s of one URL: "p50 p99 rps errors".
measure() {
  wrk -t 2 -c 32 -d "${seconds}s" --latency "$1" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; return v * 1000 }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } $1 == "Requests/sec:" { rps = $2 }
    /Non-2xx|Socket errors/ { errors = errors $0 }
    END { printf "%.1f %.1f %.0f %s\n", p50, p99, rps, (errors == "" ? "-" : errors) }'
}

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg); $series series, $days days of hours, $raw_hours h raw; wrk 2 threads × 32 connections, ${seconds} s a page"
for backend in $backends; do
  seeded=no
  case $backend in
    sqlite)
      place="$work/nv.db"
      if [ -n "${KEEP:-}" ]; then
        place="$KEEP/nv-$series-$days-$raw_hours.db"
        [ -s "$place" ] && seeded=yes
      fi
      store=(--sqlite "$place") ;;
    postgres)
      if [ -n "${KEEP:-}" ]; then
        db="nvkeep_${series}_${days}_${raw_hours}"
        [ "$(psql -tAq "$pg dbname=postgres" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" = 1 ] && seeded=yes
      else
        db="nvbench_$$"
        databases+=("$db")
      fi
      [ $seeded = yes ] || psql -q "$pg dbname=postgres" -c "CREATE DATABASE $db"
      place="$pg dbname=$db"; store=(--postgres "$place") ;;
    *) echo "unknown backend $backend" >&2; exit 2 ;;
  esac
  echo "## $backend"
  if [ $seeded = yes ]; then
    echo "(reusing the seeded store $place)"
  else
    "$bin/examples/history_size" "$backend" "$place" "$series" "$days" "$raw_hours" | tee "$work/seed.txt"
  fi
  now=$((20500 * 86400000 + 12 * 3600000))
  start "$work/serve-$backend.out" "$bin/netvantage" serve "${store[@]}" --listen 127.0.0.1:0 --as-of "$now"
  base=$url
  # The first request computes the first snapshot: its time is printed, the figures after it
  # are the steady state a page's readers see.
  curl -s -o /dev/null -w "first request (the first snapshot): %{time_total} s\n" "$base/"
  id=$(curl -s "$base/api/v1/targets?per_page=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
  printf '| page | p50 ms | p99 ms | requests/s | floor p50 ms | floor p99 ms | floor requests/s | p99 / floor p99 | errors |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n'
  for page in "/" "/?page=50" "/targets/$id" "/api/v1/targets"; do
    # Warm: one request for the page's own caches, as a reader after the first would find them.
    curl -s -o "$work/page.html" "$base$page"
    read -r p50 p99 rps errors < <(measure "$base$page")
    start "$work/floor.out" "$bin/examples/static_page" "$work/page.html"
    read -r f50 f99 frps _ < <(measure "$url$page")
    stop_last
    ratio=$(awk -v a="$p99" -v b="$f99" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }')
    shown=${page/$id/ID}
    echo "| \`$shown\` | $p50 | $p99 | $rps | $f50 | $f99 | $frps | $ratio | $errors |"
  done
  stop_last
  rm -f "$work/nv.db"*
done
