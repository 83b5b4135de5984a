#!/usr/bin/env bash
# Set up a virtualenv (once) and run the full vendor flow against the bundled emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e . 2>&1 | grep -v '^WARNING: Location' || true
exec .venv/bin/python -m reach_devkit.demo "$@"
