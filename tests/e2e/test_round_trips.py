"""Kaltura round trips per delivered task, counted at the emulator: a change that adds a
request to the usual path of a task fails here (issue 7: at most 5 HTTP requests a task,
media download and the shared session + getJobs included)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.domain.states import TaskState
from tests.support.daemon import READY, Clip, add_speech_task, make_daemon

SHARED = ("session.", "apptoken.", "reach_entryvendortask.getJobs")


def test_a_delivered_task_costs_at_most_three_api_requests(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """Start (PROCESSING + get + media lookup + upload tokens), the upload, and READY on
    its own (Kaltura runs a multirequest's later parts on an empty reference, so READY
    cannot ride with the uploads); the download of the media is the only other request."""
    tasks = [add_speech_task(emulator, vendor, clip) for clip in clips[:3]]
    daemon = make_daemon(
        tmp_path, emulator, vendor, processors={"default": "scripted"}, workers={"concurrency": 1}
    )
    daemon.run_once()
    for task_id in tasks:
        assert emulator.task(task_id)["status"] == READY, emulator.task(task_id)
        rec = daemon.store.by_kaltura_id(task_id)
        assert rec is not None and rec.state == TaskState.DELIVERED
    with emulator.lock:
        requests = [r["actions"] for r in emulator.http_requests]
    by_kind = Counter(
        "shared" if a.startswith(SHARED) else "download" if a == "serveFlavor" else "api"
        for a in requests
    )
    assert by_kind["download"] == len(tasks)
    assert by_kind["api"] <= 3 * len(tasks), Counter(requests)
    # Everything, the session and getJobs shared by the tasks included.
    assert len(requests) <= 5 * len(tasks), Counter(requests)
