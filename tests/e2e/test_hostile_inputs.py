"""Bad input from Kaltura costs one task at most, never the daemon: malformed getJobs
entries and values that would name a path. The real daemon against the emulator."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.common import metrics
from reach_vendor.common.safe_paths import inside
from reach_vendor.domain.states import TaskState
from reach_vendor.engines.base import Transcript, Word
from reach_vendor.worker.daemon import Daemon
from reach_vendor.worker.pipeline import Pipeline
from tests.support.daemon import PROCESSING, READY, Clip, add_speech_task, make_daemon
from tests.support.fake_gateway import task_spec


def test_a_malformed_get_jobs_entry_is_skipped_and_the_rest_recorded(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """An id beyond any column (Kaltura's ids are bigints; 2^70 is not one) made every poll
    fail for every task; an entry without entryId or accessKey cannot be served."""
    good = [add_speech_task(emulator, vendor, clip) for clip in clips[:2]]
    huge, no_key = (add_speech_task(emulator, vendor, clip) for clip in clips[2:4])
    with emulator.world.lock:
        emulator.world.tasks[huge]["id"] = 1 << 70
        emulator.world.tasks[no_key]["accessKey"] = ""
    before = metrics.OFFERS_SKIPPED.labels(reason="unreadable")._value.get()
    daemon = make_daemon(tmp_path, emulator, vendor, processors={"default": "scripted"})
    assert daemon.poll() == 2
    for task_id in good:
        assert daemon.store.by_kaltura_id(task_id) is not None
    assert metrics.OFFERS_SKIPPED.labels(reason="unreadable")._value.get() == before + 2


def _scripted_daemon(
    tmp_path: Path, emu: KalturaEmulator, vendor: Vendor, work: Path, **sections: Any
) -> Daemon:
    return make_daemon(
        tmp_path,
        emu,
        vendor,
        processors={"default": "scripted"},
        storage={"work_dir": str(work)},
        **sections,
    )


def test_a_flavor_extension_never_names_a_path(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """A flavor fileExt of "/../../x" made the media file land outside the task's
    directory, overwriting a file there and deleting it after decoding."""
    work = tmp_path / "work"
    sentinel = work / "tasks" / "x"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("not the daemon's")
    task_id = add_speech_task(emulator, vendor, clips[0])
    entry_id = emulator.task(task_id)["entryId"]
    with emulator.world.lock:
        for flavor in emulator.world.flavors.values():
            if flavor["entryId"] == entry_id:
                flavor["fileExt"] = "/../../x"
    daemon = _scripted_daemon(tmp_path, emulator, vendor, work)
    daemon.run_once()
    assert sentinel.read_text() == "not the daemon's"
    assert emulator.task(task_id)["status"] == READY
    rec = daemon.store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == TaskState.DELIVERED


def test_an_entry_id_never_names_a_path() -> None:
    """The deliverables' file names (kept on disk with `storage.keep_deliverables`, and
    shown in Kaltura) come from our own ids; an entryId of "../../.." wrote outside."""
    spec = task_spec(task_id=7, entry_id="../../..", label_addition="")
    transcript = Transcript((Word("hello", 0.0, 0.5),), "English", "test", 0.9)
    files, _ = Pipeline._deliverables(spec, transcript, 0.0)
    for deliverable in files.values():
        assert "/" not in deliverable.filename and ".." not in deliverable.filename
        assert inside(Path("/srv/out"), deliverable.filename).parent == Path("/srv/out")
    with pytest.raises(ValueError):
        inside(Path("/srv/out"), "../x")


def test_a_full_disk_pauses_intake_and_never_fails_the_customers_task(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """ENOSPC (and running out of descriptors) is this machine's fault: it used to count as
    the task's attempts until the customer got "internal error: OSError: [Errno 28]". The
    media file's place on disk is made /dev/full, whose writes fail with ENOSPC."""
    if not Path("/dev/full").exists():
        pytest.skip("needs /dev/full")
    work = tmp_path / "work"
    task_id = add_speech_task(emulator, vendor, clips[0])
    task_dir = work / "tasks" / str(task_id)
    task_dir.mkdir(parents=True)
    (task_dir / "media.mp3.part").symlink_to("/dev/full")
    daemon = _scripted_daemon(tmp_path, emulator, vendor, work, workers={"max_attempts": 1})
    faults_before = metrics.LOCAL_FAULTS.labels(kind="disk full")._value.get()
    daemon.run_once()
    rec = daemon.store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == TaskState.RUNNING and rec.attempts == 0, rec
    assert rec.next_attempt_at > time.time() + 30  # back after the pause, not failed
    assert emulator.task(task_id)["status"] == PROCESSING  # no ERROR for the customer
    assert daemon.intake_paused() and daemon.local_fault == "disk full"
    assert metrics.LOCAL_FAULTS.labels(kind="disk full")._value.get() == faults_before + 1

    # Space again: the task is taken up and delivered.
    shutil.rmtree(task_dir, ignore_errors=True)  # (the run cleaned it up already)
    daemon = _scripted_daemon(tmp_path, emulator, vendor, work)
    daemon.store.update(rec.id, next_attempt_at=0.0)
    daemon.run_once()
    assert emulator.task(task_id)["status"] == READY
