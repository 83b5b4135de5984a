"""Claims, leases, turns and the poll lock on real SQLite and real PostgreSQL.

Two `TaskStore` objects on one database stand for two replicas (each has its own engine
and connection pool, as separate processes would)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from reach_vendor.domain.offer import OfferedTask
from reach_vendor.domain.states import IllegalTransition, Stage, TaskState
from reach_vendor.store.tasks import TaskStore


def offered(task_id: int, partner: int = 7, eft: float | None = None) -> OfferedTask:
    return OfferedTask(
        kaltura_task_id=task_id,
        partner_id=partner,
        entry_id=f"0_{task_id}",
        version=1,
        access_key=f"key-{task_id}",
        access_key_expires_at=None,
        service_type=2,
        service_feature=1,
        turn_around_time=-1,
        expected_finish_time=eft,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def replicas(db_url: str) -> Iterator[tuple[TaskStore, TaskStore]]:
    a, b = TaskStore(db_url, migrate=True), TaskStore(db_url, migrate=True)
    yield a, b
    a.close()
    b.close()


def test_concurrent_replicas_never_lease_a_task_twice(
    replicas: tuple[TaskStore, TaskStore],
) -> None:
    a, b = replicas
    a.record_offered([offered(i, partner=i % 3, eft=5000.0 + i) for i in range(1, 61)])
    claimed: list[int] = []
    lock = threading.Lock()

    def grab(store: TaskStore, owner: str) -> None:
        while (rec := store.claim_next(owner, 60)) is not None:
            with lock:
                claimed.append(rec.kaltura_task_id)

    threads = [
        threading.Thread(target=grab, args=(store, f"{name}{i}"))
        for name, store in (("a", a), ("b", b))
        for i in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == list(range(1, 61))


def test_partners_take_turns_within_an_urgency_window(
    replicas: tuple[TaskStore, TaskStore],
) -> None:
    store, _ = replicas
    now = 1_000_000 * 3600.0
    # Partner 1 floods the queue with earlier deadlines; partner 2 has three tasks due a
    # little later in the same hour; partner 3 has one task due in an earlier hour.
    store.record_offered([offered(i, partner=1, eft=now + 60 + i) for i in range(1, 31)])
    store.record_offered([offered(100 + i, partner=2, eft=now + 600 + i) for i in range(3)])
    store.record_offered([offered(999, partner=3, eft=now - 1800)])
    order = []
    for _ in range(9):
        rec = store.claim_next("w", 60, fairness_window_s=3600)
        assert rec is not None
        order.append((rec.partner_id, rec.kaltura_task_id))
    assert order[0] == (3, 999)  # more urgent window first, whoever floods the queue
    assert [p for p, _ in order[1:7]] == [1, 2, 1, 2, 1, 2]  # then turns
    assert [t for p, t in order[1:] if p == 1] == [1, 2, 3, 4, 5]  # earliest deadline first
    assert [p for p, _ in order[7:]] == [1, 1]  # partner 2 is done; partner 1 goes on


def test_dead_replicas_lease_is_taken_over_after_expiry(
    replicas: tuple[TaskStore, TaskStore],
) -> None:
    a, b = replicas
    a.record_offered([offered(1)])
    first = a.claim_next("dead-replica", 0.5)
    assert first is not None and first.id is not None
    assert b.claim_next("alive", 60) is None  # still leased
    time.sleep(0.6)
    again = b.claim_next("alive", 60)
    assert again is not None and again.lease_owner == "alive"
    assert not a.renew_lease(first.id, "dead-replica", 60)  # the old owner knows it lost it


def test_heartbeat_keeps_every_lease_of_an_owner_alive(
    replicas: tuple[TaskStore, TaskStore],
) -> None:
    a, b = replicas
    a.record_offered([offered(1), offered(2), offered(3)])
    assert a.claim_next("r1/w0", 0.5) is not None  # leases are held by one worker each
    assert a.claim_next("r1/w1", 0.5) is not None
    assert a.heartbeat("r1", 60) == 2
    assert a.heartbeat("r", 60) == 0  # another replica's name that happens to be a prefix
    time.sleep(0.6)
    third = b.claim_next("r2", 60)
    assert third is not None and third.kaltura_task_id == 3
    assert b.claim_next("r2", 60) is None


def test_heartbeat_skips_rows_locked_by_others_instead_of_waiting(pg_url: str) -> None:
    """A heartbeat that waited on a locked row while holding others closed a deadlock cycle
    with the poller's sweep, and PostgreSQL aborted a worker's transaction to break it."""
    from sqlalchemy import text

    store = TaskStore(pg_url, migrate=True)
    try:
        store.record_offered([offered(1), offered(2)])
        first = store.claim_next("r1/w0", 60)
        second = store.claim_next("r1/w1", 60)
        assert first is not None and second is not None
        with store.engine.connect() as other, other.begin():
            other.execute(text("SELECT id FROM tasks WHERE id = :i FOR UPDATE"), {"i": first.id})
            renewed: list[int] = []
            beat = threading.Thread(target=lambda: renewed.append(store.heartbeat("r1", 60)))
            beat.start()
            beat.join(10)
            waited = beat.is_alive()
        beat.join(10)  # released by the end of `other`'s transaction if it was waiting
        assert not waited, "the heartbeat waited for a row another transaction had locked"
        assert renewed == [1]  # the unlocked lease only
        assert store.heartbeat("r1", 60) == 2
    finally:
        store.close()


def test_only_one_replica_holds_the_poll_lock(pg_url: str) -> None:
    a, b = TaskStore(pg_url, migrate=True), TaskStore(pg_url, migrate=True)
    try:
        with a.poll_lock() as a_got:
            assert a_got
            with b.poll_lock() as b_got:
                assert not b_got
        with b.poll_lock() as b_got:
            assert b_got  # released when a's block ended
    finally:
        a.close()
        b.close()


def test_replicas_together_poll_at_the_configured_rate(pg_url: str) -> None:
    a, b = TaskStore(pg_url, migrate=True), TaskStore(pg_url, migrate=True)
    try:
        with a.poll_lock(60) as a_got:
            assert a_got
        with b.poll_lock(60) as b_got:
            assert not b_got  # a polled a moment ago
        with b.poll_lock(0.2) as b_got:
            assert not b_got
        time.sleep(0.25)
        with b.poll_lock(0.2) as b_got:
            assert b_got
    finally:
        a.close()
        b.close()


def test_sqlite_poll_lock_is_always_granted(tmp_path: Path) -> None:
    store = TaskStore(f"sqlite:///{tmp_path / 'db.sqlite3'}", migrate=True)
    with store.poll_lock() as got:
        assert got


def test_a_worker_whose_lease_ran_out_cannot_go_on_beside_its_successor(
    replicas: tuple[TaskStore, TaskStore],
) -> None:
    """Two workers of one daemon: if the first one's lease runs out (a stalled heartbeat)
    and the second claims the task, the first must see it lost the task, although both
    belong to the same process."""
    a, _ = replicas
    a.record_offered([offered(1)])
    first = a.claim_next("host:1:abc/w0", 0.2)
    assert first is not None and first.id is not None
    time.sleep(0.3)
    second = a.claim_next("host:1:abc/w1", 60)
    assert second is not None and second.id == first.id
    assert not a.renew_lease(first.id, "host:1:abc/w0", 60)
    assert a.enter_stage(first.id, "host:1:abc/w0", 60, Stage.UPLOAD, "uploading") is None
    assert a.enter_stage(first.id, "host:1:abc/w1", 60, Stage.UPLOAD, "uploading") is not None


def test_many_workers_claim_and_finish_every_task_exactly_once(db_url: str) -> None:
    """Issue 13, item 7: a claim picked its candidate, then leased it by id checking only
    the lease; a task another worker had claimed and finished in between (lease released)
    was claimed again, and its worker then tripped over the state machine."""
    workers, total = 16, 600
    store = TaskStore(db_url, threads=workers, migrate=True)
    try:
        store.record_offered([offered(i, partner=i % 5) for i in range(1, total + 1)])
        claims: Counter[int] = Counter()
        errors: list[BaseException] = []
        lock = threading.Lock()
        deadline = time.monotonic() + 60

        def work(owner: str) -> None:
            while time.monotonic() < deadline:
                rec = store.claim_next(owner, 60)
                if rec is None:
                    # Every candidate may have been taken by others; done only when
                    # nothing is left open.
                    if store.runnable_count() == 0:
                        return
                    continue
                assert rec.id is not None
                with lock:
                    claims[rec.kaltura_task_id] += 1
                try:
                    store.enter_stage(rec.id, owner, 60, Stage.CLAIM, "claimed")
                    store.update(rec.id, state=TaskState.RUNNING)
                    store.update(
                        rec.id, state=TaskState.DELIVERED, message="done", release_lease=True
                    )
                except Exception as exc:  # noqa: BLE001 - reported below
                    with lock:
                        errors.append(exc)
                    store.release(rec.id, owner)

        threads = [threading.Thread(target=work, args=(f"r/w{i}",)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        twice = {task: n for task, n in claims.items() if n != 1}
        assert not twice, f"claimed more than once: {twice}"
        assert not [e for e in errors if isinstance(e, IllegalTransition)], errors[:3]
        assert not errors, errors[:3]
        assert sorted(claims) == list(range(1, total + 1))
        assert store.count_by_state() == {TaskState.DELIVERED.value: total}
    finally:
        store.close()
