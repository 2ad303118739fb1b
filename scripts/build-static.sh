#!/usr/bin/env bash
# Build the statically linked release binary of deploy-action for x86_64 Linux (musl).
#
#   bash scripts/build-static.sh            # builds target/x86_64-unknown-linux-musl/release/deploy-action
#   CARGO_TARGET_DIR=/tmp/t bash scripts/build-static.sh
#
# Idempotent: adds the rustup target and installs musl-tools only when they are missing.
# Exits non-zero when the build fails or the result is not a static executable.
set -euo pipefail

TARGET="${DEPLOY_ACTION_STATIC_TARGET:-x86_64-unknown-linux-musl}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-static: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"

if command -v rustup >/dev/null; then
  if ! rustup target list --installed | grep -qx "$TARGET"; then
    log "rustup target add $TARGET"
    rustup target add "$TARGET"
  fi
else
  log "rustup not found; assuming the $TARGET standard library is installed"
fi

# The C parts (vendored OpenSSL for ssh2/libssh2, bundled SQLite, aws-lc for rustls) are compiled by
# the cc crate; for a musl target they need a musl C compiler.
case "$TARGET" in
  *-linux-musl*)
    if ! command -v musl-gcc >/dev/null; then
      command -v apt-get >/dev/null || die "musl-gcc not found and apt-get unavailable: install musl-tools"
      SUDO=""
      [ "$(id -u)" = 0 ] || SUDO="sudo"
      log "apt-get install -y musl-tools"
      $SUDO apt-get install -y musl-tools >/dev/null 2>&1 || {
        $SUDO apt-get update >/dev/null && $SUDO apt-get install -y musl-tools
      }
    fi
    # musl-gcc targets the machine's own architecture: build on a runner of the target's arch.
    cc_var="CC_${TARGET//-/_}"
    export "$cc_var=${!cc_var:-musl-gcc}"
    ;;
esac

log "cargo build --release --locked --target $TARGET"
cargo build --release --locked --target "$TARGET"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/$TARGET/release/deploy-action"
[ -x "$BIN" ] || die "expected binary not found at $BIN"

# Static check: `file` says "statically linked" (or "static-pie linked"), `ldd` finds no dynamic deps.
if command -v file >/dev/null; then
  desc="$(file -b "$BIN")"
  case "$desc" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) die "not a static binary: $desc" ;;
  esac
fi
if command -v ldd >/dev/null; then
  if ldd_out="$(ldd "$BIN" 2>&1)"; then
    case "$ldd_out" in
      *"not a dynamic executable"* | *"statically linked"*) ;;
      *) die "ldd lists dynamic dependencies: $ldd_out" ;;
    esac
  fi
fi

size="$(stat -c %s "$BIN" 2>/dev/null || stat -f %z "$BIN")"
log "static binary OK ($(numfmt --to=iec "$size" 2>/dev/null || echo "$size bytes"))"
printf '%s\t%s\n' "$BIN" "$size"
