#!/usr/bin/env bash
# Event-rate benchmark of `netvantage conns` (see RESULTS.md, "Sustained connection rates").
# Needs root, iproute2, nftables and Debian's `conntrack` (the reference event reader).
# For each rate: two namespaces joined by a veth pair (generator -> host, 198.18.0.0/24, only
# inside them); in the host namespace netvantage's watcher with each source (conntrack, proc,
# netlink; the library loop the CLI runs) and `conntrack -E -p tcp` run side by side while the
# generator opens RATE short connections per second for SECONDS. The namespaces, and with them
# the nft table that switches conntrack on, are removed on exit whatever happens.
#
#   bench/conns/events.sh [SECONDS] [RATE...]     (defaults: 5 s; 1000 10000 30000)
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-5}
shift || true
rates=("${@:-1000 10000 30000}")
# shellcheck disable=SC2206
rates=(${rates[*]})
port=9000
pids=()
host="nvc-ev-host-$$"
gen="nvc-ev-gen-$$"
work=$(mktemp -d)

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$host" 2>/dev/null || true
  ip netns del "$gen" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for tool in ip nft conntrack; do
  command -v "$tool" >/dev/null || { echo "needs $tool: apt-get install iproute2 nftables conntrack" >&2; exit 1; }
done

CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" cargo build --release --locked -q
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/netvantage-conns-bench"
ticks=$(getconf CLK_TCK)

# CPU seconds (user + system) of a running process.
cpu_of() { awk -v t="$ticks" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores; ${seconds} s per rate"
printf '%-8s %-22s %-10s %-10s %-10s %-10s %-14s %-14s %s\n' \
  rate generator made conntrack proc netlink "nv cpu/100k" "ct-E cpu/100k" ratio
for rate in "${rates[@]}"; do
  pids=()
  ip netns add "$host"; ip netns add "$gen"
  ip -n "$host" link set lo up; ip -n "$gen" link set lo up
  ip -n "$host" link add nvh type veth peer name nvg netns "$gen"
  ip -n "$host" addr add 198.18.0.1/24 dev nvh; ip -n "$host" link set nvh up
  ip -n "$gen" addr add 198.18.0.2/24 dev nvg; ip -n "$gen" link set nvg up
  ip netns exec "$gen" sysctl -qw net.ipv4.ip_local_port_range="10000 65000"
  ip netns exec "$host" sysctl -qw net.core.somaxconn=65535
  ip netns exec "$host" sysctl -qw net.ipv4.tcp_max_syn_backlog=65535

  limit=$((seconds * 10 + 60))   # a bound only: each watcher is stopped by SIGTERM below
  ip netns exec "$host" "$bin" serve "198.18.0.1:$port" "$limit" & pids+=($!)
  # The conntrack watcher creates the table whose rule switches conntrack on; the others start after it.
  ip netns exec "$host" "$bin" watch conntrack "$port" "$limit" > "$work/conntrack" & watchers=($!)
  sleep 1
  ip netns exec "$host" conntrack -E -p tcp > "$work/ref" 2> "$work/ref.err" & ref=$!; pids+=($ref)
  ip netns exec "$host" "$bin" watch proc "$port" "$limit" > "$work/proc" & watchers+=($!)
  ip netns exec "$host" "$bin" watch netlink "$port" "$limit" > "$work/netlink" & watchers+=($!)
  pids+=("${watchers[@]}")
  sleep 1
  ip netns exec "$gen" "$bin" generate "198.18.0.1:$port" "$rate" "$seconds" > "$work/gen"
  # Two more polls for the table sources, then each watcher takes its last poll and exits.
  sleep 2
  for pid in "${watchers[@]}"; do kill -TERM "$pid"; done
  for pid in "${watchers[@]}"; do wait "$pid" || true; done
  # `conntrack -E` is the process ip netns exec became.
  ref_cpu=$(cpu_of "$ref"); kill "$ref" 2>/dev/null || true; wait "$ref" 2>/dev/null || true
  made=$(awk '{print $2}' "$work/gen")
  achieved=$(awk '{gsub(/[()\/s]/, "", $NF); print $NF}' "$work/gen")
  ct_seen=$(awk '{print $3}' "$work/conntrack"); ct_cpu=$(awk '{print $5}' "$work/conntrack")
  proc_seen=$(awk '{print $3}' "$work/proc"); nl_seen=$(awk '{print $3}' "$work/netlink")
  ref_seen=$(grep -c "\[NEW\].*dport=$port " "$work/ref" || true)
  nv_per=$(awk -v c="$ct_cpu" -v n="$ct_seen" 'BEGIN { printf "%.3f", n ? c * 100000 / n : 0 }')
  ref_per=$(awk -v c="$ref_cpu" -v n="$ref_seen" 'BEGIN { printf "%.3f", n ? c * 100000 / n : 0 }')
  ratio=$(awk -v a="$nv_per" -v b="$ref_per" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
  printf '%-8s %-22s %-10s %-10s %-10s %-10s %-14s %-14s %s\n' \
    "$rate" "${achieved}/s" "$made" "$ct_seen" "$proc_seen" "$nl_seen" "${nv_per}s" "${ref_per}s" "$ratio"
  echo "#   netvantage conntrack overruns: $(awk '{print $7}' "$work/conntrack"); conntrack -E saw $ref_seen NEW ($(grep -c ENOBUFS "$work/ref.err" || true) ENOBUFS warnings); generator: $(cat "$work/gen")"
  ip netns del "$host"; ip netns del "$gen"
done
