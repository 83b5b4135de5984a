"""The status API's drain on a running daemon, over real HTTP: POST /v1/drain (admin token)
stops it taking tasks while the running one finishes; GET /v1/drain tells a deploy script
when nothing runs any more, so the restart cuts no work short."""

from __future__ import annotations

import json
from pathlib import Path

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.domain.states import TaskState
from reach_vendor.ops import status_api
from tests.support.daemon import READY, Clip, add_speech_task, make_daemon, running, wait_for
from tests.support.ops import get_json, http, status_api_with_admin


def test_a_drained_daemon_finishes_its_task_and_takes_no_other(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    daemon = make_daemon(
        tmp_path,
        emulator,
        vendor,
        workers={"concurrency": 1},
        polling={"interval_s": 0.5},
        processors={"default": "scripted", "options": {"scripted": {"delay_s": 2}}},
    )
    cfg, read, admin = status_api_with_admin()
    store = daemon.store
    with running(daemon), status_api.serve(cfg, store, drain=daemon.drain) as port:
        url = f"http://127.0.0.1:{port}/v1/drain"
        # Workers look for tasks all the while: only a task claimed counts as running.
        assert get_json(url, read) == (200, {"draining": False, "running": 0})
        first = add_speech_task(emulator, vendor, clips[0])
        wait_for(
            lambda: (r := store.by_kaltura_id(first)) is not None and r.stage == "transcribe",
            30,
            "transcription to start",
        )
        assert http("POST", url, read)[0] == 403, "reading tokens may not drain"
        status, _headers, body = http("POST", url, admin)
        assert (status, json.loads(body)) == (200, {"draining": True, "running": 1})

        second = add_speech_task(emulator, vendor, clips[1])
        wait_for(lambda: store.by_kaltura_id(second) is not None, 30, "the next poll")
        wait_for(lambda: get_json(url, read)[1]["running"] == 0, 30, "the drain to end")
        assert get_json(url, read) == (200, {"draining": True, "running": 0})
        assert emulator.task(first)["status"] == READY
        rec = store.by_kaltura_id(second)
        assert rec is not None and rec.state == TaskState.QUEUED and rec.lease_owner is None
