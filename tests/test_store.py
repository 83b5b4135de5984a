"""The task store on a real SQLite file: intake, leases, state machine, events."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from reach_vendor.states import IllegalTransition, Stage, TaskState
from reach_vendor.store import OfferedTask, TaskStore


def offered(
    task_id: int, version: int = 1, key: str = "key", eft: float | None = None
) -> OfferedTask:
    return OfferedTask(
        kaltura_task_id=task_id,
        partner_id=7,
        entry_id=f"0_{task_id}",
        version=version,
        access_key=f"{key}-{task_id}",
        access_key_expires_at=None,
        service_type=2,
        service_feature=1,
        turn_around_time=-1,
        expected_finish_time=eft,
    )


@pytest.fixture
def store(tmp_path: Path) -> TaskStore:
    return TaskStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")


def test_database_file_is_private(tmp_path: Path) -> None:
    TaskStore(f"sqlite:///{tmp_path / 'sub' / 'x.sqlite3'}")
    mode = stat.S_IMODE(os.stat(tmp_path / "sub" / "x.sqlite3").st_mode)
    assert mode == 0o600


def test_offered_tasks_are_recorded_once_and_take_fresh_keys(store: TaskStore) -> None:
    assert store.record_offered([offered(1), offered(2)]) == 2
    assert store.record_offered([offered(1, key="new")]) == 0
    rec = store.by_kaltura_id(1)
    assert rec is not None and rec.access_key == "new-1"
    assert len(store.all()) == 2


def test_a_sweep_larger_than_a_lookup_batch_with_a_task_listed_twice(store: TaskStore) -> None:
    # getJobs pages overlap when the backlog moves under the pager: task 3 shows up
    # twice in one sweep (in the same lookup batch, and once more in a later one), with a
    # key handed out in between.
    tasks = [offered(i) for i in range(1, 1201)]
    sweep = [*tasks[:10], offered(3, key="later"), *tasks[10:], offered(3, key="later")]
    assert store.record_offered(sweep) == 1200
    assert len(store.all()) == 1200
    rec = store.by_kaltura_id(3)
    assert rec is not None and rec.access_key == "later-3"
    assert [e.message for e in store.events(rec.id or 0)] == ["offered by getJobs"]
    assert store.record_offered(sweep) == 0


def test_delivered_task_is_not_reopened_unless_resubmitted(store: TaskStore) -> None:
    store.record_offered([offered(1)])
    rec = store.by_kaltura_id(1)
    assert rec is not None and rec.id is not None
    store.update(rec.id, state=TaskState.RUNNING)
    store.update(rec.id, state=TaskState.DELIVERED)
    store.record_offered([offered(1)])
    assert store.get(rec.id).state == "delivered"  # type: ignore[union-attr]
    store.record_offered([offered(1, version=2)])
    assert store.get(rec.id).state == "queued"  # type: ignore[union-attr]


def test_illegal_transition_is_refused(store: TaskStore) -> None:
    store.record_offered([offered(1)])
    rec = store.by_kaltura_id(1)
    assert rec is not None and rec.id is not None
    store.update(rec.id, state=TaskState.RUNNING)
    store.update(rec.id, state=TaskState.FAILED)
    with pytest.raises(IllegalTransition):
        store.update(rec.id, state=TaskState.RUNNING)


def test_claims_prefer_earliest_deadline_and_never_double_lease(store: TaskStore) -> None:
    store.record_offered([offered(i, eft=1000.0 - i) for i in range(1, 41)])
    first = store.claim_next("a", 60)
    assert first is not None and first.kaltura_task_id == 40
    claimed: list[int] = []
    lock = threading.Lock()

    def grab(owner: str) -> None:
        while (rec := store.claim_next(owner, 60)) is not None:
            with lock:
                claimed.append(rec.kaltura_task_id)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == list(range(1, 40))


def test_released_task_waits_for_its_retry_time(store: TaskStore) -> None:
    import time

    store.record_offered([offered(1)])
    rec = store.claim_next("a", 60)
    assert rec is not None and rec.id is not None
    store.release(rec.id, "a", retry_at=time.time() + 60, reason="later")
    assert store.claim_next("a", 60) is None
    assert [e.message for e in store.events(rec.id)] == ["offered by getJobs", "later"]


def test_expired_lease_is_taken_over(store: TaskStore) -> None:
    store.record_offered([offered(1)])
    assert store.claim_next("dead", -1) is not None
    again = store.claim_next("alive", 60)
    assert again is not None and again.lease_owner == "alive"


def test_entering_a_stage_renews_the_lease_and_logs_it_in_one_go(store: TaskStore) -> None:
    store.record_offered([offered(1)])
    rec = store.claim_next("me", 5)
    assert rec is not None and rec.id is not None and rec.lease_expires_at is not None
    entered = store.enter_stage(rec.id, "me", 600, Stage.DOWNLOAD, "downloading media")
    assert entered is not None
    assert entered.stage == Stage.DOWNLOAD.value and entered.access_key == rec.access_key
    assert entered.lease_expires_at is not None and entered.lease_expires_at > rec.lease_expires_at
    assert store.events(rec.id)[-1].message == "downloading media"


def test_a_stage_is_not_entered_on_a_lease_that_is_no_longer_ours(store: TaskStore) -> None:
    store.record_offered([offered(1)])
    rec = store.claim_next("me", 600)
    assert rec is not None and rec.id is not None
    events = len(store.events(rec.id))
    assert store.enter_stage(rec.id, "someone-else", 600, Stage.UPLOAD, "uploading") is None
    after = store.get(rec.id)
    assert after is not None and after.stage is None and after.lease_owner == "me"
    assert len(store.events(rec.id)) == events  # nothing written


def test_update_rejects_unknown_fields(store: TaskStore) -> None:
    store.record_offered([offered(1)])
    rec = store.by_kaltura_id(1)
    assert rec is not None and rec.id is not None
    with pytest.raises(AttributeError):
        store.update(rec.id, no_such_column=1)


def test_a_fresh_process_can_claim_before_any_orm_query(tmp_path: Path) -> None:
    """Records are built from rows without the ORM; a restarted daemon's first call may
    be a claim, before anything has configured the mappers (this once crashed the worker
    and left the task leased)."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    TaskStore(url).record_offered([offered(7)])
    script = (
        "import sys\n"
        "from reach_vendor.store import TaskStore\n"
        "rec = TaskStore(sys.argv[1]).claim_next('o', 60)\n"
        "print(rec.kaltura_task_id, rec.access_key, rec.state)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["7", "key-7", "queued"]


def test_reoffering_a_pending_task_unchanged_writes_nothing(tmp_path: Path) -> None:
    """Every poll offers every pending task again; only a fresh key is worth a write (a
    sweep that rewrote them all held their row locks to the end of it)."""
    store = TaskStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    store.record_offered([offered(1)])
    before = store.by_kaltura_id(1)
    assert before is not None
    assert store.record_offered([offered(1)]) == 0
    same = store.by_kaltura_id(1)
    assert same is not None and same.updated_at == before.updated_at
    store.record_offered([offered(1, key="fresh")])
    rekeyed = store.by_kaltura_id(1)
    assert rekeyed is not None and rekeyed.access_key == "fresh-1"
    assert rekeyed.updated_at > before.updated_at
