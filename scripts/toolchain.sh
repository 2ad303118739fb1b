#!/usr/bin/env bash
# A Rust toolchain that can build this repository, installed only when missing. Sourced by
# scripts/demo.sh and scripts/test.sh (so that PATH reaches them); can also run on its own:
#
#   source scripts/toolchain.sh            # from another script: install if needed, export PATH
#   bash scripts/toolchain.sh              # standalone: the same, then print what is in use
#
# What it does, each step only when needed (a second run installs nothing):
#   1. puts $CARGO_HOME/bin (default ~/.cargo/bin) first on PATH, so an earlier rustup install is
#      found even by a shell that never read ~/.cargo/env;
#   2. installs the C toolchain the build needs (cc, make and perl build the vendored OpenSSL of ssh2
#      and the bundled SQLite), plus curl and the CA certificates, with apt-get (Debian, as root);
#   3. if `cargo`/`rustc` are missing or older than Cargo.toml's `rust-version` (at least 1.89; Debian 12's own
#      rustc 1.63 is far too old for edition 2024): with rustup present, installs its `stable`
#      toolchain and selects it for this run (RUSTUP_TOOLCHAIN, the user's default is left alone);
#      without rustup, downloads rustup-init from static.rust-lang.org, checks its sha256, and
#      installs rustup with the stable toolchain (profile minimal) into ~/.cargo and ~/.rustup
#      (no shell profile is edited);
#   4. with TOOLCHAIN_COMPONENTS="rustfmt clippy" (test.sh sets it), adds those components when
#      `cargo fmt` / `cargo clippy` are missing.
# cargo-nextest is optional (test.sh falls back to `cargo test`); TOOLCHAIN_NEXTEST=1 builds it
# from crates.io with `cargo install --locked cargo-nextest` (several minutes of compiling, so it is
# off by default; its prebuilt binaries come from GitHub, which not every machine reaches).
#
# Settings: CARGO_HOME, RUSTUP_HOME (rustup's usual variables), TOOLCHAIN_COMPONENTS,
# TOOLCHAIN_NEXTEST, RUSTUP_DIST_SERVER (a mirror of static.rust-lang.org).

toolchain_log() { printf '[toolchain] %s\n' "$*" >&2; }
toolchain_die() {
  printf '[toolchain] ERROR: %s\n' "$*" >&2
  return 1
}

# The oldest rustc that builds the crate and its locked dependencies: Cargo.toml's `rust-version`,
# but at least TOOLCHAIN_FLOOR. Cargo.toml still says 1.85, which understates it: the code uses let
# chains (1.88) and the locked rusqlite needs 1.89. (Raising it there turns on clippy's let-chain
# suggestions all over the code: a change of its own.)
TOOLCHAIN_FLOOR=1.89
toolchain_wanted() {
  local root=$1 v
  v=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$root/Cargo.toml" | head -n 1)
  if [[ -z $v ]] || ! toolchain_at_least "$v" "$TOOLCHAIN_FLOOR"; then v=$TOOLCHAIN_FLOOR; fi
  echo "$v"
}

# True when version $1 >= version $2 (dotted numbers).
toolchain_at_least() {
  [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1) == "$2" ]]
}

# The version of the rustc on PATH, or nothing.
toolchain_rustc_version() {
  command -v rustc >/dev/null 2>&1 || return 0
  rustc --version 2>/dev/null | awk '{print $2}' | sed 's/-.*//'
}

toolchain_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    toolchain_die "missing packages: ${missing[*]}; install them (as root: apt-get install ${missing[*]})"
    return 1
  fi
  toolchain_log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    || { toolchain_die "apt-get update failed; check access to the Debian mirror"; return 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { toolchain_die "apt-get install ${missing[*]} failed"; return 1; }
}

# The C side of the build: cc/make/perl for the vendored OpenSSL and bundled SQLite, curl for rustup.
toolchain_build_deps() {
  local need=0 tool
  for tool in cc make perl curl; do command -v "$tool" >/dev/null 2>&1 || need=1; done
  [[ -e /etc/ssl/certs/ca-certificates.crt ]] || need=1
  ((need)) || return 0
  if command -v dpkg-query >/dev/null 2>&1; then
    toolchain_apt build-essential perl pkg-config curl ca-certificates || return 1
  else
    toolchain_die "a C compiler (cc), make, perl and curl are needed to build deploy-action"
    return 1
  fi
}

# Downloads and runs rustup-init (checked against its published sha256).
toolchain_install_rustup() {
  local arch triple server tmp
  arch=$(uname -m)
  case "$arch" in
    x86_64 | aarch64) triple="$arch-unknown-linux-gnu" ;;
    *) toolchain_die "no rustup-init for $arch here; install Rust from https://rustup.rs"; return 1 ;;
  esac
  server=${RUSTUP_DIST_SERVER:-https://static.rust-lang.org}
  tmp=$(mktemp -d)
  toolchain_log "downloading rustup-init ($triple) from $server"
  if ! curl --proto '=https' --tlsv1.2 -fsSL --retry 3 -o "$tmp/rustup-init" \
      "$server/rustup/dist/$triple/rustup-init" \
    || ! curl --proto '=https' --tlsv1.2 -fsSL --retry 3 -o "$tmp/rustup-init.sha256" \
      "$server/rustup/dist/$triple/rustup-init.sha256"; then
    rm -rf "$tmp"
    toolchain_die "cannot download rustup-init from $server (no network? set RUSTUP_DIST_SERVER to a mirror)"
    return 1
  fi
  if [[ $(awk '{print $1}' "$tmp/rustup-init.sha256") != $(sha256sum "$tmp/rustup-init" | awk '{print $1}') ]]; then
    rm -rf "$tmp"
    toolchain_die "rustup-init does not match its published sha256; not running it"
    return 1
  fi
  chmod +x "$tmp/rustup-init"
  toolchain_log "installing rustup and the stable toolchain into ${CARGO_HOME:-$HOME/.cargo}"
  "$tmp/rustup-init" -y --no-modify-path --profile minimal --default-toolchain stable \
    --component rustfmt --component clippy >&2 \
    || { rm -rf "$tmp"; toolchain_die "rustup-init failed (see above)"; return 1; }
  rm -rf "$tmp"
}

toolchain_main() {
  local root want have comp
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  want=$(toolchain_wanted "$root")
  local cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
  case ":$PATH:" in
    *":$cargo_bin:"*) ;;
    *) export PATH="$cargo_bin:$PATH" ;;
  esac

  toolchain_build_deps || return 1

  have=$(toolchain_rustc_version)
  if [[ -z $have ]] || ! command -v cargo >/dev/null 2>&1 || ! toolchain_at_least "$have" "$want"; then
    if command -v rustup >/dev/null 2>&1; then
      toolchain_log "rustc ${have:-missing} is older than $want: installing rustup's stable toolchain"
      rustup toolchain install stable --profile minimal >&2 \
        || { toolchain_die "rustup toolchain install stable failed"; return 1; }
      export RUSTUP_TOOLCHAIN=stable
    else
      [[ -n $have ]] && toolchain_log "rustc $have ($(command -v rustc)) is older than $want"
      toolchain_install_rustup || return 1
    fi
    hash -r
    have=$(toolchain_rustc_version)
    if [[ -z $have ]] || ! toolchain_at_least "$have" "$want"; then
      toolchain_die "after installing, rustc is ${have:-missing} ($(command -v rustc || echo 'not on PATH')); $want or newer is needed"
      return 1
    fi
  fi

  for comp in ${TOOLCHAIN_COMPONENTS:-}; do
    case "$comp" in
      rustfmt) cargo fmt --version >/dev/null 2>&1 && continue ;;
      clippy) cargo clippy --version >/dev/null 2>&1 && continue ;;
    esac
    command -v rustup >/dev/null 2>&1 \
      || { toolchain_die "cargo has no $comp and there is no rustup to add it; install $comp"; return 1; }
    toolchain_log "adding the $comp component"
    rustup component add "$comp" >&2 || { toolchain_die "rustup component add $comp failed"; return 1; }
  done

  if [[ ${TOOLCHAIN_NEXTEST:-0} == 1 ]] && ! cargo nextest --version >/dev/null 2>&1; then
    toolchain_log "building cargo-nextest from crates.io (several minutes)"
    cargo install --locked cargo-nextest >&2 \
      || toolchain_log "WARNING: cargo install cargo-nextest failed; tests run with cargo test"
  fi
  toolchain_log "using $(rustc --version) and $(cargo --version | awk '{print $1, $2}') from $(dirname "$(command -v cargo)")"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  toolchain_main
else
  toolchain_main || return 1
fi
