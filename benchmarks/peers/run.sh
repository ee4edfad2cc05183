#!/usr/bin/env bash
# Peer benchmarks: Celery (default and acks_late), RQ, Dramatiq, arq and SAQ beside tickr, on the same Redis.
#
#   bash benchmarks/peers/run.sh            # then: python benchmarks/peers/report.py
#
# Each peer gets its own virtualenv under benchmarks/peers/.venvs/ (installed from PyPI on first use) and
# runs the same measurements (enqueue one by one, drain, enqueue-to-start latency, delayed lateness) on
# Redis DB 9 (PEER_REDIS_URL), deleting its keys before and after (never FLUSHDB). tickr runs the same
# scenarios with `tickr bench` on the same database. A peer that cannot be installed or run is recorded
# as such and skipped. Sizes: PEER_N (drain and enqueue, default 5000), 500 latency jobs, 200 delayed jobs.
set -uo pipefail
cd "$(dirname "$0")"
HERE=$PWD
PYTHON=${PYTHON:-python3}
TICKR=${TICKR:-$HERE/../../.venv/bin/tickr}
export PEER_REDIS_URL=${PEER_REDIS_URL:-redis://127.0.0.1:6379/9}
export PEER_N=${PEER_N:-5000}
mkdir -p results
export PEER_OUT=$HERE/results/peers.jsonl
: > "$PEER_OUT"

# SAQ imports typing_extensions without declaring it (seen with saq 0.26): installed beside it.
declare -A PACKAGE=([celery]="celery[redis]" [rq]="rq" [dramatiq]="dramatiq[redis]" [arq]="arq" [saq]="saq typing_extensions")
PEERS=${PEERS:-celery rq dramatiq arq saq}

record_error() { printf '{"peer": "%s", "error": "%s"}\n' "$1" "$2" >> "$PEER_OUT"; }

install() {
  local peer=$1 venv=.venvs/$1
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import ${peer}" 2>/dev/null && return 0
  rm -rf "$venv"
  # shellcheck disable=SC2086 # PACKAGE entries may name several packages
  "$PYTHON" -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check ${PACKAGE[$peer]} redis
}

run_peer() {  # name, venv, extra env...
  local name=$1 peer=$2; shift 2
  echo "== $name"
  env "$@" timeout 600 ".venvs/$peer/bin/python" "${peer}_peer.py" || record_error "$name" "run failed (exit $?)"
}

for peer in $PEERS; do
  if ! install "$peer" > "results/install-$peer.log" 2>&1; then
    echo "== $peer: install failed (results/install-$peer.log)"
    record_error "$peer" "pip install ${PACKAGE[$peer]} failed"
    continue
  fi
  if [ "$peer" = celery ]; then
    run_peer celery celery PEER_CELERY_ACKS_LATE=0
    run_peer "celery (acks_late)" celery PEER_CELERY_ACKS_LATE=1
  else
    run_peer "$peer" "$peer"
  fi
done

[ "${SKIP_TICKR:-0}" = 1 ] || {
echo "== tickr"
"$TICKR" bench --redis-url "$PEER_REDIS_URL" --scenarios enqueue,drain,latency,delayed -n "$PEER_N" --runs 1 \
  --json results/tickr.json > results/tickr.txt || record_error tickr "tickr bench failed"
}
"$PYTHON" report.py
