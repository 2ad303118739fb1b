#!/usr/bin/env bash
# Benchmark: 500 small migrations on PostgreSQL, deploy-action `migrate` versus sqlx-cli `migrate run`.
# Both tools get the same files (sqlx's <version>_<description>.sql naming is ours too) and a fresh
# scratch database per run. deploy-action does more per migration: lock, checksum, a row with
# duration and actor, each in its own transaction.
#
#   bash scripts/bench-migrate.sh            # needs the test PostgreSQL (bash scripts/test-env.sh up)
#   N=200 RUNS=5 bash scripts/bench-migrate.sh
#   BIN=target/debug/deploy-action bash scripts/bench-migrate.sh
#
# Needs: sqlx (cargo install sqlx-cli --no-default-features --features postgres,rustls), hyperfine,
# psql. Builds target/release/deploy-action if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-500}
RUNS=${RUNS:-5}
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

cd "$WORK"
hyperfine -S bash --runs "$RUNS" --export-markdown "$WORK/result.md" \
  --prepare "reset_db bench_sqlx" \
  -n "sqlx migrate run ($N)" "$SQLX migrate run --source migrations --database-url $BASE/bench_sqlx" \
  --prepare "reset_db bench_da" \
  -n "deploy-action migrate ($N)" "BENCH_DATABASE_URL=$BASE/bench_da $BIN migrate --env bench >/dev/null"
cat "$WORK/result.md"
psql "$PG_URL" -qAtc "DROP DATABASE IF EXISTS bench_sqlx WITH (FORCE)" >/dev/null
psql "$PG_URL" -qAtc "DROP DATABASE IF EXISTS bench_da WITH (FORCE)" >/dev/null
