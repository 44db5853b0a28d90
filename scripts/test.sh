#!/usr/bin/env bash
# The one test command (README): install system packages the tests use, build once, run every
# test with nextest, then the formatting and lint gates.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v nft >/dev/null || need_pkgs+=(nftables)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v promtool >/dev/null || need_pkgs+=(prometheus)   # `promtool check metrics` in the conns tests
command -v prlimit >/dev/null || need_pkgs+=(util-linux)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need_pkgs[*]} — install them (apt-get install ${need_pkgs[*]}) or run as root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

cargo build --workspace --all-targets --locked
cargo nextest run --workspace --no-fail-fast
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
