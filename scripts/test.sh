#!/usr/bin/env bash
# Installs tickr with its test dependencies into .venv and runs every check: lint, types, import layers, the test suite,
# and the soak tests in their short form. Needs only Python 3.11+; Redis is optional (tests start the
# embedded Valkey when none answers on 127.0.0.1:6379).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# The TLS tests of the script lane start Debian's redis-server (the bundled valkey-server has no TLS).
if ! command -v redis-server >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
# The real-Prometheus test runs Debian's prometheus package: /usr/bin/prometheus and /usr/bin/promtool.
if ! { command -v prometheus && command -v promtool; } >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# The dashboard's browser tests drive Debian's chromium through Playwright (never `playwright install`).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest "$@"
TICKR_SOAK_SHORT=1 .venv/bin/pytest -m soak "$@"
