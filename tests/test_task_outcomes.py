"""What happens to a task when its access key cannot be extended or is rejected, and when
the customer re-submits it while we work: the real daemon (in-process threads) against the
emulator. The scripted processor (chosen through `processors.default`, as in production)
stands in for the speech engine so the test controls how long processing takes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from reach_vendor.daemon import Daemon
from reach_vendor.emulator import KalturaEmulator
from reach_vendor.states import TaskState
from tests.conftest import Clip, Vendor, add_speech_task, wait_for
from tests.test_lifecycle import ABORTED, READY, make_daemon, running


def scripted_daemon(
    tmp_path: Path, emu: KalturaEmulator, vendor: Vendor, delay_s: float, **workers: Any
) -> Daemon:
    return make_daemon(
        tmp_path,
        emu,
        vendor,
        processors={"default": "scripted", "options": {"scripted": {"delay_s": delay_s}}},
        workers={"lease_s": 3, **workers},  # keeper checks Kaltura every second
    )


def stage_of(daemon: Daemon, task_id: int) -> str | None:
    rec = daemon.store.by_kaltura_id(task_id)
    return rec.stage if rec else None


def state_of(daemon: Daemon, task_id: int) -> str | None:
    rec = daemon.store.by_kaltura_id(task_id)
    return rec.state if rec else None


def events_of(daemon: Daemon, task_id: int) -> list[str]:
    rec = daemon.store.by_kaltura_id(task_id)
    assert rec is not None and rec.id is not None
    return [e.message for e in daemon.store.events(rec.id)]


def test_refused_extension_keeps_the_key_while_the_task_is_wanted(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0], access_key_ttl_s=60)
    emulator.inject_fault(
        "reach_entryvendortask",
        "extendAccessKey",
        code="CANNOT_EXTEND_ACCESS_KEY",
        message="Extending accessKey for non processing task is not allowed",
    )
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=2.5, access_key_margin_s=59.5)
    daemon.run_once()
    task = emulator.task(task_id)
    assert task["status"] == READY, task.get("errDescription")
    events = events_of(daemon, task_id)
    assert sum("access key not extended" in e for e in events) == 1, events
    # The keeper tried again on a later tick and got a fresh key.
    assert "access key extended" in events
    rec = daemon.store.by_kaltura_id(task_id)
    assert rec is not None and rec.access_key == task["accessKey"]


def test_refused_extension_of_an_aborted_task_stops_it(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0], access_key_ttl_s=60)
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=30, access_key_margin_s=3600)
    with running(daemon):
        wait_for(lambda: stage_of(daemon, task_id) == "transcribe", what="transcription")
        emulator.abort_task(task_id)  # the next extension is refused: not PROCESSING
        # Well before the 30 s of processing end: the keeper stopped it.
        wait_for(lambda: state_of(daemon, task_id) == TaskState.ABORTED, 10, "abort")
    assert ("reach_entryvendortask", "extendAccessKey") in emulator.calls
    assert emulator.task(task_id)["status"] == ABORTED
    assert emulator.caption_assets(emulator.task(task_id)["entryId"]) == []
    assert any("Kaltura reports ABORTED" in e for e in events_of(daemon, task_id))


def test_expired_access_key_ends_the_task_with_a_clear_reason(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0], access_key_ttl_s=1)
    key = emulator.task(task_id)["accessKey"]
    time.sleep(1.2)  # the key's own expiry, not a race: it is dead before the daemon starts
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=0)
    daemon.run_once()
    rec = daemon.store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == TaskState.FAILED
    assert rec.error is None or key not in rec.error
    last = events_of(daemon, task_id)[-1]
    assert last.startswith("access key expired at ") and "INVALID_KS" in last
    assert key not in last
    assert emulator.task(task_id)["status"] != READY
    assert emulator.caption_assets(emulator.task(task_id)["entryId"]) == []
    assert rec.error is not None and rec.error.startswith("access key expired at ")

    # Kaltura still offers it with the same dead key: nothing to gain, nothing is retried.
    calls_before = len(emulator.calls)
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=0)  # a later `run --once`
    daemon.run_once()
    rec = daemon.store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == TaskState.FAILED
    task_calls = [c for c in emulator.calls[calls_before:] if c[0] == "reach_entryvendortask"]
    assert task_calls == [("reach_entryvendortask", "getJobs")]

    # A fresh key (Kaltura support reset the task): the task is taken up again, delivered.
    fresh = emulator.reissue_access_key(task_id, ttl_s=3600)
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=0)
    daemon.run_once()
    rec = daemon.store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == TaskState.DELIVERED, events_of(daemon, task_id)
    assert emulator.task(task_id)["status"] == READY
    assert len(emulator.caption_assets(emulator.task(task_id)["entryId"])) == 1
    assert "offered again with a fresh access key; starting over" in events_of(daemon, task_id)
    assert all(fresh not in m and key not in m for m in events_of(daemon, task_id))


def test_resubmission_mid_processing_delivers_only_the_new_version(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0])
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=3)
    with running(daemon):
        wait_for(lambda: stage_of(daemon, task_id) == "transcribe", what="transcription")
        emulator.resubmit_task(task_id)
        wait_for(lambda: emulator.task(task_id)["status"] == READY, what="READY")
        wait_for(lambda: state_of(daemon, task_id) == TaskState.DELIVERED, what="delivered")
    task = emulator.task(task_id)
    assert task["version"] == 2
    captions = emulator.caption_assets(task["entryId"])
    assert len(captions) == 1 and str(task["outputObjectId"]) == captions[0]["id"]
    adds = [c for c in emulator.calls if c == ("caption_captionasset", "add")]
    assert len(adds) == 1  # the first run stopped before delivering anything
    events = events_of(daemon, task_id)
    assert any(e.startswith("aborted: Kaltura reports PENDING") for e in events), events
    assert "re-submitted as version 2" in events


def test_version_change_while_processing_stops_without_delivering(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0])
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=30)
    with running(daemon):
        wait_for(lambda: stage_of(daemon, task_id) == "transcribe", what="transcription")
        with emulator.world.lock:  # Kaltura bumps the version, status stays PROCESSING
            emulator.world.tasks[task_id]["version"] += 1
        wait_for(lambda: state_of(daemon, task_id) == TaskState.ABORTED, 10, "stop")
    assert emulator.caption_assets(emulator.task(task_id)["entryId"]) == []
    assert any("version 1 -> 2" in e for e in events_of(daemon, task_id))


def test_copies_of_deliverables_only_when_asked(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """`storage.keep_deliverables` keeps exactly what Kaltura got; by default nothing is
    written (nothing would ever clean it up)."""
    kept_task = add_speech_task(emulator, vendor, clips[0])
    (tmp_path / "kept").mkdir()
    (tmp_path / "plain").mkdir()
    daemon = make_daemon(
        tmp_path / "kept",
        emulator,
        vendor,
        processors={"default": "scripted"},
        storage={"work_dir": str(tmp_path / "kept" / "work"), "keep_deliverables": True},
    )
    daemon.run_once()
    task = emulator.task(kept_task)
    assert task["status"] == READY, task.get("errDescription")
    copies = tmp_path / "kept" / "work" / "delivered" / str(kept_task)
    (caption,) = emulator.caption_assets(task["entryId"])
    assert (copies / f"{task['entryId']}_{kept_task}.srt").read_bytes() == bytes(
        caption["content"]
    )
    assert {p.suffix for p in copies.iterdir()} == {".srt", ".txt", ".json"}

    plain_task = add_speech_task(emulator, vendor, clips[1])
    daemon = make_daemon(
        tmp_path / "plain",
        emulator,
        vendor,
        processors={"default": "scripted"},
        storage={"work_dir": str(tmp_path / "plain" / "work")},
    )
    daemon.run_once()
    assert emulator.task(plain_task)["status"] == READY
    assert not (tmp_path / "plain" / "work" / "delivered").exists()
