#!/usr/bin/env bash
# The one test command (README): install system packages the tests use, build once, run every
# test with nextest, then the formatting and lint gates.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v nft >/dev/null || need_pkgs+=(nftables)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v promtool >/dev/null || need_pkgs+=(prometheus)   # `promtool check metrics` in the conns tests
command -v prlimit >/dev/null || need_pkgs+=(util-linux)    # prlimit, setpriv
command -v nmap >/dev/null || need_pkgs+=(nmap)               # real -sT / -sS scans in the conns tests
command -v conntrack >/dev/null || need_pkgs+=(conntrack)     # the conntrack source's reference reader
command -v socat >/dev/null || need_pkgs+=(socat)             # tansu inside a test namespace reaches PostgreSQL's socket
[ -x /usr/lib/chromium/chromium ] || need_pkgs+=(chromium)    # status page tests in headless Chromium
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need_pkgs[*]} — install them (apt-get install ${need_pkgs[*]}) or run as root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# The pipeline tests use the machine's PostgreSQL on 127.0.0.1:5432 (trust auth for `postgres`)
# and a Kafka-API broker, tansu, built once (about 17 minutes on 2 cores) and reused after.
if ! command -v psql >/dev/null || ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
    # shellcheck disable=SC2086
    pg_ctlcluster $cluster start
    pg_conf=$(pg_lsclusters -h | awk 'NR==1 {print "/etc/postgresql/"$1"/"$2"/pg_hba.conf"}')
    grep -q '^host all all 127.0.0.1/32 trust' "$pg_conf" || {
      sed -i '1i host all all 127.0.0.1/32 trust' "$pg_conf"
      # shellcheck disable=SC2086
      pg_ctlcluster $cluster reload
    }
  fi
fi
# The API tests run schemathesis and openapi-spec-validator (PyPI) from a venv of their own.
if [ ! -x "$HOME/.local/nv-venv/bin/schemathesis" ] || [ ! -x "$HOME/.local/nv-venv/bin/openapi-spec-validator" ]; then
  python3 -m venv "$HOME/.local/nv-venv"
  "$HOME/.local/nv-venv/bin/pip" install -q schemathesis openapi-spec-validator
fi
TANSU_VERSION=0.6.0
if ! { command -v tansu >/dev/null || [ -x "$HOME/.cargo/bin/tansu" ]; }; then
  echo "installing tansu $TANSU_VERSION (the Kafka-API test broker; about 17 minutes, once)" >&2
  cargo install --locked tansu --version "$TANSU_VERSION" --features dynostore,postgres
fi

cargo build --workspace --all-targets --locked
cargo nextest run --workspace --no-fail-fast
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
