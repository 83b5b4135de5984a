"""SIGTERM to the real daemon process mid-transcription drains it: no more polls or
claims, the running task finishes and is delivered within the grace period, the process
exits 0 and the next start has only the untouched tasks left. A drain that runs out
releases the task with its downloaded and decoded media kept: the restart neither
downloads nor decodes it again."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.domain.states import TaskState
from reach_vendor.store.tasks import TaskStore
from tests.support.daemon import (
    PROCESSING,
    READY,
    Clip,
    add_speech_task,
    long_clip,
    run_daemon_once,
    start_daemon,
    wait_for,
    write_config,
)

GRACE_S = 60.0


def _sigterm_in_transcription(
    tmp_path: Path,
    cfg: Path,
    store: TaskStore,
    emu: KalturaEmulator,
    task_id: int,
    meanwhile: Callable[[], None] = lambda: None,
) -> tuple[int, str, int]:
    """Start the daemon, SIGTERM it once `task_id` is being transcribed (and `meanwhile`
    has run), wait for it to exit; the exit code, its output and the getJobs calls made
    before the signal."""
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log_file:
        proc = start_daemon(cfg, log_file)
        try:
            wait_for(
                lambda: (r := store.by_kaltura_id(task_id)) is not None and r.stage == "transcribe",
                60,
                "transcription to start",
            )
            meanwhile()
            polls = emu.calls.count(("reach_entryvendortask", "getJobs"))
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=GRACE_S)
        finally:
            if proc.poll() is None:
                proc.kill()
    return code, log_path.read_text(), polls


def _events(store: TaskStore, task_id: int) -> list[str]:
    rec = store.by_kaltura_id(task_id)
    assert rec is not None and rec.id is not None
    return [e.message for e in store.events(rec.id)]


def _flavor_downloads(emu: KalturaEmulator) -> int:
    with emu.lock:
        return sum("serveFlavor" in r["path"] for r in emu.http_requests)


def test_sigterm_drains_the_running_task_to_ready_and_leaves_the_rest_queued(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    running = add_speech_task(emulator, vendor, long_clip(clips, tmp_path, repeat=2))
    workers = {"concurrency": 1, "shutdown_grace_s": GRACE_S - 5}
    cfg = write_config(tmp_path, emulator, vendor, workers=workers, polling={"interval_s": 0.5})
    store = TaskStore(f"sqlite:///{tmp_path / 'reach.sqlite3'}", migrate=True)
    waiting = 0

    def offer_another() -> None:
        """A task recorded while the only worker is busy: the drain must leave it be."""
        nonlocal waiting
        waiting = add_speech_task(emulator, vendor, clips[0])
        wait_for(lambda: store.by_kaltura_id(waiting) is not None, 30, "the next poll")

    code, output, polls = _sigterm_in_transcription(
        tmp_path, cfg, store, emulator, running, offer_another
    )
    assert code == 0, output[-3000:]
    assert "received SIGTERM, stopping" in output and "draining: no new tasks" in output
    assert "drain time over" not in output
    # Stopped polling: at most a sweep that was already under way.
    assert emulator.calls.count(("reach_entryvendortask", "getJobs")) <= polls + 1

    # The running task was finished, not thrown away; the other one was never touched.
    assert emulator.task(running)["status"] == READY
    assert len(emulator.caption_assets(emulator.task(running)["entryId"])) == 1
    rec = store.by_kaltura_id(waiting)
    assert rec is not None and rec.state == TaskState.QUEUED and rec.lease_owner is None
    assert emulator.task(waiting)["status"] != PROCESSING

    again = run_daemon_once(cfg)
    assert again.returncode == 0, again.stderr[-3000:]
    assert emulator.task(waiting)["status"] == READY
    assert len(emulator.caption_assets(emulator.task(running)["entryId"])) == 1
    assert _events(store, running).count("decoding audio") == 1, "not run a second time"
    store.close()


def _scripted(delay_s: float) -> dict[str, Any]:
    return {"default": "scripted", "options": {"scripted": {"delay_s": delay_s}}}


def test_a_drain_that_runs_out_releases_the_task_and_the_restart_keeps_its_media(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0])
    workers = {"concurrency": 1, "shutdown_grace_s": 3, "release_s": 2}
    # The engine works for far longer than the drain lasts.
    cfg = write_config(tmp_path, emulator, vendor, workers=workers, processors=_scripted(300))
    store = TaskStore(f"sqlite:///{tmp_path / 'reach.sqlite3'}", migrate=True)
    code, output, _ = _sigterm_in_transcription(tmp_path, cfg, store, emulator, task_id)
    assert code == 0, output[-3000:]
    assert "drain time over: stopping and releasing 1 running tasks" in output
    rec = store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == TaskState.RUNNING
    assert rec.lease_owner is None, "the task must be released, not left leased"
    assert "released at shutdown" in _events(store, task_id)
    assert emulator.task(task_id)["status"] == PROCESSING  # still ours, nothing delivered
    assert _flavor_downloads(emulator) == 1

    again = run_daemon_once(write_config(tmp_path, emulator, vendor, processors=_scripted(0)))
    assert again.returncode == 0, again.stderr[-3000:]
    assert emulator.task(task_id)["status"] == READY
    assert len(emulator.caption_assets(emulator.task(task_id)["entryId"])) == 1
    events = _events(store, task_id)
    assert "resumed with the audio an earlier run decoded" in events
    assert events.count("downloading media") == events.count("decoding audio") == 1
    assert _flavor_downloads(emulator) == 1
    store.close()
