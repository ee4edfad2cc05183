#!/usr/bin/env bash
# Sidekiq peer: installs Debian's ruby-sidekiq when `sidekiq` is missing, then runs bench.rb, which appends
# one JSON line to $PEER_OUT. Called by the peers runner as `bash sidekiq/run.sh` with PEER_* in the env.
set -uo pipefail
# An absolute PEER_OUT before the cd below; without one the line goes to sidekiq/result.jsonl.
export PEER_OUT=$(realpath -m "${PEER_OUT:-$(dirname "$0")/result.jsonl}")
OUT=$PEER_OUT
cd "$(dirname "$0")"

# Exits 0 once the line (a result or an error) is written, so a runner that records failed peers by exit
# code does not record this one twice.
error() {
  printf '{"peer": "sidekiq", "error": "%s"}\n' "$1" >> "$OUT"
  echo "sidekiq: $1" >&2
  exit 0
}

if ! command -v sidekiq > /dev/null; then
  [ "$(id -u)" = 0 ] || error "sidekiq is missing and apt-get needs root"
  echo "sidekiq: apt-get install ruby-sidekiq (log: sidekiq/install.log)" >&2
  # The package lists may be missing or stale on a fresh machine: update once and retry.
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q ruby-sidekiq ||
      { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ruby-sidekiq; }
  } > install.log 2>&1 || error "apt-get install ruby-sidekiq failed (sidekiq/install.log)"
fi

count_lines() { if [ -f "$OUT" ]; then wc -l < "$OUT"; else echo 0; fi; }
lines=$(count_lines)
# In the background so that a SIGTERM to this script (a runner's own timeout) reaches the bench, which then
# stops its workers and leaves the error line below.
trap 'kill -TERM "$bench" 2> /dev/null' TERM INT
timeout 900 ruby bench.rb &
bench=$!
wait "$bench"; rc=$?
[ "$rc" -gt 128 ] && { wait "$bench"; rc=$?; }  # woken by the trap: wait for the bench itself
# bench.rb writes its own line, an error line included; a crash or the timeout leaves none.
[ "$(count_lines)" -gt "$lines" ] || error "bench.rb failed (exit $rc)"
