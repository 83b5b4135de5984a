#!/usr/bin/env bash
# Set up everything the tests need (Debian packages, virtualenv) and run the whole suite.
# Safe to re-run; CI calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need_apt=()
command -v flite >/dev/null || need_apt+=(flite)
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v sox >/dev/null || need_apt+=(sox)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test,postgres]' 2>&1 \
  | grep -v '^WARNING: Location' || true

.venv/bin/ruff check reach_vendor processors tests bench
.venv/bin/mypy reach_vendor processors
# pytest exits 5 when it collects no tests: with `set -e` that fails the run, as it should.
.venv/bin/python -m pytest -q "$@"
