#!/usr/bin/env bash
# Runs one deploy-action stage for the composite action (action.yml).
#
# Every input arrives through the step's `env:` (composite actions get no INPUT_* variables, and
# `${{ }}` is never spliced into shell text): DEPLOY_ACTION_BIN (from dist/install.sh), INPUT_COMMAND,
# INPUT_ARGS (extra arguments, one per line, each passed as one argument, never through a shell),
# INPUT_ENVIRONMENT, INPUT_MANIFEST, INPUT_WORKING_DIRECTORY. The binary writes its own outputs to
# $GITHUB_OUTPUT and its summary to $GITHUB_STEP_SUMMARY; its exit code is the step's.
set -euo pipefail

escape() { local s="${1//'%'/%25}"; s="${s//$'\r'/%0D}"; printf '%s' "${s//$'\n'/%0A}"; }
fail() { printf '::error title=deploy-action::%s\n' "$(escape "$*")"; exit 2; }

BIN="${DEPLOY_ACTION_BIN:-}"
[ -n "$BIN" ] && [ -x "$BIN" ] || fail "the deploy-action binary is not installed (install step output bin='$BIN')"

COMMAND="${INPUT_COMMAND:-}"
case "$COMMAND" in
  plan | build | test | up | pages | migrate | promote | rollback | status | exec) ;;
  "") fail "the 'command' input is required (plan, build, test, up, pages, migrate, promote, rollback, status or exec)" ;;
  *) fail "unknown command '$COMMAND': expected plan, build, test, up, pages, migrate, promote, rollback, status or exec" ;;
esac

argv=("$COMMAND")
if [ -n "${INPUT_ENVIRONMENT:-}" ]; then argv+=(--env "$INPUT_ENVIRONMENT"); fi
if [ -n "${INPUT_MANIFEST:-}" ]; then argv+=(--manifest "$INPUT_MANIFEST"); fi

# One argument per line; surrounding blanks and CR are trimmed, blank lines skipped.
while IFS= read -r line || [ -n "$line" ]; do
  line="${line%$'\r'}"
  line="${line#"${line%%[![:space:]]*}"}"
  line="${line%"${line##*[![:space:]]}"}"
  [ -z "$line" ] || argv+=("$line")
done <<<"${INPUT_ARGS:-}"

if [ -n "${INPUT_WORKING_DIRECTORY:-}" ]; then
  cd -- "$INPUT_WORKING_DIRECTORY" || fail "working-directory '$INPUT_WORKING_DIRECTORY' does not exist"
fi

exec "$BIN" "${argv[@]}"
