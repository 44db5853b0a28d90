#!/usr/bin/env bash
# Reproduces bench/RESULTS.md's `ports` figures: builds release binaries, then runs the sweep
# benchmark (needs root for network namespaces, nftables and nmap: apt-get install nftables nmap time).
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in nft nmap /usr/bin/time gcc; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install nftables nmap time gcc" >&2; exit 1; }
done
cargo build --release -p netvantage -p netvantage-testfleet
exec python3 bench/ports/run.py "$@"
