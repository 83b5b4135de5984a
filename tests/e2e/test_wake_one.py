"""Idle workers are not all woken for one new task (issue 17): a poll that records one task
costs a handful of claim queries, not one per idle worker, however many workers wait."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from tests.support.daemon import add_speech_task, make_daemon, wait_for

WORKERS = 8


def test_one_new_task_wakes_one_idle_worker_not_all(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor
) -> None:
    daemon = make_daemon(
        tmp_path, emulator, vendor, workers={"concurrency": WORKERS}, polling={"interval_s": 3600}
    )
    daemon.idle_check_s = 3600.0  # wake-ups only: no timed checks during the test
    claims: list[str] = []

    # Counted where the store sends them: the claim's candidate query (the `earlier` alias
    # is its per-partner fairness subquery).
    @event.listens_for(daemon.store.engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "earlier" in statement:
            claims.append(threading.current_thread().name)

    threads = daemon._start_workers()
    try:
        wait_for(lambda: daemon.idle_workers() == WORKERS, 30, "every worker idle")
        assert len(claims) == WORKERS  # each found nothing once, then slept
        del claims[:]
        task = add_speech_task(emulator, vendor, None)  # its download fails: a short run
        assert daemon.poll() == 1

        def ended() -> bool:
            rec = daemon.store.by_kaltura_id(task)
            return rec is not None and rec.claimed_at is not None and rec.lease_owner is None

        wait_for(ended, 60, "the task run")
        wait_for(lambda: daemon.idle_workers() == WORKERS, 30, "every worker idle again")
        # One claim takes the task and wakes one more worker in case more are waiting (it
        # finds nothing); the worker that ran it looks once more when done. Before: every
        # idle worker claimed at once (WORKERS + 1).
        assert len(claims) == 3, claims
    finally:
        daemon.stop()
        daemon.stop()
        daemon._stop_workers(threads)
        daemon.pipeline.children.close()
        daemon.store.close()
