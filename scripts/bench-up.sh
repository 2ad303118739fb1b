#!/usr/bin/env bash
# Benchmark of `up` (issue 3): update 1 service of a 10-service compose stack on the local Docker
# engine with `deploy-action up --only SVC`, against `docker compose up -d --force-recreate` of the
# whole stack, with and without `--wait`; side by side in one hyperfine run per stack, and how many
# containers each restarted (container id changed), counted in a separate pass.
#
# Two stacks:
#   busybox    the issue's stack as written: 10 busybox httpd services, a 1 s healthcheck,
#              `init: true`, no dependencies. The updated service is s1.
#   realistic  services that take ~3 s to serve after they start (the healthcheck is in its start
#              period meanwhile) and a depends_on chain s1 <- s2 <- ... <- s10 with
#              `condition: service_healthy`, so compose starts the stack in order. The updated
#              service is s10, the end of the chain (a front end; nothing depends on it).
# `deploy-action up` runs with its default 5 s stability window, and again with `health.stable: 1s`
# (a second manifest) to show what the window costs. The "floor" is a bare, ungated recreate of the
# one service: no deploy of that service can be faster.
#
# Usage: scripts/bench-up.sh [busybox] [realistic]     (both by default)
#   RUNS=5                 hyperfine runs per command
#   DEPLOY_ACTION_BIN=...  the binary (default target/release/deploy-action: build it with
#                          `cargo build --release`; a debug build measures the wrong thing)
#   DEPLOY_ACTION_BIN_BEFORE=...  an earlier build, timed in the same hyperfine run (a refactor's
#                          before/after: issue 11's engine against the code it replaced)
# Needs: the test images (bash scripts/test-env.sh up), hyperfine, docker compose v2.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${DEPLOY_ACTION_BIN:-$ROOT/target/release/deploy-action}
BEFORE=${DEPLOY_ACTION_BIN_BEFORE:-}
RUNS=${RUNS:-5}
N=10
STACKS=("$@")
[[ ${#STACKS[@]} -gt 0 ]] || STACKS=(busybox realistic)
[[ -x $BIN ]] || { echo "build first: cargo build --release ($BIN missing)" >&2; exit 2; }
command -v hyperfine >/dev/null || { echo "hyperfine is missing: bash scripts/test-env.sh up" >&2; exit 2; }
for t in v1 v2; do
  docker image inspect deploy-action-test/web:$t >/dev/null 2>&1 ||
    { echo "deploy-action-test/web:$t is missing: bash scripts/test-env.sh up" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/da-bench-up.XXXXXX)
PROJECT=
cleanup() {
  if [[ -n $PROJECT ]]; then
    docker ps -aq --filter label=com.docker.compose.project=$PROJECT | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network rm ${PROJECT}_default >/dev/null 2>&1 || true
    docker images --format '{{.Repository}}:{{.Tag}}' | grep -F ":$PROJECT." | xargs -r docker rmi >/dev/null 2>&1 || true
  fi
}
trap 'cleanup; rm -rf "$WORK"' EXIT

service() { # $1 = stack, $2 = index, $3 = image
  local i=$2
  echo "  s$i:"
  echo "    image: $3"
  echo "    init: true"
  if [[ $1 == busybox ]]; then
    echo '    healthcheck: {test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"], interval: 1s, timeout: 2s, retries: 3}'
  else
    echo '    command: ["sh", "-c", "sleep 3; exec httpd -f -p 80 -h /www"]'
    echo '    healthcheck: {test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"], interval: 1s, timeout: 2s, retries: 3, start_period: 30s}'
    if ((i > 1)); then
      echo "    depends_on: {s$((i - 1)): {condition: service_healthy}}"
    fi
  fi
}

compose_file() { # $1 = stack, $2 = updated service index, $3 = its image
  echo "services:"
  for i in $(seq 1 $N); do
    local img=deploy-action-test/web:v1
    [[ $i == "$2" ]] && img=$3
    service "$1" "$i" "$img"
  done
}

manifest() { # $1 = host dir, $2 = updated service index, $3 = its stability window (or "")
  echo "version: 1"; echo "project: bench"; echo "environments:"; echo "  bench:"
  echo "    hosts: [\"local\"]"; echo "    dir: $1"; echo "    compose_files: [compose.yml]"
  echo "    compose_project: $PROJECT"; echo "services:"
  for i in $(seq 1 $N); do
    if [[ $i == "$2" && -n $3 ]]; then echo "  s$i: {health: {stable: $3}}"; else echo "  s$i: {}"; fi
  done
}

ids() { docker ps -q --no-trunc --filter label=com.docker.compose.project=$PROJECT | sort; }
changed() { comm -13 <(echo "$1") <(echo "$2") | grep -c . || true; }

echo "machine: $(nproc) cores, $(uname -r); docker $(docker version --format '{{.Server.Version}}'), compose $(docker compose version --short)"
echo "binary: $BIN ($(file -b "$BIN" | cut -d, -f1-2))"

for stack in "${STACKS[@]}"; do
  PROJECT=da-bench-$stack
  cleanup
  repo=$WORK/$stack/repo host=$WORK/$stack/host
  mkdir -p "$repo" "$host"
  target=1
  [[ $stack == realistic ]] && target=$N
  svc=s$target
  manifest "$host" $target "" >"$repo/deploy.yml"
  manifest "$host" $target 1s >"$repo/deploy-stable-1s.yml"
  compose_file $stack $target deploy-action-test/web:v1 >"$repo/compose.yml"
  (cd "$repo" && git init -q -b main && git -c user.email=b@b -c user.name=b commit -q --allow-empty -m init)
  cat >"$WORK/$stack/flip" <<EOF
#!/usr/bin/env bash
# Switches $svc between web:v1 and web:v2 in the repository's compose file.
set -e
cd "$repo"
if grep -q 'web:v2' compose.yml; then tag=v1; else tag=v2; fi
$(declare -f service compose_file)
N=$N
compose_file $stack $target deploy-action-test/web:\$tag >compose.yml
EOF
  chmod +x "$WORK/$stack/flip"
  (cd "$repo" && NO_COLOR=1 "$BIN" up --env bench --all >/dev/null)
  dc="docker compose -p $PROJECT -f $host/compose.yml"
  up="cd $repo && NO_COLOR=1 $BIN up --env bench --only $svc"
  up1="cd $repo && NO_COLOR=1 $BIN up --manifest deploy-stable-1s.yml --env bench --only $svc"

  echo
  echo "== $stack stack: updating $svc; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  before=()
  if [[ -n $BEFORE ]]; then
    before=(--prepare "$WORK/$stack/flip" -n "before: deploy-action up --only $svc"
      "cd $repo && NO_COLOR=1 $BEFORE up --env bench --only $svc")
  fi
  hyperfine --runs "$RUNS" --style basic --export-markdown "$WORK/$stack.md" \
    "${before[@]}" \
    --prepare "$WORK/$stack/flip" -n "deploy-action up --only $svc" "$up" \
    --prepare "$WORK/$stack/flip" -n "deploy-action up --only $svc (health.stable: 1s)" "$up1" \
    --prepare true -n "docker compose up -d --force-recreate" "$dc up -d --force-recreate" \
    --prepare true -n "docker compose up -d --force-recreate --wait" "$dc up -d --force-recreate --wait" \
    --prepare true -n "floor: docker compose up -d --no-deps --force-recreate $svc" "$dc up -d --no-deps --force-recreate $svc"
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  cat "$WORK/$stack.md"

  echo
  echo "containers restarted (one run each):"
  for name in "deploy-action up --only $svc" "docker compose up -d --force-recreate" "docker compose up -d --force-recreate --wait"; do
    case $name in
      deploy-action*) "$WORK/$stack/flip"; cmd=$up ;;
      *--wait) cmd="$dc up -d --force-recreate --wait" ;;
      *) cmd="$dc up -d --force-recreate" ;;
    esac
    before=$(ids)
    bash -c "$cmd" >/dev/null 2>&1
    after=$(ids)
    printf '  %-48s %s\n' "$name" "$(changed "$before" "$after")"
  done
  cleanup
done
