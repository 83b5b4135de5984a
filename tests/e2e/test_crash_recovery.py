"""SIGKILL the real daemon process at each stage of a task, start it again, and the task
still ends READY with exactly one caption asset.

Each stage is held open deterministically, not by timing luck: an emulator fault stalls
the call the daemon is making in that stage (or the scripted processor works for 30 s),
and the test kills only once the store says the task is in that stage."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_devkit.harness import proc_stat, process_tree
from reach_vendor.store.tasks import TaskStore
from tests.support.daemon import (
    READY,
    Clip,
    add_speech_task,
    run_daemon_once,
    secrets_seen,
    start_daemon,
    wait_for,
    write_config,
)

STALL_S = 30.0


def _stall_claim(emu: KalturaEmulator) -> None:
    emu.inject_fault("reach_entryvendortask", "updateJob", "delay", delay_s=STALL_S)


def _stall_download(emu: KalturaEmulator) -> None:
    emu.inject_fault("serveFlavor", "download", "delay", delay_s=STALL_S)


def _stall_upload(emu: KalturaEmulator) -> None:
    # The upload multirequest, held before Kaltura runs it: transcribed, nothing delivered.
    emu.inject_fault("uploadToken", "upload", "delay", delay_s=STALL_S)


def _stall_finish(emu: KalturaEmulator) -> None:
    # The second updateJob is READY (the first set PROCESSING): held before it runs.
    emu.inject_fault("reach_entryvendortask", "updateJob", "delay", delay_s=0.01)
    emu.inject_fault("reach_entryvendortask", "updateJob", "delay", delay_s=STALL_S)


def _download_started(emu: KalturaEmulator) -> bool:
    with emu.lock:
        return any("serveFlavor" in r["path"] for r in emu.http_requests)


# stage -> (how to hold the daemon there, scripted processing time, extra condition)
STAGES: dict[str, tuple[Callable[[KalturaEmulator], None] | None, float, Any]] = {
    "claim": (_stall_claim, 0.0, None),
    "download": (_stall_download, 0.0, _download_started),
    "transcribe": (None, STALL_S, None),
    "upload": (_stall_upload, 0.0, None),
    "finish": (_stall_finish, 0.0, None),
}


RESUMED = {
    "transcribe": "resumed with the audio an earlier run decoded",
    "upload": "resumed with the transcript an earlier run made",
}


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for whoever inherited it to reap it."""
    fields = proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def _config(tmp_path: Path, emu: KalturaEmulator, vendor: Vendor, delay_s: float) -> Path:
    return write_config(
        tmp_path,
        emu,
        vendor,
        processors={"default": "scripted", "options": {"scripted": {"delay_s": delay_s}}},
        polling={"interval_s": 0.5},
        workers={"concurrency": 1, "lease_s": 2, "retry_base_s": 0.5},
        logging={"format": "json", "level": "INFO"},
    )


@pytest.mark.parametrize("stage", list(STAGES))
def test_sigkill_at_each_stage_then_restart_delivers_exactly_once(
    stage: str,
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    clips: list[Clip],
) -> None:
    stall, delay_s, extra = STAGES[stage]
    task_id = add_speech_task(emulator, vendor, clips[0])
    entry_id = emulator.task(task_id)["entryId"]
    if stall is not None:
        stall(emulator)
    cfg = _config(tmp_path, emulator, vendor, delay_s)
    store = TaskStore(f"sqlite:///{tmp_path / 'reach.sqlite3'}", migrate=True)

    def at_stage() -> bool:
        rec = store.by_kaltura_id(task_id)
        if rec is None or rec.stage != stage:
            return False
        return extra is None or bool(extra(emulator))

    log_path = tmp_path / "first.log"
    with log_path.open("w") as log_file:
        proc = start_daemon(cfg, log_file)
        try:
            wait_for(at_stage, timeout=60, what=f"stage {stage}")
            children = process_tree(proc.pid) - {proc.pid}
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert emulator.task(task_id)["status"] != READY
    # The media decoder and its fork server go with the daemon (their pipes close).
    assert children or stage in ("claim", "download")
    wait_for(lambda: not any(map(_running, children)), 10, "the daemon's children to exit")

    second = run_daemon_once(_config(tmp_path, emulator, vendor, 0.0), timeout=90)
    assert second.returncode == 0, second.stderr[-3000:]

    task = emulator.task(task_id)
    assert task["status"] == READY, (task.get("errDescription"), second.stderr[-3000:])
    captions = emulator.caption_assets(entry_id)
    assert len(captions) == 1 and captions[0]["content"]
    assert str(task["outputObjectId"]) == captions[0]["id"]
    attachments = emulator.attachment_assets(entry_id)
    assert sorted(a["filename"].rsplit(".", 1)[1] for a in attachments) == ["json", "txt"]
    assert emulator.calls.count(("caption_captionasset", "add")) == 1

    rec = store.by_kaltura_id(task_id)
    assert rec is not None and rec.id is not None and rec.state == "delivered"
    owners = {e.message for e in store.events(rec.id) if e.message.startswith("claimed by")}
    assert len(owners) == 2  # the killed process, then the restarted one took over
    # What the killed run had made is not made again.
    kept = RESUMED.get(stage)
    assert kept is None or kept in [e.message for e in store.events(rec.id)]
    output = log_path.read_text() + second.stdout + second.stderr
    for secret in secrets_seen(emulator, vendor):
        assert secret not in output
    store.close()


def _requests_with(emu: KalturaEmulator, action: str) -> int:
    """Requests that carried `action`, counted on arrival (before any delay)."""
    with emu.lock:
        return sum(action in r["actions"] for r in emu.http_requests)


def _kill_when(
    tmp_path: Path, emu: KalturaEmulator, vendor: Vendor, condition: Callable[[], bool], what: str
) -> tuple[Path, TaskStore]:
    cfg = _config(tmp_path, emu, vendor, 0.0)
    store = TaskStore(f"sqlite:///{tmp_path / 'reach.sqlite3'}", migrate=True)
    with (tmp_path / "first.log").open("w") as log_file:
        proc = start_daemon(cfg, log_file)
        try:
            wait_for(condition, timeout=60, what=what)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    return cfg, store


def _delivered_once(emu: KalturaEmulator, store: TaskStore, task_id: int) -> None:
    entry_id = emu.task(task_id)["entryId"]
    (caption,) = emu.caption_assets(entry_id)
    rec = store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == "delivered", rec
    assert rec.caption_asset_id == caption["id"] == str(emu.task(task_id)["outputObjectId"])
    assert len(emu.attachment_assets(entry_id)) == 2
    assert emu.calls.count(("caption_captionasset", "add")) == 1
    # Kaltura added the label addition once, on READY.
    assert caption["label"] == "English (Auto Generated)"


@pytest.mark.parametrize("listing", [True, False], ids=["captions-listable", "listing-refused"])
def test_sigkill_after_kaltura_took_the_upload_delivers_once(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip], listing: bool
) -> None:
    """The upload took effect but its answer was lost, and the process is killed while
    it looks up what took effect. The restart finds the assets from the store's upload
    tokens (whether or not the key may list caption assets) and sets READY once."""
    emulator.access_key_can_list_captions = listing
    task_id = add_speech_task(emulator, vendor, clips[0])
    emulator.inject_fault("caption_captionAsset", "setContent", "drop_after")
    emulator.inject_fault("uploadToken", "get", "delay", delay_s=STALL_S)
    cfg, store = _kill_when(
        tmp_path,
        emulator,
        vendor,
        lambda: _requests_with(emulator, "uploadtoken.get") >= 1,
        "the look-up after the lost answer",
    )
    rec = store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == "running" and rec.caption_asset_id is None
    assert emulator.task(task_id)["status"] != READY
    second = run_daemon_once(cfg, timeout=90)
    assert second.returncode == 0, second.stderr[-3000:]
    _delivered_once(emulator, store, task_id)
    store.close()


def test_sigkill_after_ready_landed_ends_delivered_without_the_dead_key(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """READY took effect (and killed the access key) but its answer was lost, and the
    process is killed while it sends READY again. The restart needs only the vendor
    session: READY again is no change at Kaltura, and the task ends DELIVERED, not failed."""
    task_id = add_speech_task(emulator, vendor, clips[0])
    emulator.inject_fault("reach_entryvendortask", "updateJob", "delay", delay_s=0.01)
    emulator.inject_fault("reach_entryvendortask", "updateJob", "drop_after")
    emulator.inject_fault("reach_entryvendortask", "updateJob", "delay", delay_s=STALL_S)
    cfg, store = _kill_when(
        tmp_path,
        emulator,
        vendor,
        lambda: (
            emulator.task(task_id)["status"] == READY
            and _requests_with(emulator, "reach_entryvendortask.updateJob") >= 3
        ),
        "READY to land and be sent again",
    )
    rec = store.by_kaltura_id(task_id)
    assert rec is not None and rec.state == "running" and rec.stage == "finish"
    second = run_daemon_once(cfg, timeout=90)
    assert second.returncode == 0, second.stderr[-3000:]
    _delivered_once(emulator, store, task_id)
    store.close()
