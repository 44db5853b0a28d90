#!/usr/bin/env bash
# Benchmark of `netvantage conns` sources (see RESULTS.md). Needs root, iproute2 and ss.
# Creates a network namespace holding ~100,000 TCP socket entries (ESTABLISHED loopback
# connections, both ends listed), then runs conns-bench measure inside it. The namespace and the
# holder processes are removed on exit, whatever happens.
#
#   bench/conns/run.sh [CONNECTIONS] [POLLS]     (defaults: 50000 connections, 1000 polls)
#
# BEFORE_BIN=path (a conns-bench built from an earlier commit's bench/conns) measures that build
# and this one alternately in the same namespace, PAIRS times (default 3): a before/after run
# of a refactor, each measure's medians printed under its label. With CALLGRIND=1 each side
# instead runs `conns-bench poll proc|netlink 3` (three polls of the library's monitor, nothing
# else; the earlier build needs the same subcommand) under valgrind's callgrind and prints the
# instructions executed in user space, counted whatever else the machine is doing.
set -euo pipefail
cd "$(dirname "$0")"

conns=${1:-50000}
polls=${2:-1000}
per_holder=8500   # 2 fds per connection: stays under the 20,000 open-file hard limit
ns="nvc-bench-$$"
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT

command -v ip >/dev/null && command -v ss >/dev/null || {
  echo "needs ip and ss: apt-get install iproute2" >&2; exit 1; }

CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" cargo build --release --locked
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/netvantage-conns-bench"

ip netns add "$ns"
ip -n "$ns" link set lo up
# Ephemeral ports are per namespace; each holder uses its own listening port anyway.
ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"

remaining=$conns
port=20000
ready_dir=$(mktemp -d)
ready_files=()
while [ "$remaining" -gt 0 ]; do
  n=$(( remaining < per_holder ? remaining : per_holder ))
  # Created before the holder starts, so the wait below never races the redirection.
  : > "$ready_dir/$port"
  ready_files+=("$ready_dir/$port")
  ip netns exec "$ns" "$bin" hold "127.0.0.1:$port" "$n" > "$ready_dir/$port" &
  pids+=($!)
  remaining=$(( remaining - n ))
  port=$(( port + 1 ))
done
for f in "${ready_files[@]}"; do
  for _ in $(seq 600); do grep -q ready "$f" && break; sleep 0.1; done
  grep -q ready "$f" || { echo "holder $f not ready" >&2; exit 1; }
done
rm -rf "$ready_dir"

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores; $conns connections held by ${#pids[@]} processes"
if [ -n "${BEFORE_BIN:-}" ]; then
  for i in $(seq 1 "${PAIRS:-3}"); do
    for side in before after; do
      run_bin=$bin; [ "$side" = before ] && run_bin=$BEFORE_BIN
      echo "## pair $i: $side ($run_bin)"
      if [ -n "${CALLGRIND:-}" ]; then
        for source in proc netlink; do
          out=$(mktemp -t nvc-callgrind.XXXXXX)
          ip netns exec "$ns" valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$run_bin" poll "$source" 3 > /dev/null 2> "$out.log"
          echo "$source: instructions (user space): $(sed -n 's/.*Collected : *//p' "$out.log")"
          rm -f "$out" "$out.log"
        done
      else
        ip netns exec "$ns" "$run_bin" measure --runs 15 --polls "$polls"
      fi
    done
  done
else
  ip netns exec "$ns" "$bin" measure --runs 15 --polls "$polls"
fi
