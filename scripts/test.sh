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
# The ops page is tested in a real headless browser.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
# promtool validates deploy/prometheus-alerts.yml.
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v pg_ctlcluster >/dev/null || need_apt+=(postgresql)
# The unit's sandbox test expands its syscall groups with systemd-analyze.
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
# Recorded speech with transcripts for bench/asr_wer.py (real-speech WER per engine).
for pkg in pocketsphinx-testdata asterisk-core-sounds-en asterisk-core-sounds-en-gsm \
    asterisk-core-sounds-en-g722; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need_apt+=("$pkg")
done
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The PostgreSQL tests (replicas, SKIP LOCKED claims, migrations) need a server on
# 127.0.0.1:5432; each test creates and drops a database of its own there. Start the
# distribution's cluster if it is down (no systemd needed); the tests skip, saying why,
# only if that fails too. REACH_TEST_PG_DSN points them at another server.
if [ -z "${REACH_TEST_PG_DSN:-}" ] && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
  if [ -n "$pg_version" ]; then
    $SUDO pg_ctlcluster "$pg_version" main start 2>/dev/null \
      || $SUDO service postgresql start >/dev/null 2>&1 || true
  fi
  for _ in $(seq 1 20); do pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432 || echo "warning: PostgreSQL is not running; its tests will skip" >&2
fi
# A fresh Debian cluster wants passwords on TCP: give the tests a login role of their own
# (CREATEDB only) instead of touching pg_hba.conf.
if [ -z "${REACH_TEST_PG_DSN:-}" ] && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null \
  && ! PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' \
    >/dev/null 2>&1 && command -v runuser >/dev/null && [ "$(id -u)" = 0 ]; then
  runuser -u postgres -- psql -qc "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reach_test') THEN
        CREATE ROLE reach_test LOGIN CREATEDB PASSWORD 'reach_test';
      END IF; END \$\$;" >/dev/null \
    && export REACH_TEST_PG_DSN=postgresql://reach_test:reach_test@127.0.0.1:5432/postgres
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
# Bytecode is written as modules are first imported, not at install for the thousands the
# tests never load (moto, botocore; figures in README, Layout); that needs writing it allowed.
unset PYTHONDONTWRITEBYTECODE
.venv/bin/pip install -q --no-compile --disable-pip-version-check -e '.[test,postgres]' 2>&1 \
  | grep -v '^WARNING: Location' || true

.venv/bin/ruff check reach_vendor reach_devkit tests bench
.venv/bin/mypy reach_vendor reach_devkit
# pytest exits 5 when it collects no tests: with `set -e` that fails the run, as it should.
# Two workers, one per core of the CI machine; a module's tests stay on one worker so its
# fixtures (speech, servers) are built once.
.venv/bin/python -m pytest -q -n 2 --dist loadscope "$@"
