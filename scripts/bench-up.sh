#!/usr/bin/env bash
# Benchmark: update 1 service of a 10-service compose stack on the local Docker engine with
# `deploy-action up --only s1` versus `docker compose up -d --force-recreate` of the whole stack.
# Reports wall time and how many containers were restarted (container id changed).
# Needs: the test images (bash scripts/test-env.sh up) and a built binary (cargo build).
set -euo pipefail

BIN=${DEPLOY_ACTION_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/debug/deploy-action}
RUNS=${RUNS:-3}
N=10
PROJECT=da-bench-up
WORK=$(mktemp -d /tmp/da-bench-up.XXXXXX)
REPO=$WORK/repo HOSTDIR=$WORK/host
mkdir -p "$REPO" "$HOSTDIR"
cleanup() {
  docker ps -aq --filter label=com.docker.compose.project=$PROJECT | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker network rm ${PROJECT}_default >/dev/null 2>&1 || true
  docker images --format '{{.Repository}}:{{.Tag}}' | grep ":$PROJECT-release-" | xargs -r docker rmi >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[[ -x $BIN ]] || { echo "build first: cargo build ($BIN missing)" >&2; exit 2; }

compose() { # $1 = image of s1
  echo "services:"
  for i in $(seq 1 $N); do
    local img=deploy-action-test/web:v1
    [[ $i == 1 ]] && img=$1
    cat <<YAML
  s$i:
    image: $img
    init: true
    healthcheck: {test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"], interval: 1s, timeout: 2s, retries: 3}
YAML
  done
}
{
  echo "version: 1"; echo "project: bench"; echo "environments:"; echo "  bench:"
  echo "    hosts: [\"local\"]"; echo "    dir: $HOSTDIR"; echo "    compose_files: [compose.yml]"
  echo "    compose_project: $PROJECT"; echo "services:"
  for i in $(seq 1 $N); do echo "  s$i: {}"; done
} >"$REPO/deploy.yml"
cd "$REPO" && git init -q -b main && git -c user.email=b@b -c user.name=b commit -q --allow-empty -m init

ids() { docker ps -q --no-trunc --filter label=com.docker.compose.project=$PROJECT | sort; }
changed() { comm -13 <(echo "$1") <(echo "$2") | grep -c . || true; }
now() { date +%s.%N; }

compose deploy-action-test/web:v1 >compose.yml
NO_COLOR=1 "$BIN" up --env bench --all >/dev/null

tag=v2
printf '%-44s %8s %10s\n' "run" "seconds" "restarted"
for r in $(seq 1 "$RUNS"); do
  compose deploy-action-test/web:$tag >compose.yml
  before=$(ids); t0=$(now)
  NO_COLOR=1 "$BIN" up --env bench --only s1 >/dev/null
  t1=$(now); after=$(ids)
  printf '%-44s %8.2f %10s\n' "deploy-action up --only s1 (#$r)" "$(echo "$t1 - $t0" | bc)" "$(changed "$before" "$after")"

  cp compose.yml "$HOSTDIR/compose.yml"
  before=$(ids); t0=$(now)
  (cd "$HOSTDIR" && docker compose -p $PROJECT -f compose.yml up -d --force-recreate >/dev/null 2>&1)
  t1=$(now); after=$(ids)
  printf '%-44s %8.2f %10s\n' "docker compose up -d --force-recreate (#$r)" "$(echo "$t1 - $t0" | bc)" "$(changed "$before" "$after")"

  before=$(ids); t0=$(now)
  (cd "$HOSTDIR" && docker compose -p $PROJECT -f compose.yml up -d --force-recreate --wait >/dev/null 2>&1)
  t1=$(now); after=$(ids)
  printf '%-44s %8.2f %10s\n' "  … with --wait (#$r)" "$(echo "$t1 - $t0" | bc)" "$(changed "$before" "$after")"
  [[ $tag == v2 ]] && tag=v1 || tag=v2
done
