"""The task store on a real SQLite file: intake, leases, state machine, events."""

from __future__ import annotations

import os
import stat
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from reach_vendor.domain.states import IllegalTransition, Stage, TaskState
from reach_vendor.store.queries import find_tasks
from reach_vendor.store.tasks import TaskStore
from tests.support.store import offered


@pytest.fixture
def store(tmp_path: Path) -> TaskStore:
    return TaskStore(f"sqlite:///{tmp_path / 'db.sqlite3'}", migrate=True)




def test_database_file_is_private(tmp_path: Path) -> None:
    TaskStore(f"sqlite:///{tmp_path / 'sub' / 'x.sqlite3'}", migrate=True)
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
    TaskStore(url, migrate=True).record_offered([offered(7)])
    script = (
        "import sys\n"
        "from reach_vendor.store.tasks import TaskStore\n"
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
    store = TaskStore(f"sqlite:///{tmp_path / 'db.sqlite3'}", migrate=True)
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


BIGINT_MAX = (1 << 63) - 1


def test_ids_beyond_32_bits_are_stored_and_one_beyond_64_bits_costs_only_its_task(
    any_store: TaskStore,
) -> None:
    """Issue 13, item 1: Kaltura's ids are bigints; an id past 2^31 overflowed INTEGER on
    PostgreSQL, and one that no column can hold failed the whole poll on either database."""
    big = 1 << 40
    batch = [
        offered(1),
        offered(big),
        offered(1 << 63),  # beyond BIGINT: skipped
        replace(offered(2), partner_id=BIGINT_MAX, version=1 << 31, turn_around_time=-(1 << 63)),
        replace(offered(3), service_type=1 << 32, service_feature=1 << 62),
        replace(offered(4), expected_finish_time=1 << 70),  # an integer for a float column
        offered(5),
    ]
    assert any_store.record_offered(batch) == 6
    assert sorted(r.kaltura_task_id for r in any_store.all()) == [1, 2, 3, 4, 5, big]
    assert any_store.by_kaltura_id(1 << 63) is None
    rec = any_store.by_kaltura_id(big)
    assert rec is not None and rec.access_key == f"key-{big}"
    two = any_store.by_kaltura_id(2)
    assert two is not None
    assert (two.partner_id, two.version, two.turn_around_time) == (
        BIGINT_MAX,
        1 << 31,
        -(1 << 63),
    )
    three = any_store.by_kaltura_id(3)
    assert three is not None and (three.service_type, three.service_feature) == (1 << 32, 1 << 62)
    four = any_store.by_kaltura_id(4)
    assert four is not None and four.expected_finish_time == float(1 << 70)
    # A task with a big id goes through a claim and the state machine like any other.
    claimed = [any_store.claim_next("w", 60) for _ in range(6)]
    assert sorted(c.kaltura_task_id for c in claimed if c is not None) == [1, 2, 3, 4, 5, big]
    assert rec.id is not None
    any_store.update(rec.id, state=TaskState.RUNNING)
    # The next poll offers the same backlog again: nothing new, nothing fails.
    assert any_store.record_offered(batch) == 0


def test_offers_that_cannot_be_stored_are_skipped_and_reported(any_store: TaskStore) -> None:
    bad = [
        offered(1 << 63),
        offered(-(1 << 63) - 1),
        replace(offered(10), partner_id=None),
        replace(offered(11), version=None),
        replace(offered(12), entry_id=None),
        replace(offered(13), access_key=""),
        replace(offered(14), service_type=1 << 64),
        replace(offered(15), turn_around_time=-(1 << 64)),
        replace(offered(16), partner_id="7"),
        replace(offered(17), entry_id="0_\x00x"),  # PostgreSQL text cannot hold NUL
        replace(offered(18), expected_finish_time=10**400),  # no float holds it
        replace(offered(19), access_key_expires_at=float("nan")),
        replace(offered(20), version=True),
    ]
    good = [offered(1), offered(1 << 40)]
    batch = [good[0], *bad, good[1]]
    result = any_store.intake(batch)
    assert result.new == 2
    assert [s.position for s in result.skipped] == list(range(1, len(bad) + 1))
    assert [s.kaltura_task_id for s in result.skipped] == [None, None, *range(10, 21)]
    reasons = [s.reason for s in result.skipped]
    assert reasons[0] == "kaltura_task_id is outside the 64-bit integer range"
    assert reasons[2] == "partner_id is missing"
    assert reasons[4] == "entry_id is missing"
    assert all(str(1 << 63) not in r for r in reasons)  # no values, so nothing secret
    assert sorted(r.kaltura_task_id for r in any_store.all()) == [1, 1 << 40]
    # The store refused them all before writing, so the good ones are intact and usable.
    again = any_store.intake(batch)
    assert again.new == 0 and len(again.skipped) == len(bad)


def test_ops_lookups_of_an_id_no_column_holds_find_no_task(any_store: TaskStore) -> None:
    """Issue 13 leftover: such an id overflowed binding the query on SQLite; it cannot be
    stored, so the answer is simply "no task"."""
    any_store.record_offered([offered(1), offered(BIGINT_MAX)])
    for task_id in (1 << 63, 1 << 64, 10**30, -(1 << 63) - 1):
        assert find_tasks(any_store, kaltura_task_id=task_id) == []
        assert any_store.by_kaltura_id(task_id) is None
    (rec,) = find_tasks(any_store, kaltura_task_id=BIGINT_MAX)
    assert rec.kaltura_task_id == BIGINT_MAX


def test_operator_writes_go_through_the_state_machine_and_spare_leased_tasks(
    store: TaskStore,
) -> None:
    store.record_offered([offered(1), offered(2), offered(3)])
    one, two, three = (store.by_kaltura_id(i) for i in (1, 2, 3))
    assert one and one.id and two and two.id and three and three.id
    later = store.update(one.id, next_attempt_at=time.time() + 900, error="timeout")
    assert store.claim_next("w", 60) is not None  # task 2 or 3; 1 waits for its retry
    ran = store.make_runnable_now(one.id, "now")
    assert ran is not None and ran.next_attempt_at == 0.0 and ran.state == later.state
    # The other two: one is leased (refused, nothing written), the other is not.
    leased = next(r for r in (two, three) if (store.get(r.id or 0) or r).lease_owner)
    free = three if leased is two else two
    assert leased.id and free.id
    events = len(store.events(leased.id))
    assert store.cancel(leased.id, "cancelled") is None
    assert len(store.events(leased.id)) == events
    cancelled = store.cancel(free.id, "cancelled", error="by the vendor")
    assert cancelled is not None and cancelled.state == TaskState.ABORTED
    assert cancelled.error == "by the vendor" and cancelled.finished_at is not None
    assert store.cancel(free.id, "again") is None  # no longer open
    # Reopening is only out of a final state, and only from the state the caller saw.
    with pytest.raises(IllegalTransition):
        store.reopen(one.id, TaskState.QUEUED, TaskState.QUEUED, "x")
    with pytest.raises(IllegalTransition):
        store.reopen(free.id, TaskState.ABORTED, TaskState.DELIVERED, "x")
    assert store.reopen(free.id, TaskState.FAILED, TaskState.QUEUED, "x") is None
    back = store.reopen(free.id, TaskState.ABORTED, TaskState.RUNNING, "retried")
    assert back is not None and back.state == TaskState.RUNNING
    assert (back.error, back.finished_at, back.attempts, back.stage) == (None, None, 0, None)
    assert [e.message for e in store.events(free.id)][-2:] == ["cancelled", "retried"]
