#!/usr/bin/env bash
# Benchmark of the fleet pipeline (crates/pipeline/examples/bench_pipeline.rs says what each row
# measures). Starts a tansu broker (the Kafka-API test broker, see
# /work/shared/kafka-test-broker/README.md) on a free loopback port with a PostgreSQL database of
# its own, creates the databases the benchmark writes into, runs it, and removes all of it on
# exit, whatever happens. Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth), psql,
# and tansu 0.6.0 (cargo install --locked tansu --version 0.6.0 --features dynostore,postgres).
#
#   bench/pipeline/run.sh [N] [E2E_N]    (defaults: 1000000 records for rows 1 and 2, 200000 for row 3)
#
# E2E_RATE=R paces the end-to-end producer at R records/s (default: unpaced).
# ROWS=2 runs only row 2 (the PostgreSQL writer against COPY): no broker, no tansu needed.
# BENCH_BIN=path runs another build of the benchmark program (e.g. an earlier commit's).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

n=${1:-1000000}
e2e_n=${2:-200000}
tansu=${TANSU:-$HOME/.cargo/bin/tansu}
target_dir=${CARGO_TARGET_DIR:-$root/target}
# The pid keeps two checkouts' runs (or a leftover of a killed run) from sharing a database.
prefix="nvbench_$$"
rows=${ROWS:-1,2,3}
if [ "$rows" = 2 ]; then
  dbs=("${prefix}_writer" "${prefix}_copy")
else
  dbs=("${prefix}_tansu" "${prefix}_writer" "${prefix}_copy" "${prefix}_e2e")
fi
workdir=$(mktemp -d -t nvbench.XXXXXX)
broker_pid=
created=()

psql_q() { psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -tAq "$@"; }

cleanup() {
  status=$?
  if [ -n "$broker_pid" ]; then
    kill "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  for db in "${created[@]}"; do
    psql_q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$workdir"/*.log; do
      [ -s "$log" ] && { echo "--- last lines of $log" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT

[ "$rows" = 2 ] || [ -x "$tansu" ] || { echo "no tansu at $tansu (set TANSU=…)" >&2; exit 1; }
command -v psql >/dev/null || { echo "needs psql: apt-get install postgresql-client" >&2; exit 1; }

bench=${BENCH_BIN:-$target_dir/release/examples/bench_pipeline}
[ -n "${BENCH_BIN:-}" ] || cargo build --release -p netvantage-pipeline --example bench_pipeline -p netvantage

for db in "${dbs[@]}"; do
  psql_q -d postgres -c "CREATE DATABASE $db"
  created+=("$db")
done
url() { echo "host=127.0.0.1 user=postgres dbname=$1"; }
pg_line="$(psql_q -d postgres -c 'SHOW server_version')"\
" (shared_buffers $(psql_q -d postgres -c 'SHOW shared_buffers'),"\
" synchronous_commit $(psql_q -d postgres -c 'SHOW synchronous_commit'))"

if [ "$rows" = 2 ]; then
  echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores; $pg_line"
  echo "# N=$n; row 2 only (no broker); $bench"
  "$bench" --rows 2 \
    --writer-db "$(url "${prefix}_writer")" \
    --copy-db "$(url "${prefix}_copy")" \
    --workdir "$workdir" --n "$n"
  exit
fi

psql_q -d "${prefix}_tansu" -f tests/tansu/tansu-0.6.0-postgres-schema.sql >/dev/null

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=$(( 20000 + RANDOM % 20000 ))
while listening "$port"; do port=$(( port + 1 )); done

listener="tcp://127.0.0.1:$port"
RUST_LOG=warn "$tansu" broker --listener-url "$listener" --advertised-listener-url "$listener" \
  --storage-engine "postgres://postgres:postgres@localhost/${prefix}_tansu?sslmode=disable" \
  >"$workdir/tansu.log" 2>&1 &
broker_pid=$!
for _ in $(seq 300); do listening "$port" && break; sleep 0.1; done
listening "$port" || { echo "tansu did not listen on 127.0.0.1:$port" >&2; exit 1; }

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores; $("$tansu" --version); $pg_line"
echo "# N=$n, e2e N=$e2e_n${E2E_RATE:+, e2e paced at $E2E_RATE/s}; broker 127.0.0.1:$port"

"$bench" \
  --brokers "127.0.0.1:$port" \
  --consume-topic nvbench.consume \
  --e2e-topic nvbench.e2e \
  --writer-db "$(url "${prefix}_writer")" \
  --copy-db "$(url "${prefix}_copy")" \
  --e2e-db "$(url "${prefix}_e2e")" \
  --ingest-bin "$target_dir/release/netvantage" \
  --workdir "$workdir" \
  --n "$n" --e2e-n "$e2e_n" --e2e-rate "${E2E_RATE:-0}"
