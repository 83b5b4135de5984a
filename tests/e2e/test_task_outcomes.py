"""What happens to a task under Kaltura's own rules: access keys that run out or die,
customer aborts and re-orders, Kaltura taking a task back, a lagging getJobs index,
pay-per-use items and "Auto Detect" languages. The real daemon (in-process threads)
against the emulator; the scripted processor (chosen through `processors.default`, as in
production) stands in for the speech engine so the test controls how long processing
takes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_devkit.emulator.wire import ApiError
from reach_vendor.domain.states import TaskState
from reach_vendor.worker.daemon import Daemon
from tests.support.daemon import ERROR, READY, Clip, add_speech_task, make_daemon, running, wait_for


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


def record_of(daemon: Daemon, task_id: int) -> Any:
    rec = daemon.store.by_kaltura_id(task_id)
    assert rec is not None, f"task {task_id} not in the store"
    return rec


def stage_of(daemon: Daemon, task_id: int) -> str | None:
    rec = daemon.store.by_kaltura_id(task_id)
    return rec.stage if rec else None


def state_of(daemon: Daemon, task_id: int) -> str | None:
    rec = daemon.store.by_kaltura_id(task_id)
    return rec.state if rec else None


def events_of(daemon: Daemon, task_id: int) -> list[str]:
    rec = record_of(daemon, task_id)
    return [e.message for e in daemon.store.events(rec.id)]


def extend_calls(emu: KalturaEmulator) -> list[dict[str, Any]]:
    return [c for c in emu.call_log if c["action"] == "extendAccessKey"]


def test_a_key_near_the_end_of_its_known_life_is_extended_by_the_vendor(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """A v2 key's expiry cannot be read: the daemon plans from Kaltura's key life
    (VendorCatalogItem::getKsExpiry) counted from the task's creation. A task that waited
    in the backlog for almost 7 days has a key with a minute left."""
    task_id = add_speech_task(emulator, vendor, clips[0], access_key_ttl_s=60)
    original = emulator.task(task_id)["accessKey"]
    assert str(original).startswith("djJ8")  # v2: "v2|..."
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=0)
    daemon.run_once()
    task = emulator.task(task_id)
    assert task["status"] == READY, task.get("errDescription")
    (call,) = extend_calls(emulator)
    assert call["session"] == "vendor"
    rec = record_of(daemon, task_id)
    assert rec.access_key == task["accessKey"] != original
    assert rec.access_key_expires_at > time.time() + 6 * 86400
    assert "access key replaced" in events_of(daemon, task_id)


def test_keys_that_run_out_during_a_long_transcription_are_extended(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0], access_key_ttl_s=4)
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=7, access_key_margin_s=2.5)
    daemon.run_once()
    task = emulator.task(task_id)
    assert task["status"] == READY, task.get("errDescription")
    assert len(extend_calls(emulator)) == 1  # by the keeper, during processing
    assert len(emulator.caption_assets(task["entryId"])) == 1


def test_no_call_is_made_with_the_key_that_ready_kills(
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    clips: list[Clip],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """READY kills the task's access key (kReachManager::handleEntryVendorTaskStatusChanged
    -> invalidateAccessKey). While READY's answer is lost and the call retried (over a
    second of backoff, past the keeper's interval), the keeper must not check the task with
    that key: a check would meet INVALID_KS and ask to extend a key of a finished task."""
    task_id = add_speech_task(emulator, vendor, clips[0])
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=1)
    # Two lost answers cost at least 0.5 + 1.0 s of backoff: more than the keeper's 1 s.
    daemon.gateway.retry_base_s = 1.0
    with running(daemon):
        wait_for(lambda: stage_of(daemon, task_id) == "transcribe", what="transcription")
        # READY takes effect each time; its answer is lost twice.
        emulator.inject_fault("reach_entryvendortask", "updateJob", "drop_after", times=2)
        wait_for(lambda: state_of(daemon, task_id) == TaskState.DELIVERED, what="delivery")
    assert emulator.task(task_id)["status"] == READY
    assert extend_calls(emulator) == []
    assert "access key rejected" not in caplog.text
    assert "keeper check failed" not in caplog.text


def test_a_dead_key_is_replaced_and_the_task_delivered(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0])
    key = emulator.task(task_id)["accessKey"]
    emulator.expire_access_key(task_id)
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=0)
    daemon.run_once()
    task = emulator.task(task_id)
    assert task["status"] == READY, task.get("errDescription")
    assert record_of(daemon, task_id).state == TaskState.DELIVERED
    assert all(key not in e for e in events_of(daemon, task_id))


def test_error_reaches_kaltura_through_the_vendor_session_when_the_key_cannot_be_renewed(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """Nothing is left PROCESSING at Kaltura without a report: the ERROR goes with the
    vendor's session, which does not need the dead key."""
    task_id = add_speech_task(emulator, vendor, clips[0])
    key = emulator.task(task_id)["accessKey"]
    emulator.expire_access_key(task_id)
    emulator.inject_fault(
        "reach_entryvendortask",
        "extendAccessKey",
        code="FAILED_EXTEND_ACCESS_KEY",
        message="Failed to extend access key",
        times=20,
    )
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=0)
    daemon.run_once()
    task = emulator.task(task_id)
    assert task["status"] == ERROR
    assert (
        "FAILED_EXTEND_ACCESS_KEY" in task["errDescription"] and key not in task["errDescription"]
    )
    assert record_of(daemon, task_id).state == TaskState.FAILED
    assert emulator.caption_assets(task["entryId"]) == []


def test_customer_abort_is_honoured_before_processing_and_refused_after(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """EntryVendorTaskService::isAbortAllowed: only PENDING (or moderation, scheduled)
    tasks can be aborted; an aborted task is invisible to the vendor."""
    queued = add_speech_task(emulator, vendor, clips[0])
    busy = add_speech_task(emulator, vendor, clips[1])
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=3, concurrency=1)
    daemon.poll()  # both recorded while PENDING
    assert emulator.abort_task(queued)
    with running(daemon):
        wait_for(lambda: stage_of(daemon, busy) == "transcribe", what="transcription")
        assert not emulator.abort_task(busy)  # PROCESSING: Kaltura refuses the abort
        wait_for(lambda: state_of(daemon, busy) == TaskState.DELIVERED, what="delivery")
        wait_for(lambda: state_of(daemon, queued) == TaskState.ABORTED, what="abort")
    assert emulator.task(busy)["status"] == READY
    assert emulator.caption_assets(emulator.task(queued)["entryId"]) == []
    assert any("ENTRY_VENDOR_TASK_NOT_FOUND" in e for e in events_of(daemon, queued))


def test_a_reorder_is_a_new_task_and_the_old_one_is_not_delivered(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    old = add_speech_task(emulator, vendor, clips[0])
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=0)
    daemon.poll()
    new = emulator.reorder_task(old)  # the old one was PENDING: cancelled by Kaltura
    assert new != old
    daemon.run_once()
    assert emulator.task(new)["status"] == READY
    assert record_of(daemon, old).state == TaskState.ABORTED
    (caption,) = emulator.caption_assets(emulator.task(new)["entryId"])
    assert str(emulator.task(new)["outputObjectId"]) == caption["id"]


def test_a_reorder_while_processing_is_refused_and_the_task_delivered(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0])
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=3)
    with running(daemon):
        wait_for(lambda: stage_of(daemon, task_id) == "transcribe", what="transcription")
        with pytest.raises(ApiError) as info:
            emulator.reorder_task(task_id)
        assert info.value.code == "ENTRY_VENDOR_TASK_DUPLICATION"
        wait_for(lambda: state_of(daemon, task_id) == TaskState.DELIVERED, what="delivery")
    assert emulator.task(task_id)["status"] == READY


def test_a_task_kaltura_takes_back_mid_processing_is_done_again_when_offered(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """`reset` returns a task to PENDING (EntryVendorTaskService::resetAction): the run
    stops without delivering, and getJobs offering it again starts it over."""
    task_id = add_speech_task(emulator, vendor, clips[0])
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=4)
    with running(daemon):
        wait_for(lambda: stage_of(daemon, task_id) == "transcribe", what="transcription")
        emulator.reset_task(task_id)
        wait_for(lambda: emulator.task(task_id)["status"] == READY, 60, "READY")
        wait_for(lambda: state_of(daemon, task_id) == TaskState.DELIVERED, what="delivered")
    assert len(emulator.caption_assets(emulator.task(task_id)["entryId"])) == 1
    events = events_of(daemon, task_id)
    assert any(e.startswith("aborted: Kaltura reports PENDING") for e in events), events
    assert any("offered again by Kaltura" in e for e in events), events


def test_a_lagging_index_offering_started_tasks_again_changes_nothing(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """getJobs reads a search index that lags the database: a task already PROCESSING or
    READY can be listed again. Each is still delivered once."""
    emulator.index_lag_s = 5.0
    ids = [add_speech_task(emulator, vendor, clips[i % len(clips)]) for i in range(4)]
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=0.5)
    with running(daemon):
        wait_for(lambda: all(emulator.task(t)["status"] == READY for t in ids), 60, "all READY")
        time.sleep(2.5)  # a few more polls inside the lag window
    for t in ids:
        assert len(emulator.caption_assets(emulator.task(t)["entryId"])) == 1
        assert record_of(daemon, t).state == TaskState.DELIVERED
    adds = [c for c in emulator.calls if c == ("caption_captionasset", "add")]
    assert len(adds) == len(ids)


def test_pay_per_use_items_report_the_units_used(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """kReachUtils::getPayPerUsePrice: READY without unitsUsed is refused; units are the
    media's milliseconds (the price functions' unit, kReachUtils::calcPricePerMinute)."""
    task_id = add_speech_task(emulator, vendor, clips[0], pay_per_use=True)
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=0)
    daemon.run_once()
    task = emulator.task(task_id)
    assert task["status"] == READY, task.get("errDescription")
    assert 1000 < int(task["unitsUsed"]) < 10_000


def test_auto_detect_language_without_a_detecting_engine_is_an_error_saying_so(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0], source_language="Auto Detect")
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=0)
    daemon.run_once()
    task = emulator.task(task_id)
    assert task["status"] == ERROR
    assert "Auto Detect" in task["errDescription"] and "detect" in task["errDescription"]


def test_expected_finish_time_is_kept_from_get_jobs(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """The reach_vendor profile trims expectedFinishTime off `get`: getJobs' value stays."""
    due = int(time.time()) + 3600
    task_id = add_speech_task(emulator, vendor, clips[0], expected_finish_time=due)
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=0)
    daemon.run_once()
    assert emulator.task(task_id)["status"] == READY
    assert record_of(daemon, task_id).expected_finish_time == due


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
    assert (copies / f"{task['entryId']}_{kept_task}.srt").read_bytes() == bytes(caption["content"])
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


@pytest.mark.parametrize(
    "switches",
    [
        {"access_key_can_list_captions": False, "entitlement": True, "shuffle_jobs": True},
        {"access_key_can_list_captions": True, "entitlement": False, "shuffle_jobs": False},
    ],
    ids=["strict", "lenient"],
)
def test_each_answer_to_an_open_question_delivers_every_task_once(
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    clips: list[Clip],
    switches: dict[str, bool],
) -> None:
    """Where kaltura/server leaves a question open (may an access key list caption
    assets? is entitlement enforced on the customer? in what order does getJobs list?)
    the emulator plays each answer; the daemon must deliver under both, with a lost
    upload answer thrown in."""
    for name, value in switches.items():
        setattr(emulator, name, value)
    ids = [add_speech_task(emulator, vendor, clip) for clip in clips[:3]]
    emulator.inject_fault("caption_captionAsset", "setContent", "drop_after")
    daemon = scripted_daemon(tmp_path, emulator, vendor, delay_s=0)
    daemon.run_once()
    for t in ids:
        task = emulator.task(t)
        assert task["status"] == READY, task.get("errDescription")
        (caption,) = emulator.caption_assets(task["entryId"])
        assert str(task["outputObjectId"]) == caption["id"]
        assert caption["label"] == "English (Auto Generated)"
    assert emulator.calls.count(("caption_captionasset", "add")) == len(ids)
