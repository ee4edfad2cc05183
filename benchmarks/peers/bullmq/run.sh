#!/usr/bin/env bash
# BullMQ peer: `npm ci` from the committed package-lock.json when node_modules does not hold the pinned
# bullmq, then runs bench.js, which appends one JSON line to $PEER_OUT. Called by the peers runner as
# `bash bullmq/run.sh` with PEER_* in the env.
set -uo pipefail
# An absolute PEER_OUT before the cd below; without one the line goes to bullmq/result.jsonl.
export PEER_OUT=$(realpath -m "${PEER_OUT:-$(dirname "$0")/result.jsonl}")
OUT=$PEER_OUT
cd "$(dirname "$0")"

# Exits 0 once the line (a result or an error) is written, so a runner that records failed peers by exit
# code does not record this one twice.
error() {
  printf '{"peer": "bullmq", "error": "%s"}\n' "$1" >> "$OUT"
  echo "bullmq: $1" >&2
  exit 0
}

command -v node > /dev/null || error "node is missing"
pinned() {  # node_modules holds the bullmq version that package.json pins
  node -e 'const want = require("./package.json").dependencies.bullmq;
           process.exit(require("./node_modules/bullmq/package.json").version === want ? 0 : 1)' 2> /dev/null
}
if ! pinned; then
  echo "bullmq: npm ci (log: bullmq/install.log)" >&2
  npm ci --no-audit --no-fund > install.log 2>&1 && pinned || error "npm ci failed (bullmq/install.log)"
fi

count_lines() { if [ -f "$OUT" ]; then wc -l < "$OUT"; else echo 0; fi; }
lines=$(count_lines)
# In the background so that a SIGTERM to this script (a runner's own timeout) reaches the bench, which then
# stops its workers and leaves the error line below.
trap 'kill -TERM "$bench" 2> /dev/null' TERM INT
timeout 900 node bench.js &
bench=$!
wait "$bench"; rc=$?
[ "$rc" -gt 128 ] && { wait "$bench"; rc=$?; }  # woken by the trap: wait for the bench itself
# bench.js writes its own line, an error line included; a crash or the timeout leaves none.
[ "$(count_lines)" -gt "$lines" ] || error "bench.js failed (exit $rc)"
