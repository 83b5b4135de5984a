"""Shared fixtures: a real Kaltura emulator on loopback, flite speech, daemon configs,
and a way to run the real `reach-vendor` process against them."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from hypothesis import settings

from bench.harness import pg_database
from reach_vendor.emulator import KalturaEmulator
from reach_vendor.emulator.vendor_setup import Vendor, write_daemon_config

REPO = Path(__file__).resolve().parent.parent

# CI must be reproducible: the same examples on every run, and no example database left in
# a fresh clone. Locally hypothesis explores new examples each run and remembers failures.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

SENTENCES = [
    "The weather is nice today and we are going to the park.",
    "Please send me the report before the meeting on Monday.",
    "She bought some fresh bread and milk at the store.",
    "The train to the city leaves every hour from the station.",
]


@dataclass(frozen=True)
class Clip:
    path: Path
    text: str


@pytest.fixture
def emulator() -> Iterator[KalturaEmulator]:
    with KalturaEmulator() as emu:
        yield emu


def add_test_vendor(emulator: KalturaEmulator) -> Vendor:
    """The vendor partner every test uses, with a fresh app token."""
    v = Vendor(partner_id=9001, app_token_id="1_testtoken", app_token=secrets.token_hex(16))
    emulator.add_vendor_partner(
        partner_id=v.partner_id,
        app_token_id=v.app_token_id,
        app_token=v.app_token,
        hash_type="SHA256",
    )
    return v


@pytest.fixture
def vendor(emulator: KalturaEmulator) -> Vendor:
    return add_test_vendor(emulator)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Clip]:
    """Real speech made with Debian's flite (the voice pocketsphinx recognises well)."""
    if not shutil.which("flite") or not shutil.which("ffmpeg"):
        pytest.skip("flite and ffmpeg are needed (scripts/test.sh installs them)")
    from tests.speech import make_speech

    out = tmp_path_factory.mktemp("speech")
    return [
        Clip(make_speech(text, out / f"clip{i}.mp3", fmt="mp3"), text)
        for i, text in enumerate(SENTENCES)
    ]


def add_speech_task(emu: KalturaEmulator, vendor: Vendor, clip: Clip | None, **kw: Any) -> int:
    return emu.add_task(
        vendor_partner_id=vendor.partner_id,
        partner_id=kw.pop("partner_id", 4124832),
        media_path=clip.path if clip else None,
        media_ext=clip.path.suffix.lstrip(".") if clip else "mp3",
        **kw,
    )


def write_config(tmp_path: Path, emu: KalturaEmulator, vendor: Vendor, **sections: Any) -> Path:
    """The daemon config tests run with; `sections` override its defaults key by key."""
    defaults: dict[str, dict[str, Any]] = {
        "workers": {"concurrency": 2, "retry_base_s": 0.5},
        "logging": {"level": "DEBUG"},
    }
    for name, values in sections.items():
        defaults.setdefault(name, {}).update(values)
    return write_daemon_config(tmp_path, emu, vendor, **defaults)


def wait_for(predicate: Callable[[], bool], timeout: float = 90, what: str = "") -> None:
    """Poll `predicate` until it holds; a test that waits in vain fails saying for what."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def daemon_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "reach_vendor", "run", "--config", str(config), *args]


def start_daemon(config: Path, log_file: IO[str]) -> subprocess.Popen[str]:
    """The real `reach-vendor run` process in the background, all its output in `log_file`
    (which the caller keeps open while it runs), for tests that signal or kill it."""
    return subprocess.Popen(
        daemon_command(config),
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def run_daemon_once(config: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        daemon_command(config, "--once"),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


PG_ADMIN_DSN = os.environ.get("REACH_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
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


def secrets_seen(emu: KalturaEmulator, vendor: Vendor) -> list[str]:
    """Every secret the daemon was given or handed by Kaltura during a run."""
    values = [vendor.app_token]
    for task in emu.tasks():
        if task.get("accessKey"):
            values.append(str(task["accessKey"]))
    values.extend(emu.issued_ks())
    return values


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
