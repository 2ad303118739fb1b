#!/usr/bin/env bash
# Creates or moves a tag through the GitHub REST API, for .github/workflows/release.yml.
#
#   bash scripts/release-ref.sh create TAG SHA   # POST git/refs: a new tag (refused if it exists)
#   bash scripts/release-ref.sh move TAG SHA     # PATCH git/refs/tags/TAG with force, or create it
#
# Environment: REPO (owner/name) and GH_TOKEN (read by gh).
#
# A 403 on a ref update usually means the `workflows` permission is missing: GitHub wants it to
# point a tag at a commit whose .github/workflows/ differ from the branch heads, and GITHUB_TOKEN
# can never have it. The error then names the permissions GitHub asked for (the
# x-accepted-github-permissions header) and what to do, instead of gh's bare "HTTP 403".
set -euo pipefail

escape() { local s="${1//'%'/%25}"; s="${s//$'\r'/%0D}"; printf '%s' "${s//$'\n'/%0A}"; }
error() { printf '::error title=release tag::%s\n' "$(escape "$*")"; }

[ $# -eq 3 ] || { error "usage: release-ref.sh create|move TAG SHA"; exit 2; }
MODE=$1 TAG=$2 SHA=$3
: "${REPO:?REPO (owner/name) is not set}"
case "$SHA" in *[!0-9a-f]* | "") error "not a commit sha: '$SHA'"; exit 2 ;; esac

# api WHAT ARGS...: one `gh api` call; on failure an ::error that explains a 403.
api() {
  local what=$1 out status accepted
  shift
  if out="$(gh api --include "$@" 2>&1)"; then return 0; fi
  out="$(printf '%s\n' "$out" | tr -d '\r')"
  status="$(printf '%s\n' "$out" | awk 'toupper($1) ~ /^HTTP\// { print $2; exit }')"
  accepted="$(printf '%s\n' "$out" | sed -n 's/^[Xx]-[Aa]ccepted-[Gg]it[Hh]ub-[Pp]ermissions:[[:space:]]*//p' | head -n1)"
  if [ "$status" = 403 ]; then
    error "$what was refused (HTTP 403; x-accepted-github-permissions: ${accepted:-not sent})." \
      "Pointing a tag at a commit whose .github/workflows/ differ from the branch heads needs the" \
      "workflows permission, which GITHUB_TOKEN cannot have: store a GitHub App token with" \
      "Contents: write and Workflows: write as the secret DEPLOY_ACTION_RELEASE_TOKEN (environment \`release\`) and run the release again."
  else
    error "$what failed (HTTP ${status:-?})"
  fi
  printf '%s\n' "$out" >&2
  return 1
}

case "$MODE" in
  create)
    api "creating tag $TAG at $SHA" --method POST "repos/$REPO/git/refs" \
      -f "ref=refs/tags/$TAG" -f "sha=$SHA"
    ;;
  move)
    if gh api "repos/$REPO/git/ref/tags/$TAG" >/dev/null 2>&1; then
      api "moving tag $TAG to $SHA" --method PATCH "repos/$REPO/git/refs/tags/$TAG" \
        -f "sha=$SHA" -F force=true
    else
      api "creating tag $TAG at $SHA" --method POST "repos/$REPO/git/refs" \
        -f "ref=refs/tags/$TAG" -f "sha=$SHA"
    fi
    ;;
  *) error "usage: release-ref.sh create|move TAG SHA"; exit 2 ;;
esac
echo "tag $TAG -> $SHA"
