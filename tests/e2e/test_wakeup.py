"""Push pick-up: a poll that records tasks wakes idle workers at once, and a notification
that arrives while getJobs is in flight is not dropped. With a long polling interval these
are what make `POST /v1/notify` a sub-second pick-up instead of "at the next interval"."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.common.clock import SystemClock
from tests.support.daemon import (
    READY,
    Clip,
    add_speech_task,
    make_daemon,
    running,
    wait_for,
)

GET_JOBS = ("reach_entryvendortask", "getJobs")


def test_a_poll_wakes_a_worker_whose_empty_claim_raced_with_it(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor
) -> None:
    daemon = make_daemon(tmp_path, emulator, vendor, polling={"interval_s": 3600})
    try:
        # A worker read the generation, then its claim found nothing...
        seen = daemon._work_generation
        assert daemon.store.claim_next("probe", 60) is None
        # ...while a poll recorded a task and sent its wake-up before the worker slept.
        add_speech_task(emulator, vendor, None)
        assert daemon.poll() == 1
        # The worker must not sleep through that wake-up (it would wait a whole timeout).
        assert daemon._idle_wait(seen, timeout_s=60) is True
        assert daemon.store.claim_next("probe", 60) is not None
    finally:
        daemon.store.close()


def test_an_idle_wait_with_nothing_new_times_out(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor
) -> None:
    daemon = make_daemon(tmp_path, emulator, vendor, polling={"interval_s": 3600})
    try:
        assert daemon._idle_wait(daemon._work_generation, timeout_s=0.05) is False
    finally:
        daemon.store.close()


def test_a_notify_during_a_running_poll_polls_again(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor
) -> None:
    daemon = make_daemon(tmp_path, emulator, vendor, polling={"interval_s": 3600})
    with running(daemon):
        wait_for(lambda: GET_JOBS in emulator.calls, 30, "first poll")
        before = emulator.calls.count(GET_JOBS)
        asked = _get_jobs_requests(emulator)
        # The next getJobs answers slowly: the notification below lands while it runs,
        # which is what happens when tasks are created a moment apart.
        emulator.inject_fault(*GET_JOBS, kind="delay", delay_s=1.5)
        daemon.poll_now()
        wait_for(lambda: _get_jobs_requests(emulator) > asked, 10, "getJobs in flight")
        daemon.poll_now()  # its own run is skipped (max_instances=1)...
        # ...so the sweep in flight must go round once more.
        wait_for(lambda: emulator.calls.count(GET_JOBS) >= before + 2, 30, "second sweep")
        time.sleep(0.5)
        assert emulator.calls.count(GET_JOBS) == before + 2  # and only once more


def _get_jobs_requests(emulator: KalturaEmulator) -> int:
    """getJobs requests received, counted on arrival (before a delay fault holds them)."""
    with emulator.lock:
        return sum("getJobs" in r["actions"] for r in emulator.http_requests)


def test_a_pushed_poll_on_postgresql_does_not_wait_for_the_group_interval(
    pg_url: str, tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor
) -> None:
    daemon = make_daemon(
        tmp_path, emulator, vendor, database={"url": pg_url}, polling={"interval_s": 3600}
    )
    try:
        assert daemon.poll() == 0  # the group's poll for this interval
        task_id = add_speech_task(emulator, vendor, None)
        assert daemon.poll() == 0  # a scheduled poll waits for the interval...
        assert daemon.store.by_kaltura_id(task_id) is None
        daemon._poll_requested.set()  # ...what POST /v1/notify sets before it runs one
        assert daemon.poll() == 1
    finally:
        daemon.store.close()


class _TimerlessForCaller(SystemClock):
    """The system clock, except that the thread that made it waits for the event alone:
    a timer of that thread's never fires, so only a wake-up ends its waits."""

    def __init__(self) -> None:
        self._caller = threading.get_ident()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if threading.get_ident() == self._caller:
            return event.wait()
        return event.wait(timeout)


def test_run_once_ends_when_its_last_task_does_not_at_a_timer(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    """`run --once` looked every 0.2 s whether work was left, so it (and each benched run)
    ended up to 0.2 s after its last task; a finished task now wakes it."""
    task_id = add_speech_task(emulator, vendor, clips[0])
    done: list[BaseException | None] = []

    def once() -> None:
        daemon = make_daemon(
            tmp_path,
            emulator,
            vendor,
            clock=_TimerlessForCaller(),
            processors={"default": "scripted"},
        )
        try:
            daemon.run_once()
            done.append(None)
        except BaseException as exc:
            done.append(exc)
        finally:
            daemon.store.close()

    thread = threading.Thread(target=once, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert done == [None], "run_once still waited after its task ended"
    assert emulator.task(task_id)["status"] == READY
