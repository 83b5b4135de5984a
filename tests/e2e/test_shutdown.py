"""SIGTERM to the real daemon process mid-transcription: it stops polling, releases the
task within the grace period, exits 0, and the next run delivers the task."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.domain.states import TaskState
from reach_vendor.store.tasks import TaskStore
from tests.support.daemon import (
    Clip,
    add_speech_task,
    long_clip,
    run_daemon_once,
    start_daemon,
    wait_for,
    write_config,
)

PROCESSING, READY = 3, 2
GRACE_S = 20.0


def test_sigterm_releases_in_flight_task_and_next_run_delivers_it(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, long_clip(clips, tmp_path, repeat=2))
    cfg = write_config(tmp_path, emulator, vendor, workers={"concurrency": 1})
    store = TaskStore(f"sqlite:///{tmp_path / 'reach.sqlite3'}", migrate=True)
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log_file:
        proc = start_daemon(cfg, log_file)
        try:
            wait_for(
                lambda: (r := store.by_kaltura_id(task_id)) is not None and r.stage == "transcribe",
                60,
                "transcription to start",
            )
            polls = emulator.calls.count(("reach_entryvendortask", "getJobs"))
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=GRACE_S)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    output = log_path.read_text()
    assert code == 0, output[-3000:]
    assert took < GRACE_S
    assert "received SIGTERM, stopping" in output
    # Stopped polling: at most a sweep that was already under way.
    assert emulator.calls.count(("reach_entryvendortask", "getJobs")) <= polls + 1
    rec = store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == TaskState.RUNNING
    assert rec.lease_owner is None, "the task must be released, not left leased"
    assert "released at shutdown" in [e.message for e in store.events(rec.id or 0)]
    assert emulator.task(task_id)["status"] == PROCESSING  # still ours, nothing delivered
    assert emulator.caption_assets(emulator.task(task_id)["entryId"]) == []

    again = run_daemon_once(cfg)
    assert again.returncode == 0, again.stderr[-3000:]
    assert emulator.task(task_id)["status"] == READY
    assert len(emulator.caption_assets(emulator.task(task_id)["entryId"])) == 1
    store.close()
