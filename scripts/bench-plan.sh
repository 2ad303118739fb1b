#!/usr/bin/env bash
# Benchmark `deploy-action plan --json` on a large monorepo: 100k files, 50 units.
#
# The repository is generated once and cached under /var/tmp/deploy-action-bench (delete it to
# regenerate). The release binary is built with cargo, then hyperfine compares
# `deploy-action plan --json` with plain `git diff --name-only` (the floor: plan cannot be faster
# than the git diff it reads).
#
# Usage: bash scripts/bench-plan.sh            (prints the hyperfine table; BENCHMARKS.md records it)
#        BIN=path/to/deploy-action bash scripts/bench-plan.sh   (time that binary; no build)
#
# Settings: BIN, DEPLOY_BENCH_REPO, DEPLOY_BENCH_FILES, DEPLOY_BENCH_UNITS, HYPERFINE_EXPORT
# (a Markdown file for the table), HYPERFINE_RUNS (default 20).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
repo="${DEPLOY_BENCH_REPO:-/var/tmp/deploy-action-bench/repo}"
files="${DEPLOY_BENCH_FILES:-100000}"
units="${DEPLOY_BENCH_UNITS:-50}"

if ! command -v hyperfine >/dev/null; then
  echo "installing hyperfine" >&2
  apt-get install -y hyperfine >/dev/null
fi

if [ ! -f "$repo/.bench-ready" ]; then
  echo "generating $repo: $files files, $units units" >&2
  rm -rf "$repo"
  mkdir -p "$repo"
  cd "$repo"
  git init -q -b main
  git config user.email bench@example.com
  git config user.name bench
  git config commit.gpgsign false
  python3 - "$files" "$units" <<'PY'
import os, sys
files, units = int(sys.argv[1]), int(sys.argv[2])
lines = ["version: 1", "project: bench", "environments:", "  prod:",
         '    hosts: ["ssh://deploy@prod.example.com:22"]', "    dir: /srv/bench",
         "    compose_files: [compose.yml]", "services:"]
for u in range(units):
    lines += [f"  svc{u:02}:", f'    paths: ["services/svc{u:02}/**", "libs/lib{u % 10}/**"]',
              f'    build: {{ context: services/svc{u:02}, dockerfile: Dockerfile, image: bench/svc{u:02} }}',
              f'    test: "make -C services/svc{u:02} test"']
lines += ["migrations:", "  dir: migrations", "  engine: postgres", '  paths: ["migrations/**"]']
open("deploy.yml", "w").write("\n".join(lines) + "\n")
# 80% of the files under the units, 15% in shared libs, 5% elsewhere (docs).
for i in range(files):
    r = i % 20
    if r < 16:
        d = f"services/svc{i % units:02}/src/m{(i // units) % 40}"
    elif r < 19:
        d = f"libs/lib{i % 10}/src/m{(i // 10) % 50}"
    else:
        d = f"docs/d{i % 100}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i}.txt", "w") as f:
        f.write(f"{i}\n")
PY
  git add -A
  git commit -q -m "100k files"
  # The commit plan looks at: 1,250 files changed, 250 in five units (svc01-svc05, 50 each in
  # src/m1) and 1,000 under docs/d19 (in no unit). The first pattern finds 250 files, the second
  # 1,000 (its cap).
  python3 - <<'PY'
import glob
changed = 0
for pattern in ["services/svc0[1-5]/src/m1/*.txt", "docs/d1*/*.txt"]:
    for p in sorted(glob.glob(pattern))[:1000]:
        with open(p, "a") as f:
            f.write("changed\n")
        changed += 1
print(f"changed {changed} files")
PY
  git add -A
  git commit -q -m "change some units"
  touch .bench-ready
fi

if [[ -n ${BIN:-} ]]; then
  bin=$(realpath "$BIN")
else
  (cd "$here" && cargo build --release --locked --quiet)
  bin="$here/target/release/deploy-action"
  [[ -n ${CARGO_TARGET_DIR:-} ]] && bin="$CARGO_TARGET_DIR/release/deploy-action"
fi
cd "$repo"
echo "repository: $(git ls-files | wc -l) files; diff HEAD~1..HEAD: $(git diff --name-only HEAD~1 HEAD | wc -l) files" >&2
"$bin" plan --json --env prod | python3 -c 'import json,sys; d=json.load(sys.stdin); print("affected:", d["affected"], "steps:", len(d["steps"]))' >&2
hyperfine --warmup 3 --min-runs "${HYPERFINE_RUNS:-20}" -N \
  "git diff --name-only HEAD~1 HEAD" \
  "$bin plan --json --env prod" \
  "$bin plan --json --env prod --all" \
  ${HYPERFINE_EXPORT:+--export-markdown "$HYPERFINE_EXPORT"}
