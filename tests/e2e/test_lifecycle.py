"""Task lifecycle under the faults a vendor meets: key expiry, customer aborts, a flaky
Kaltura, lost answers, permanent errors. The real daemon (in-process, real threads) runs
against the emulator with real speech; nothing of ours is replaced."""

from __future__ import annotations

import time
from pathlib import Path

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.domain.states import TaskState
from tests.support.daemon import (
    ERROR,
    READY,
    Clip,
    add_speech_task,
    make_daemon,
    running,
    wait_for,
)


def test_access_key_is_extended_before_it_expires(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0], access_key_ttl_s=30)
    original_key = emulator.task(task_id)["accessKey"]
    # A margin longer than the key's life: the extension is due as soon as work starts,
    # whatever the timing (29.5 of 30 s depended on half a second passing first).
    daemon = make_daemon(tmp_path, emulator, vendor, workers={"access_key_margin_s": 60})
    daemon.run_once()
    task = emulator.task(task_id)
    assert task["status"] == READY, task.get("errDescription")
    assert ("reach_entryvendortask", "extendAccessKey") in emulator.calls
    assert task["accessKey"] != original_key
    rec = daemon.store.by_kaltura_id(task_id)
    assert rec is not None and rec.access_key == task["accessKey"]
    assert rec.access_key_expires_at and rec.access_key_expires_at > time.time() + 20


def test_transient_kaltura_failures_are_retried_until_delivered(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[1])
    # retries=2 in the config: three 500s exhaust one attempt's client-side retries.
    emulator.inject_fault("reach_entryvendortask", "updateJob", "http500", times=3)
    daemon = make_daemon(tmp_path, emulator, vendor)
    with running(daemon):
        wait_for(lambda: emulator.task(task_id)["status"] == READY, what="READY")
        wait_for(
            lambda: (
                (r := daemon.store.by_kaltura_id(task_id)) is not None
                and r.state == TaskState.DELIVERED
            )
        )
    rec = daemon.store.by_kaltura_id(task_id)
    assert rec is not None and rec.attempts == 1
    assert any("retry" in e.message for e in daemon.store.events(rec.id or 0))
    assert len(emulator.caption_assets(emulator.task(task_id)["entryId"])) == 1


def test_lost_answers_do_not_duplicate_deliverables(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """Kaltura did the work but the answer never arrived: a retry must not redo it."""
    task_id = add_speech_task(emulator, vendor, clips[2])
    # The caption multirequest and the transcript+READY multirequest both take effect
    # and lose their answers, as many times as the client retries within one attempt.
    emulator.inject_fault("caption_captionAsset", "setContent", "drop_after", times=3)
    emulator.inject_fault("attachment_attachmentAsset", "setContent", "drop_after", times=3)
    daemon = make_daemon(tmp_path, emulator, vendor)
    with running(daemon):
        wait_for(
            lambda: (
                (r := daemon.store.by_kaltura_id(task_id)) is not None
                and r.state in (TaskState.DELIVERED, TaskState.FAILED)
            ),
            what="the task to end",
        )
    task = emulator.task(task_id)
    assert task["status"] == READY, task.get("errDescription")
    captions = emulator.caption_assets(task["entryId"])
    assert len(captions) == 1 and captions[0]["content"]
    assert str(task["outputObjectId"]) == captions[0]["id"]
    attachments = emulator.attachment_assets(task["entryId"])
    assert sorted(a["filename"].rsplit(".", 1)[1] for a in attachments) == ["json", "txt"]


def test_permanent_problems_end_in_error_with_a_reason(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    french = add_speech_task(emulator, vendor, clips[0], source_language="French")
    good = add_speech_task(emulator, vendor, clips[1])
    daemon = make_daemon(tmp_path, emulator, vendor)
    daemon.run_once()
    task = emulator.task(french)
    assert task["status"] == ERROR
    assert "French" in task["errDescription"]
    assert emulator.task(good)["status"] == READY
    rec = daemon.store.by_kaltura_id(french)
    assert rec is not None and rec.state == TaskState.FAILED and rec.attempts == 0


def test_delivery_cut_off_part_way_resumes_without_duplicates(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """The upload multirequest fails part-way (transcripts attached, the caption refused by
    a passing Kaltura fault, so READY is not sent): what exists is kept and only the
    caption is sent again, in the same run, then READY."""
    task_id = add_speech_task(emulator, vendor, clips[0])
    emulator.inject_fault("caption_captionAsset", "add")  # INTERNAL_SERVERL_ERROR, once
    daemon = make_daemon(tmp_path, emulator, vendor, processors={"default": "scripted"})
    daemon.run_once()
    task = emulator.task(task_id)
    assert task["status"] == READY, task.get("errDescription")
    (caption,) = emulator.caption_assets(task["entryId"])
    assert caption["content"] and str(task["outputObjectId"]) == caption["id"]
    attachments = emulator.attachment_assets(task["entryId"])
    assert sorted(a["filename"].rsplit(".", 1)[1] for a in attachments) == ["json", "txt"]
    assert emulator.calls.count(("attachment_attachmentasset", "add")) == 2
    rec = daemon.store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == TaskState.DELIVERED and rec.attempts == 0
    assert rec.caption_asset_id == caption["id"]
