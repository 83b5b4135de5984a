"""Automatic retention (`database.retention_days`): the daemon deletes delivered and failed
tasks finished longer ago, with their history, once a day across replicas, in batches;
on a real SQLite file and a real PostgreSQL database, with an injected clock."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from reach_vendor.domain.states import TaskState
from reach_vendor.engines.local.scripted import ScriptedProcessor
from reach_vendor.store.models import EVENTS, TASKS
from reach_vendor.store.tasks import TaskStore
from reach_vendor.worker.config import Settings
from reach_vendor.worker.daemon import Daemon
from tests.support.daemon import wait_for
from tests.support.fake_clock import FakeClock
from tests.support.fake_gateway import FakeGateway
from tests.support.settings import offline_settings
from tests.support.store import offered

DAY = 86400.0


def settings(tmp_path: Path, **database: Any) -> Settings:
    return offline_settings(tmp_path, database=database)


@pytest.fixture
def store(any_store: TaskStore) -> TaskStore:
    return any_store


def finish(store: TaskStore, task_id: int, state: TaskState, days_ago: float) -> None:
    """A task offered, then finished `days_ago` (with the history the offer wrote)."""
    store.record_offered([offered(task_id)])
    with store.engine.begin() as conn:
        conn.execute(
            update(TASKS)
            .where(TASKS.c.kaltura_task_id == task_id)
            .values(state=state.value, finished_at=time.time() - days_ago * DAY)
        )


def left(store: TaskStore) -> tuple[list[int], int]:
    """Kaltura ids of the tasks left, and how many history lines have lost their task."""
    with store.engine.connect() as conn:
        orphans = conn.execute(
            select(func.count()).where(EVENTS.c.task_id.not_in(select(TASKS.c.id)))
        ).scalar()
    return sorted(r.kaltura_task_id for r in store.all()), int(orphans or 0)


def daemon(tmp_path: Path, store: TaskStore, clock: FakeClock, **database: Any) -> Daemon:
    return Daemon(
        settings(tmp_path, url=str(store.engine.url), **database),
        store=store,
        gateway=FakeGateway(now=clock.now()),  # type: ignore[arg-type]
        processor=ScriptedProcessor(),
        clock=clock,
    )


def test_old_finished_tasks_go_in_batches_once_a_day(
    tmp_path: Path, store: TaskStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reach_vendor")
    for task_id in range(1, 6):
        finish(store, task_id, TaskState.DELIVERED, days_ago=100)
    finish(store, 6, TaskState.FAILED, days_ago=95)
    finish(store, 7, TaskState.DELIVERED, days_ago=10)  # within the 90 days
    finish(store, 8, TaskState.ABORTED, days_ago=100)  # Kaltura may offer it again
    store.record_offered([offered(9)])  # open
    clock = FakeClock()
    d = daemon(tmp_path, store, clock)
    assert d.settings.database.retention_days == 90, "the default"

    assert d.purge_expired(batch=2) == 6
    assert left(store) == ([7, 8, 9], 0)
    (line,) = [r for r in caplog.records if r.getMessage().startswith("retention:")]
    assert line.levelno == logging.INFO
    assert line.getMessage().startswith("retention: deleted 6 delivered or failed tasks")

    # The day's turn is taken, whichever replica asks next.
    finish(store, 10, TaskState.DELIVERED, days_ago=200)
    other = daemon(tmp_path, store, clock)
    assert other.purge_expired() == 0 and d.purge_expired() == 0
    assert left(store)[0] == [7, 8, 9, 10]

    clock.advance(DAY)
    assert other.purge_expired() == 1
    assert left(store) == ([7, 8, 9], 0)


def test_retention_zero_keeps_everything(tmp_path: Path, store: TaskStore) -> None:
    finish(store, 1, TaskState.DELIVERED, days_ago=1000)
    d = daemon(tmp_path, store, FakeClock(), retention_days=0)
    assert d.purge_expired() == 0
    assert left(store)[0] == [1]


def test_a_batch_is_its_own_transaction(store: TaskStore) -> None:
    for task_id in range(1, 6):
        finish(store, task_id, TaskState.DELIVERED, days_ago=100)
    cutoff = time.time() - 90 * DAY
    assert [store.purge_finished(cutoff, limit=2) for _ in range(4)] == [2, 2, 1, 0]
    assert left(store) == ([], 0)


def test_the_running_daemon_purges_at_start(tmp_path: Path) -> None:
    store = TaskStore(f"sqlite:///{tmp_path / 'db.sqlite3'}", migrate=True)
    finish(store, 1, TaskState.DELIVERED, days_ago=100)
    finish(store, 2, TaskState.DELIVERED, days_ago=1)
    d = daemon(tmp_path, store, FakeClock())
    thread = threading.Thread(target=d.run_forever, name="daemon-under-test")
    thread.start()
    try:
        wait_for(lambda: left(store)[0] == [2], 30, "the retention purge")
    finally:
        d.stop()
        d.stop()
        thread.join(timeout=30)
        store.close()
    assert not thread.is_alive()
