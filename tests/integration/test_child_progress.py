"""Issue 15, item 2: an engine in a child process reports its progress to the parent
(throttled), and a job that has to wait for a free child says so, so the task can show it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reach_vendor.common import metrics
from reach_vendor.engines.base import ProcessingCancelled, ProcessingRequest, process_detached
from reach_vendor.engines.local.pocketsphinx import PocketSphinxProcessor
from reach_vendor.worker.child_processes import ChildPool
from reach_vendor.worker.media import decode_to_pcm
from tests.support.daemon import Clip, long_clip, wait_for

WAITING = "reach_vendor_tasks_waiting_for_child"


def _hold(gate: str) -> str:
    """Runs in a child: keep the child busy until the test opens the gate."""
    deadline = time.monotonic() + 60
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the gate was never opened")
        time.sleep(0.02)
    return "done"


def _chatty(steps: int, progress: Callable[[float], None] | None = None) -> str:
    """Runs in a child: reports progress far more often than anyone needs."""
    assert progress is not None
    for i in range(1, steps + 1):
        progress(i / steps)
    return "done"


def _waiting_now() -> float:
    return metrics.REGISTRY.get_sample_value(WAITING) or 0.0


def test_progress_of_an_engine_in_a_child_reaches_the_parent(
    tmp_path: Path, clips: list[Clip]
) -> None:
    pcm = tmp_path / "audio.pcm"
    duration = decode_to_pcm(long_clip(clips, tmp_path, repeat=2).path, pcm)
    request = ProcessingRequest(pcm, duration, "English")
    seen: list[float] = []
    threads: set[int] = set()

    def progress(fraction: float) -> None:
        seen.append(fraction)
        threads.add(threading.get_ident())

    pool = ChildPool(1)
    try:
        transcript = pool.run(
            "pocketsphinx engine",
            process_detached,
            (PocketSphinxProcessor(), request.detached()),
            threading.Event(),
            progress=progress,
        )
    finally:
        pool.close()
    assert transcript.words
    assert seen and seen == sorted(seen) and all(0 < f <= 1 for f in seen), seen
    assert threads == {threading.get_ident()}, "called on the thread that ran the job"


def test_progress_from_a_child_is_throttled_but_not_held_back() -> None:
    seen: list[float] = []
    pool = ChildPool(1)
    try:
        started = time.monotonic()
        done = pool.run("x", _chatty, (200_000,), threading.Event(), progress=seen.append)
        elapsed = time.monotonic() - started
    finally:
        pool.close()
    assert done == "done"
    # One message per percent at most (and one a second for slower movers), not 200 000.
    assert 50 <= len(seen) <= 100 + elapsed + 1, (len(seen), elapsed)
    assert seen == sorted(seen) and seen[-1] >= 0.99


def test_a_job_that_waits_for_a_free_child_says_so(tmp_path: Path) -> None:
    pool = ChildPool(1)
    gate = tmp_path / "gate"
    never = threading.Event()
    events: list[bool] = []
    results: list[Any] = []
    try:
        # A free child: no waiting reported.
        assert pool.run("x", _hold, (str(tmp_path),), never, waiting=events.append) == "done"
        assert events == []

        holder = threading.Thread(
            target=lambda: results.append(pool.run("x", _hold, (str(gate),), never))
        )
        holder.start()
        wait_for(lambda: bool(pool.pids(busy=True)), 30, "the first job in its child")
        waiter = threading.Thread(
            target=lambda: results.append(
                pool.run("x", _hold, (str(gate),), never, waiting=events.append)
            )
        )
        waiter.start()
        wait_for(lambda: events == [True], 30, "the second job to report waiting")
        assert _waiting_now() == 1
        gate.touch()
        holder.join(30)
        waiter.join(30)
        assert results == ["done", "done"]
        assert events == [True, False], "told once it has a child"
        assert _waiting_now() == 0
    finally:
        gate.touch()
        pool.close()


def test_a_job_stopped_while_it_waits_leaves_no_waiting_count(tmp_path: Path) -> None:
    pool = ChildPool(1)
    gate = tmp_path / "gate"
    never, stop = threading.Event(), threading.Event()
    events: list[bool] = []
    try:
        holder = threading.Thread(target=pool.run, args=("x", _hold, (str(gate),), never))
        holder.start()
        wait_for(lambda: bool(pool.pids(busy=True)), 30, "the first job in its child")

        def stop_when_waiting(now_waiting: bool) -> None:
            events.append(now_waiting)
            stop.set()

        with pytest.raises(ProcessingCancelled):
            pool.run("x", _hold, (str(gate),), stop, waiting=stop_when_waiting)
        assert events == [True] and _waiting_now() == 0
    finally:
        gate.touch()
        holder.join(30)
        pool.close()
