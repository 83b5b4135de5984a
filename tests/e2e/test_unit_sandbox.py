"""Real work under the shipped unit's sandbox: the seccomp filter, no new privileges and
the read-only paths deploy/reach-vendor.service declares, so that a unit change that
breaks decoding or recognition (which run in child processes) fails here, not in
production with every task left PROCESSING."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from tests.support.daemon import (
    READY,
    REPO,
    Clip,
    add_speech_task,
    daemon_command,
    write_config,
)
from tests.support.sandbox import (
    Sandbox,
    mount_namespace_unavailable,
    sandbox_from_unit,
    sandboxed,
    seccomp_unavailable,
)

pytestmark = pytest.mark.slow


def unit_sandbox(writable: list[Path], visible: list[Path]) -> Sandbox:
    reason = seccomp_unavailable()
    if reason:
        pytest.skip(f"cannot load the unit's seccomp filter here: {reason}")
    # Read-only paths need a mount namespace; without one the filter is still tested.
    paths = mount_namespace_unavailable() is None
    return sandbox_from_unit(writable, visible, protect_paths=paths)


def run_sandboxed(
    sandbox: Sandbox, command: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        sandboxed(sandbox, command),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": "/", "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"},
    )


@pytest.mark.parametrize("engine", ["pocketsphinx", "whisper-cpp"])
def test_speech_task_is_delivered_inside_the_units_sandbox(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip], engine: str
) -> None:
    """pocketsphinx decodes in the child processes; whisper-cpp (the default) converts its
    model in a child at start-up (into the private /tmp) and runs OpenMP threads."""
    etc, state = tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    state.mkdir()
    # As deployed: the config read-only, the store and work files in the state directory.
    cfg = write_config(
        etc,
        emulator,
        vendor,
        database={"url": f"sqlite:///{state / 'reach.sqlite3'}"},
        storage={"work_dir": str(state / "work")},
        workers={"concurrency": 1, "max_attempts": 1},
        processors={"default": engine},
    )
    task_id = add_speech_task(emulator, vendor, clips[0])
    sandbox = unit_sandbox(writable=[state], visible=[etc])

    proc = run_sandboxed(sandbox, daemon_command(cfg, "--once"), timeout=120)

    task = emulator.task(task_id)
    log = (proc.stdout + proc.stderr)[-4000:]
    assert task["status"] == READY, (
        task["status"],
        task.get("errDescription"),
        proc.returncode,
        log,
    )
    assert proc.returncode == 0, log
    assert emulator.caption_assets(task["entryId"]), log


PROBE = """
import os, sys
from pathlib import Path
try:
    os.chroot("/")
except PermissionError:
    print("chroot refused")
for path in sys.argv[1:]:
    try:
        (Path(path) / "probe").write_text("x")
        print("wrote", path)
    except OSError as exc:
        print("cannot write", path, exc.strerror)
"""


def test_the_sandbox_applies_the_units_filter_and_paths(tmp_path: Path) -> None:
    """The sandbox is not a no-op: a call the unit denies is denied, and writes land only
    in the state directory."""
    etc, state = tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    state.mkdir()
    sandbox = unit_sandbox(writable=[state], visible=[etc])
    assert "chroot" not in sandbox.syscalls and "read" in sandbox.syscalls
    assert sandbox.no_new_privileges

    proc = run_sandboxed(
        sandbox, [sys.executable, "-c", PROBE, str(state), str(etc), str(REPO)], timeout=30
    )

    if sandbox.errno is None:
        assert proc.returncode == -31, proc  # SIGSYS
        return
    assert proc.returncode == 0, proc
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["chroot refused", f"wrote {state}"], proc
    if sandbox.protect_paths:
        assert lines[2:] == [
            f"cannot write {etc} Read-only file system",
            f"cannot write {REPO} Read-only file system",
        ], proc
    else:
        pytest.skip(f"read-only paths not emulated: {mount_namespace_unavailable()}")
