"""The emulator's vendor and tasks, daemon configs, and the daemon in-process or as a process."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor, write_daemon_config
from reach_vendor.common.clock import SYSTEM_CLOCK, Clock
from reach_vendor.worker.config import load_settings
from reach_vendor.worker.daemon import Daemon

REPO = Path(__file__).resolve().parents[2]


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
        # The daemon tests are about the flow, not recognition: the fastest local engine.
        # The default engine (whisper-cpp) runs in test_demo, faster-whisper in test_deliverables.
        "processors": {"default": "pocketsphinx"},
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


def secrets_seen(emu: KalturaEmulator, vendor: Vendor) -> list[str]:
    """Every secret the daemon was given or handed by Kaltura during a run."""
    values = [vendor.app_token]
    for task in emu.tasks():
        if task.get("accessKey"):
            values.append(str(task["accessKey"]))
    values.extend(emu.issued_ks())
    return values


READY, PROCESSING, ERROR, ABORTED = 2, 3, 6, 7


def make_daemon(
    tmp_path: Path,
    emu: KalturaEmulator,
    vendor: Vendor,
    *,
    clock: Clock = SYSTEM_CLOCK,
    **sections: Any,
) -> Daemon:
    sections.setdefault("workers", {})
    sections["workers"] = {"concurrency": 2, "retry_base_s": 0.5, **sections["workers"]}
    return Daemon(load_settings(write_config(tmp_path, emu, vendor, **sections)), clock=clock)


@contextmanager
def running(daemon: Daemon) -> Iterator[Daemon]:
    thread = threading.Thread(target=daemon.run_forever, name="daemon-under-test")
    thread.start()
    try:
        yield daemon
    finally:
        # Twice, as a second SIGTERM: running tasks are released at once, not drained.
        daemon.stop()
        daemon.stop()
        thread.join(timeout=60)
        assert not thread.is_alive()


def long_clip(clips: list[Clip], tmp_path: Path, repeat: int = 4) -> Clip:
    """About 15 s of speech: long enough to act while the processor is busy."""
    import subprocess

    out = tmp_path / "long.mp3"
    parts = [str(c.path) for c in clips] * repeat
    inputs = "|".join(parts)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", f"concat:{inputs}", "-c", "copy", str(out)],
        check=True,
    )
    return Clip(out, " ".join(c.text for c in clips) * repeat)
