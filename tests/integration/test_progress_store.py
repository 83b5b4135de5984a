"""Issue 15, item 2: the store keeps a task's progress for the lease holder only, and a new
run of the task starts without the last run's (real SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reach_vendor.domain.states import Stage, TaskState
from reach_vendor.store.tasks import TaskStore
from tests.support.ops import offered


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TaskStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    store = TaskStore(url, migrate=True)
    request.addfinalizer(store.close)
    return store


def test_progress_is_the_lease_holders_and_a_new_run_starts_without_it(store: TaskStore) -> None:
    store.record_offered([offered(1)])
    rec = store.claim_next("worker-a", 600)
    assert rec is not None and rec.id is not None and rec.progress is None
    store.enter_stage(rec.id, "worker-a", 600, Stage.CLAIM, "claimed")
    store.update(rec.id, state=TaskState.RUNNING, message="PROCESSING in Kaltura")
    store.enter_stage(rec.id, "worker-a", 600, Stage.TRANSCRIBE, "transcribing")

    assert store.set_progress(rec.id, "worker-a", 0.4)
    assert not store.set_progress(rec.id, "worker-b", 0.9), "not the lease holder"
    assert store.get(rec.id).progress == 0.4  # type: ignore[union-attr]
    # Later stages of the same run keep it: the bar stands where the audio got to.
    store.enter_stage(rec.id, "worker-a", 600, Stage.WAITING_FOR_DECODER, "waiting")
    store.enter_stage(rec.id, "worker-a", 600, Stage.UPLOAD, "uploading")
    assert store.get(rec.id).progress == 0.4  # type: ignore[union-attr]
    assert [e.message for e in store.events(rec.id)][-2:] == ["waiting", "uploading"]

    # Released (a retry later), then claimed again: a new run, nothing transcribed yet.
    store.release(rec.id, "worker-a", retry_at=0.0, reason="retry")
    assert not store.set_progress(rec.id, "worker-a", 0.5), "released: no longer ours"
    again = store.claim_next("worker-b", 600)
    assert again is not None and again.id == rec.id
    entered = store.enter_stage(rec.id, "worker-b", 600, Stage.CLAIM, "claimed again")
    assert entered is not None and entered.progress is None
