"""Shared fixtures: a real Kaltura emulator on loopback, flite speech, daemon configs,
and a way to run the real `reach-vendor` process against them."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_devkit.harness import pg_database
from reach_vendor.store.tasks import TaskStore
from tests.support.daemon import PG_ADMIN_DSN, SENTENCES, Clip, add_test_vendor
from tests.support.speech import make_speech

# CI must be reproducible: the same examples on every run, and no example database left in
# a fresh clone. Locally hypothesis explores new examples each run and remembers failures.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every end-to-end test runs a daemon and takes seconds: `-m "not slow"` leaves them
    (and the integration tests marked slow) out of a quick run. CI runs everything."""
    e2e = pytest.mark.slow(reason="runs the daemon end to end")
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(e2e)


@pytest.fixture
def emulator() -> Iterator[KalturaEmulator]:
    with KalturaEmulator() as emu:
        yield emu


@pytest.fixture
def vendor(emulator: KalturaEmulator) -> Vendor:
    return add_test_vendor(emulator)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Clip]:
    """Real speech made with Debian's flite (the voice pocketsphinx recognises well)."""
    if not shutil.which("flite") or not shutil.which("ffmpeg"):
        pytest.skip("flite and ffmpeg are needed (scripts/test.sh installs them)")

    out = tmp_path_factory.mktemp("speech")
    return [
        Clip(make_speech(text, out / f"clip{i}.mp3", fmt="mp3"), text)
        for i, text in enumerate(SENTENCES)
    ]


"""Where tests create (and drop) their own throw-away databases; never used for data."""


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database of this test's own (`reach_test_<random>`), dropped after.

    The server is shared with other users, so nothing is ever created outside this
    database. Skips only when no server answers; scripts/test.sh starts one if it is down.
    """
    psycopg = pytest.importorskip("psycopg", reason="psycopg not installed (extra: postgres)")
    try:
        admin = psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", PG_ADMIN_DSN)
        pytest.skip(f"no PostgreSQL server reachable at {where}: {first_line}")
    admin.close()
    with pg_database(PG_ADMIN_DSN, prefix="reach_test", connect_timeout=3) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TaskStore]:
    """The store on a real SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    s = TaskStore(url, migrate=True)
    yield s
    s.close()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """S3 and Transcribe on loopback (moto's server mode): the real boto3 wire protocol,
    no AWS account, no network beyond 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
