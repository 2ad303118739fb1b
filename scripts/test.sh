#!/usr/bin/env bash
# The README's test command: installs and starts the real test services (idempotent), then runs every
# test against them, then the lints. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> Rust toolchain with rustfmt and clippy (installed with rustup if missing or too old)"
# shellcheck source=scripts/toolchain.sh
TOOLCHAIN_COMPONENTS="rustfmt clippy" source scripts/toolchain.sh

echo "==> test environment (sshd, Docker + compose v2/v1, PostgreSQL, tools)"
bash scripts/test-env.sh up

echo "==> formatting"
cargo fmt --all -- --check

echo "==> tests"
# Test threads: the integration tests share one Docker engine and one sshd; a few at a time is plenty.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast --test-threads "${DEPLOY_TEST_THREADS:-4}"
  cargo test --locked --doc
else
  cargo test --locked --no-fail-fast -- --test-threads "${DEPLOY_TEST_THREADS:-4}"
fi

echo "==> clippy"
cargo clippy --locked --all-targets -- -D warnings
