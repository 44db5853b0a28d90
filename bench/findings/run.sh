#!/usr/bin/env bash
# Benchmark of the findings pass (issue 12): the evidence of a 1,000,000-host `ports` run with
# about 5 % of the hosts failing in mixed patterns, generated in-process and streamed into the
# findings engine (crates/core/examples/findings_bench.rs). No network, no root.
#
#   bench/findings/run.sh [HOSTS] [ROUNDS] [REPEAT]     (defaults: 1000000 12 3)
#
# Each mode runs REPEAT times in its own process, interleaved; the median is reported:
# - generate:  the evidence alone;
# - findings:  FindingsEngine::observe for every check, then finish;
# - results:   the evidence built into CheckResults, as the probes build them;
# - diagnosis: today's --explain tables (Diagnosis::observe of every CheckResult), the
#              reference: what --explain cost before the findings.
# The pass alone is findings minus generate (and diagnosis minus results), in CPU seconds
# (user + sys, from /usr/bin/time: robust to other load on the machine); memory is the
# program's own figure, the peak RSS the pass added over the RSS before it.
set -euo pipefail
cd "$(dirname "$0")/../.."

hosts=${1:-1000000}
rounds=${2:-12}
repeat=${3:-3}
modes="generate findings results diagnosis"

command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time: apt-get install time" >&2; exit 1; }
cargo build --release -p netvantage-core --example findings_bench 2>&1 | tail -1
bin=target/release/examples/findings_bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "command: $bin MODE $hosts $rounds   (MODE in: $modes; x$repeat, interleaved)"
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), Linux $(uname -r)"
for r in $(seq "$repeat"); do
  for mode in $modes; do
    /usr/bin/time -f "%e %U %S %M" -o "$out/$mode.$r.time" "$bin" "$mode" "$hosts" "$rounds" > "$out/$mode.$r.out"
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wall() { for r in $(seq "$repeat"); do awk '{print $1}' "$out/$1.$r.time"; done | median; }
cpu() { for r in $(seq "$repeat"); do awk '{print $2 + $3}' "$out/$1.$r.time"; done | median; }
rss() { for r in $(seq "$repeat"); do awk '{print $4 / 1024}' "$out/$1.$r.time"; done | median; }
added() { for r in $(seq "$repeat"); do sed -n 's/.*memory added .* \([0-9.]*\) MB peak.*/\1/p; s/.*memory added \([0-9.]*\) MB peak.*/\1/p' "$out/$1.$r.out" | tail -1; done | median; }

printf '\n%-10s %8s %8s %14s %16s\n' mode "wall s" "CPU s" "peak RSS MB" "pass added MB"
for mode in $modes; do
  extra=-; case $mode in findings|diagnosis) extra=$(added "$mode");; esac
  printf '%-10s %8s %8s %14.1f %16s\n' "$mode" "$(wall "$mode")" "$(cpu "$mode")" "$(rss "$mode")" "$extra"
done

f_cpu=$(echo "$(cpu findings) - $(cpu generate)" | bc -l)
d_cpu=$(echo "$(cpu diagnosis) - $(cpu results)" | bc -l)
printf '\nfindings pass alone:        %.2f s CPU, %s MB   (goal: under 2 s and 100 MB)\n' "$f_cpu" "$(added findings)"
printf 'reference, diagnosis alone: %.2f s CPU, %s MB\n' "$d_cpu" "$(added diagnosis)"
printf 'ratio findings / diagnosis: CPU %.2f, memory %.2f\n' "$(echo "$f_cpu / $d_cpu" | bc -l)" "$(echo "$(added findings) / $(added diagnosis)" | bc -l)"
echo
echo "--- the programs' own output (the median repeat) ---"
mid=$(( (repeat + 1) / 2 ))
for mode in $modes; do cat "$out/$mode.$mid.out"; done
