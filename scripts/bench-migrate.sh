#!/usr/bin/env bash
# Benchmark: 500 small migrations on PostgreSQL, deploy-action `migrate` versus sqlx-cli `migrate run`.
# Both tools get the same files (sqlx's <version>_<description>.sql naming is ours too) and a fresh
# scratch database per run. deploy-action does more per migration: lock, checksum, a row with
# duration and actor, each in its own transaction.
#
#   bash scripts/bench-migrate.sh            # needs the test PostgreSQL (bash scripts/test-env.sh up)
#   N=200 RUNS=5 bash scripts/bench-migrate.sh
#   BIN=target/debug/deploy-action bash scripts/bench-migrate.sh
#   BASELINE_BIN=/tmp/old/deploy-action bash scripts/bench-migrate.sh   # a third column: another build
#   ALT=7 bash scripts/bench-migrate.sh       # then 7 alternating rounds (default 5; 0 = none)
#
# On a shared, loaded machine hyperfine's runs of one command all come before the other's, so load
# that changes during the run lands on one tool. The alternating rounds (sqlx, deploy-action,
# deploy-action, sqlx, …, each on a fresh database) are the cross-check: their medians are the
# figures to quote when the hyperfine spread is wide.
#
# Needs: sqlx (cargo install sqlx-cli --no-default-features --features postgres,rustls; or SQLX=path),
# hyperfine, psql. Builds target/release/deploy-action if it is missing. Prints the machine's load and
# the server's durability settings with the results (the test server runs with fsync=off), and checks
# afterwards that both tools really applied N migrations.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-500}
RUNS=${RUNS:-5}
ALT=${ALT:-5}
BASELINE_BIN=${BASELINE_BIN:-}
ENV_FILE=${DA_TEST_DIR:-/var/tmp/deploy-action-test}/env
[ -f "$ENV_FILE" ] || { echo "test environment missing: run bash scripts/test-env.sh up" >&2; exit 1; }
# shellcheck disable=SC1090
. "$ENV_FILE"
PG_URL=$DA_TEST_PG_URL
BASE=${PG_URL%/*}
SQLX=${SQLX:-$(command -v sqlx || echo "$HOME/.cargo/bin/sqlx")}
[ -x "$SQLX" ] || { echo "sqlx-cli missing: cargo install sqlx-cli --no-default-features --features postgres,rustls" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine missing" >&2; exit 1; }
BIN=${BIN:-target/release/deploy-action}    # BIN=target/debug/deploy-action to skip the release build
[ -x "$BIN" ] || cargo build --release
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

WORK=$(mktemp -d /tmp/bench-migrate.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/migrations"
for i in $(seq 1 "$N"); do
  printf 'CREATE TABLE t%04d (id integer primary key, v text);\nINSERT INTO t%04d VALUES (1, '\''x'\'');\n' "$i" "$i" \
    > "$WORK/migrations/$(printf '%04d' "$i")_t$(printf '%04d' "$i").sql"
done
cat > "$WORK/deploy.yml" <<EOF
version: 1
project: bench
environments:
  bench:
    hosts: ["local"]
    dir: .
    database: { url_env: BENCH_DATABASE_URL }
migrations:
  dir: migrations
  engine: postgres
EOF

reset_db() { # $1 = database name
  psql "$PG_URL" -qAtc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
  psql "$PG_URL" -qAtc "CREATE DATABASE $1" >/dev/null
}
export -f reset_db
export PG_URL

echo "== $(date -u +%FT%TZ) $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== server: $(psql "$PG_URL" -qAtc "SELECT version()" | cut -d, -f1);" \
  "$(psql "$PG_URL" -qAtc "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')")"
echo "== $("$SQLX" --version); deploy-action: $BIN"

cd "$WORK"
SQLX_CMD="$SQLX migrate run --source migrations --database-url $BASE/bench_sqlx >/dev/null"
DA_CMD="BENCH_DATABASE_URL=$BASE/bench_da $BIN migrate --env bench >/dev/null"
extra=()
if [ -n "$BASELINE_BIN" ]; then
  extra=(--prepare "reset_db bench_base" -n "baseline deploy-action migrate ($N)"
    "BENCH_DATABASE_URL=$BASE/bench_base $BASELINE_BIN migrate --env bench >/dev/null")
fi
hyperfine -S bash --runs "$RUNS" --export-markdown "$WORK/result.md" \
  --prepare "reset_db bench_sqlx" -n "sqlx migrate run ($N)" "$SQLX_CMD" \
  --prepare "reset_db bench_da" -n "deploy-action migrate ($N)" "$DA_CMD" \
  "${extra[@]}"
cat "$WORK/result.md"

if [ "$ALT" -gt 0 ]; then
  echo "== $ALT alternating rounds (seconds; each on a fresh database)"
  TIMEFORMAT=%R
  one() { # $1 = database to reset, $2 = command; prints the wall time
    reset_db "$1"
    { time bash -c "$2" >/dev/null; } 2>&1
  }
  s_times=() d_times=()
  for r in $(seq 1 "$ALT"); do
    if [ $((r % 2)) = 1 ]; then
      s=$(one bench_sqlx "$SQLX_CMD"); d=$(one bench_da "$DA_CMD")
    else
      d=$(one bench_da "$DA_CMD"); s=$(one bench_sqlx "$SQLX_CMD")
    fi
    s_times+=("$s") d_times+=("$d")
    echo "round $r: sqlx $s  deploy-action $d  (load $(cut -d' ' -f1 /proc/loadavg))"
  done
  median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
  ms=$(median "${s_times[@]}") md=$(median "${d_times[@]}")
  echo "median: sqlx $ms s, deploy-action $md s, ratio deploy-action/sqlx $(awk -v a="$md" -v b="$ms" 'BEGIN {printf "%.2f", a / b}')"
fi
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
sqlx_n=$(psql "$BASE/bench_sqlx" -qAtc "SELECT count(*) FROM _sqlx_migrations WHERE success")
da_n=$(psql "$BASE/bench_da" -qAtc "SELECT count(*) FROM deploy_action_migrations")
echo "== applied by the last run: sqlx $sqlx_n, deploy-action $da_n (expected $N each)"
[ "$sqlx_n" = "$N" ] && [ "$da_n" = "$N" ] || { echo "a tool did not apply every migration" >&2; exit 1; }
psql "$PG_URL" -qAtc "DROP DATABASE IF EXISTS bench_sqlx WITH (FORCE)" >/dev/null
psql "$PG_URL" -qAtc "DROP DATABASE IF EXISTS bench_da WITH (FORCE)" >/dev/null
psql "$PG_URL" -qAtc "DROP DATABASE IF EXISTS bench_base WITH (FORCE)" >/dev/null
