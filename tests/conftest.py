"""Shared fixtures: a real Kaltura emulator on loopback, flite speech, daemon configs,
and a way to run the real `reach-vendor` process against them."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
import yaml
from hypothesis import settings

from reach_vendor.emulator import KalturaEmulator

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
class Vendor:
    partner_id: int
    app_token_id: str
    app_token: str


@dataclass(frozen=True)
class Clip:
    path: Path
    text: str


@pytest.fixture
def emulator() -> Iterator[KalturaEmulator]:
    with KalturaEmulator() as emu:
        yield emu


@pytest.fixture
def vendor(emulator: KalturaEmulator) -> Vendor:
    v = Vendor(partner_id=9001, app_token_id="1_testtoken", app_token=secrets.token_hex(16))
    emulator.add_vendor_partner(
        partner_id=v.partner_id,
        app_token_id=v.app_token_id,
        app_token=v.app_token,
        hash_type="SHA256",
    )
    return v


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
    token_file = tmp_path / "app_token"
    token_file.write_text(vendor.app_token)
    data: dict[str, Any] = {
        "kaltura": {
            "service_url": emu.url,
            "partner_id": vendor.partner_id,
            "app_token": {"id": vendor.app_token_id, "token_file": str(token_file)},
            "request_timeout_s": 10,
            "retries": 2,
        },
        "database": {"url": f"sqlite:///{tmp_path / 'reach.sqlite3'}"},
        "polling": {"interval_s": 1},
        "workers": {"concurrency": 2, "retry_base_s": 0.5},
        "storage": {"work_dir": str(tmp_path / "work")},
        "logging": {"format": "json", "level": "DEBUG"},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(data))
    return cfg


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
    name = f"reach_test_{secrets.token_hex(6)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


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
