#!/usr/bin/env bash
# Installs the deploy-action binary pinned at this action's commit, for the composite action (action.yml).
#
# The version (dist/VERSION) and the SHA-256 of every release asset (dist/SHA256SUMS) are committed in
# the action repository, so `uses: org/deploy-action@<ref>` always installs the bytes pinned at <ref>:
# github.action_ref is never used (it is empty inside composite steps). The asset for the runner's
# OS/arch is downloaded from the GitHub release, verified, and unpacked into
# $RUNNER_TEMP/deploy-action/<version>/<target>/ (reused by later steps of the same job). When no asset
# fits, no sums are pinned yet, or the download fails, it falls back to `cargo build --release --locked`
# from the action's own directory (with a ::warning::), unless build-from-source is `never`; the result
# goes to $RUNNER_TEMP/deploy-action/<version>/source/ and later steps of the job reuse it too.
# A checksum mismatch is always fatal: it never falls back.
#
# Inputs (environment): INPUT_VERSION, INPUT_BUILD_FROM_SOURCE (auto|always|never), ACTION_OS and
# ACTION_ARCH (runner.os / runner.arch), GITHUB_ACTION_PATH, RUNNER_TEMP, GITHUB_OUTPUT,
# GITHUB_SERVER_URL, CARGO_TARGET_DIR (a warm target dir for the fallback build).
# Test seam: DEPLOY_ACTION_DOWNLOAD_BASE replaces `<server>/<repo>/releases/download` (file:// allowed).
# Writes `bin=<path>`, `version=<version>` and `source=release|source` to $GITHUB_OUTPUT.
set -euo pipefail

ACTION_DIR="${GITHUB_ACTION_PATH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
DIST="$ACTION_DIR/dist"
MODE="${INPUT_BUILD_FROM_SOURCE:-auto}"
OS="${ACTION_OS:-${RUNNER_OS:-$(uname -s)}}"
ARCH="${ACTION_ARCH:-${RUNNER_ARCH:-$(uname -m)}}"
TMP_ROOT="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"

# Workflow commands go to stdout; data in them is escaped as the toolkit does (%, CR, LF).
escape() { local s="${1//'%'/%25}"; s="${s//$'\r'/%0D}"; printf '%s' "${s//$'\n'/%0A}"; }
warn() { printf '::warning title=deploy-action install::%s\n' "$(escape "$*")"; }
fail() { printf '::error title=deploy-action install::%s\n' "$(escape "$*")"; exit 1; }
note() { printf 'deploy-action install: %s\n' "$*"; }
set_output() {
  if [ -n "${GITHUB_OUTPUT:-}" ]; then printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"; fi
  note "$1=$2"
}

case "$MODE" in
  auto | always | never) ;;
  *) fail "build-from-source must be auto, always or never (got '$MODE')" ;;
esac

[ -r "$DIST/VERSION" ] || fail "$DIST/VERSION is missing: is GITHUB_ACTION_PATH the action checkout?"
PINNED="$(tr -d ' \t\r\n' <"$DIST/VERSION")"
[ -n "$PINNED" ] || fail "$DIST/VERSION is empty"
VERSION="${INPUT_VERSION:-$PINNED}"
VERSION="${VERSION#v}"
case "$VERSION" in
  *[!0-9A-Za-z.+-]* | "") fail "invalid version '$VERSION' (expected e.g. 1.4.2)" ;;
esac

# Release repository: committed by the release workflow, so downloads do not depend on the action ref.
REPO="org/deploy-action"
if [ -r "$DIST/REPOSITORY" ]; then REPO="$(tr -d ' \t\r\n' <"$DIST/REPOSITORY")"; fi

# The runner's platform → the Rust target of the release asset.
case "$ARCH" in
  X64 | x86_64 | amd64) arch=x64 ;;
  ARM64 | aarch64 | arm64) arch=arm64 ;;
  *) arch="$ARCH" ;;
esac
TARGET=""
EXE=""
case "$OS/$arch" in
  Linux/x64) TARGET=x86_64-unknown-linux-musl ;;
  Linux/arm64) TARGET=aarch64-unknown-linux-musl ;;
  macOS/x64 | Darwin/x64) TARGET=x86_64-apple-darwin ;;
  macOS/arm64 | Darwin/arm64) TARGET=aarch64-apple-darwin ;;
  Windows/*) EXE=".exe" ;;
esac

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  else
    fail "neither sha256sum nor shasum is available to verify the download"
  fi
}

# The pinned sum of one file name from dist/SHA256SUMS (`<hex>  <name>` or `<hex> *<name>`), or "".
pinned_sum() {
  [ -r "$DIST/SHA256SUMS" ] || return 0
  awk -v f="$1" '
    /^[[:space:]]*(#|$)/ { next }
    { name = $2; sub(/^\*/, "", name); if (name == f && length($1) == 64 && $1 ~ /^[0-9a-fA-F]+$/) { print tolower($1); exit } }
  ' "$DIST/SHA256SUMS"
}

# A binary built from source earlier in this job, from this same action checkout, is reused as is:
# the action directory (…/_actions/<owner>/<repo>/<ref>) identifies the source it was built from.
SOURCE_DIR="$TMP_ROOT/deploy-action/$VERSION/source"
reuse_source_build() {
  local bin="$SOURCE_DIR/deploy-action$EXE"
  [ -x "$bin" ] && [ "$(cat "$SOURCE_DIR/.built-from" 2>/dev/null)" = "$ACTION_DIR" ] || return 0
  note "reusing $bin built from source earlier in this job"
  set_output bin "$bin"
  set_output version "$VERSION"
  set_output source source
  exit 0
}

build_from_source() {
  local why="$1"
  reuse_source_build
  command -v cargo >/dev/null 2>&1 ||
    fail "$why, and cargo is not installed to build deploy-action from source (install Rust, or use a runner with a published asset)"
  [ -r "$ACTION_DIR/Cargo.toml" ] || fail "$why, and $ACTION_DIR/Cargo.toml is missing"
  local target_dir="${CARGO_TARGET_DIR:-$TMP_ROOT/deploy-action-target}"
  warn "$why: building deploy-action from source at the action's commit (cargo build --release --locked); this takes a few minutes"
  (
    cd "$ACTION_DIR"
    cargo build --release --locked --manifest-path "$ACTION_DIR/Cargo.toml" --target-dir "$target_dir"
  ) >&2 || fail "cargo build --release --locked failed in $ACTION_DIR"
  local built="$target_dir/release/deploy-action$EXE"
  [ -x "$built" ] || fail "cargo finished but $built is missing"
  local dir="$SOURCE_DIR"
  mkdir -p "$dir"
  cp -f "$built" "$dir/deploy-action$EXE.tmp"
  mv -f "$dir/deploy-action$EXE.tmp" "$dir/deploy-action$EXE"
  printf '%s' "$ACTION_DIR" >"$dir/.built-from"
  set_output bin "$dir/deploy-action$EXE"
  set_output version "$VERSION"
  set_output source source
  exit 0
}

never_or_build() {
  if [ "$MODE" = never ]; then fail "$1, and build-from-source is 'never'"; fi
  build_from_source "$1"
}

[ "$MODE" = always ] && build_from_source "build-from-source is 'always'"
[ -n "$TARGET" ] || never_or_build "no published deploy-action binary fits runner $OS/$ARCH"

ASSET="deploy-action-$VERSION-$TARGET.tar.gz"
EXPECTED="$(pinned_sum "$ASSET")"
if [ -z "$EXPECTED" ]; then
  if [ "$VERSION" != "$PINNED" ]; then
    fail "version $VERSION is not pinned at this action commit (dist/SHA256SUMS has no $ASSET; it pins $PINNED): use the action at the tag of that version instead of the version input"
  fi
  never_or_build "dist/SHA256SUMS pins no checksum for $ASSET yet"
fi

DIR="$TMP_ROOT/deploy-action/$VERSION/$TARGET"
BIN="$DIR/deploy-action"
if [ -x "$BIN" ] && [ "$(cat "$DIR/.asset-sha256" 2>/dev/null)" = "$EXPECTED" ]; then
  note "reusing $BIN installed earlier in this job"
  set_output bin "$BIN"
  set_output version "$VERSION"
  set_output source release
  exit 0
fi

# An earlier step of this job fell back to a source build (the download failed): keep using that
# binary rather than trying the download again.
[ "$MODE" = never ] || reuse_source_build

BASE="${DEPLOY_ACTION_DOWNLOAD_BASE:-${GITHUB_SERVER_URL:-https://github.com}/$REPO/releases/download}"
PROTO="=https"
[ -z "${DEPLOY_ACTION_DOWNLOAD_BASE:-}" ] || PROTO="=https,file"
URL="$BASE/v$VERSION/$ASSET"

mkdir -p "$DIR"
WORK="$(mktemp -d "$DIR/.download.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
note "downloading $URL"
if ! curl --proto "$PROTO" --tlsv1.2 -fsSL --retry 5 --retry-connrefused -o "$WORK/$ASSET" "$URL"; then
  never_or_build "downloading $URL failed"
fi

ACTUAL="$(sha256_of "$WORK/$ASSET")"
if [ "$ACTUAL" != "$EXPECTED" ]; then
  fail "checksum mismatch for $ASSET: dist/SHA256SUMS pins $EXPECTED but the download has $ACTUAL; refusing to install it"
fi
note "sha256 verified: $ACTUAL  $ASSET"

tar -xzf "$WORK/$ASSET" -C "$WORK" deploy-action || fail "$ASSET does not contain a deploy-action binary"
chmod 0755 "$WORK/deploy-action"
mv -f "$WORK/deploy-action" "$BIN"
printf '%s' "$EXPECTED" >"$DIR/.asset-sha256"
set_output bin "$BIN"
set_output version "$VERSION"
set_output source release
