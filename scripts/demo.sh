#!/usr/bin/env bash
# The README's first command: deploy the demo in examples/demo to the `local` environment (this
# machine: docker compose for the services, SQLite for the database), then change one service and
# deploy again to show that only that service is rebuilt and restarted, then roll it back.
#
#   bash scripts/demo.sh          # idempotent: starts from a fresh copy of the demo each time
#   DEMO_DIR=/tmp/x DEPLOY_ACTION_BIN=target/debug/deploy-action bash scripts/demo.sh
#                                 # elsewhere, with a binary already built (tests/demo.rs)
#
# Needs root on Debian 12: it installs Rust through scripts/toolchain.sh when cargo is missing or
# too old, and Docker with compose through scripts/test-env.sh docker.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${DEMO_DIR:-/var/tmp/deploy-action-demo}
say() { printf '\n\033[1m### %s\033[0m\n' "$*"; }

say "Rust toolchain (installed with rustup if cargo is missing or too old)"
# shellcheck source=scripts/toolchain.sh
source "$root/scripts/toolchain.sh"

say "Docker engine and compose (installed and started if missing)"
bash "$root/scripts/test-env.sh" docker

if [[ -n ${DEPLOY_ACTION_BIN:-} ]]; then
  bin=$DEPLOY_ACTION_BIN   # the test suite passes the binary it built
else
  say "Building deploy-action"
  cargo build --locked --quiet --manifest-path "$root/Cargo.toml"
  bin="$root/target/debug/deploy-action"
  [[ -n ${CARGO_TARGET_DIR:-} ]] && bin="$CARGO_TARGET_DIR/debug/deploy-action"
fi

say "A fresh copy of examples/demo in $work, as a git repository"
if [[ -d $work/.deploy-action/local ]]; then
  (cd "$work/.deploy-action/local" && docker compose -p deploy-action-demo -f compose.yml down --remove-orphans >/dev/null 2>&1) || true
fi
rm -rf "$work"
cp -r "$root/examples/demo" "$work"
cd "$work"
git init -q -b main
git -c user.name=demo -c user.email=demo@example.com commit -q --allow-empty -m "empty start"
git add -A
git -c user.name=demo -c user.email=demo@example.com commit -q -m "demo: two services, a site, migrations"
# The services' base image: busybox httpd, made without a registry by test-env.sh.
docker tag deploy-action-test/web:v1 deploy-action-demo/base:busybox
export DEMO_DATABASE_URL="sqlite://.deploy-action/demo.db"

say "deploy-action check"
"$bin" check

say "deploy-action plan --env local (everything changed since the empty start)"
"$bin" plan --env local

say "deploy-action build && test"
"$bin" build --env local
"$bin" test --env local

say "deploy-action up --env local"
"$bin" up --env local --yes

say "deploy-action migrate --env local"
"$bin" migrate --env local

say "deploy-action pages --env local --dry-run (no Cloudflare account here: shows what would be uploaded)"
"$bin" pages --env local --dry-run --no-build --branch main

say "Change one service (api), commit, deploy again: only api is rebuilt and restarted"
web_before=$(docker ps -q --filter label=com.docker.compose.project=deploy-action-demo --filter label=com.docker.compose.service=web)
echo "<h1>demo api v2</h1>" > services/api/www/index.html
git -c user.name=demo -c user.email=demo@example.com commit -q -am "api: v2"
"$bin" plan --env local
"$bin" build --env local
"$bin" up --env local --yes
web_after=$(docker ps -q --filter label=com.docker.compose.project=deploy-action-demo --filter label=com.docker.compose.service=web)

say "Result"
api_v2=$(curl -fsS http://127.0.0.1:18081/)
echo "api serves:  $api_v2"
echo "web serves:  $(curl -fsS http://127.0.0.1:18080/)"
echo "web container before/after: $web_before / $web_after (unchanged: $([[ $web_before == "$web_after" ]] && echo yes || echo NO))"
"$bin" status --env local

say "deploy-action rollback --env local: back to the previous good release (api v1), release marked bad"
"$bin" rollback --env local
api_back=$(curl -fsS http://127.0.0.1:18081/)
echo "api serves:  $api_back"
"$bin" status --env local
[[ $web_before == "$web_after" && $api_v2 == *v2* && $api_back != *v2* ]]
