"""Claims, leases, heartbeats and the poll lock: how the store hands work out.

Work is handed out through leases (owner + expiry, kept alive by heartbeats) rather than
in-memory queues, so several worker threads, and several replicas on PostgreSQL, share
one table safely. `TaskStore` inherits these methods; its records come out of here too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Float, bindparam, cast, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import configure_mappers
from sqlmodel import func, or_, select

from reach_vendor.common.secretbox import SecretBox
from reach_vendor.store.models import (
    INSERT_EVENT,
    OPEN_STATES,
    TASKS,
    TaskRecord,
    record_from_row,
)

POLL_LOCK_KEY = 0x7265_6163_6876
"""PostgreSQL advisory lock key ("reachv") held by the replica that is polling getJobs."""

# Rows of `poll_state` (id -> one time each), so no migration was needed for them. Row 1 is
# the poll lock's "a replica polled at" (written before getJobs is even sent).
POLL_OK_ROW = 2
"""When a getJobs sweep last succeeded (and its tasks were recorded)."""
POLL_REFUSED_ROW = 3
"""When Kaltura last refused getJobs (an API error: app token, permission)."""
POLL_UNREACHABLE_ROW = 4
"""When getJobs last failed for want of an answer (network, timeouts, 5xx)."""
PURGE_ROW = 5
"""When the daily retention purge was last started (`claim_daily`)."""

_UPSERT_TIME = text(
    "INSERT INTO poll_state (id, last_poll_at) VALUES (:row, :at) "
    "ON CONFLICT (id) DO UPDATE SET last_poll_at = excluded.last_poll_at"
)
# Both SQLite (3.35+) and PostgreSQL: the row comes back only if this call took the turn.
_CLAIM_TURN = text(
    "INSERT INTO poll_state (id, last_poll_at) VALUES (:row, :at) "
    "ON CONFLICT (id) DO UPDATE SET last_poll_at = excluded.last_poll_at "
    "WHERE poll_state.last_poll_at <= :due RETURNING id"
)


@dataclass(frozen=True)
class PollRecord:
    """What the store knows of getJobs across all replicas (`read_poll_record`)."""

    ok_at: float | None
    """The last sweep that succeeded, None if none did (or none was recorded yet)."""
    failed_at: float | None
    """The last sweep that failed, None if none did."""
    failure: str | None
    """"refused" (Kaltura answered with an error) or "unreachable"; never an error's text,
    which stays in the journal."""

    @property
    def last_failed(self) -> bool:
        """Whether the latest recorded sweep is a failure."""
        return self.failed_at is not None and (self.ok_at is None or self.failed_at > self.ok_at)


def read_poll_record(conn: Any) -> PollRecord:
    """The poll record through an open connection (`health` reads it without a store)."""
    rows = dict(
        conn.execute(
            text("SELECT id, last_poll_at FROM poll_state WHERE id IN (:ok, :refused, :down)"),
            {"ok": POLL_OK_ROW, "refused": POLL_REFUSED_ROW, "down": POLL_UNREACHABLE_ROW},
        ).all()
    )
    failures = [
        (float(rows[row]), kind)
        for row, kind in ((POLL_REFUSED_ROW, "refused"), (POLL_UNREACHABLE_ROW, "unreachable"))
        if row in rows
    ]
    failed_at, failure = max(failures) if failures else (None, None)
    ok = rows.get(POLL_OK_ROW)
    return PollRecord(
        ok_at=float(ok) if ok is not None else None, failed_at=failed_at, failure=failure
    )


def _is_runnable(now: Any) -> tuple[Any, ...]:
    """Open, due, and not leased (or its lease ran out): what a claim may take."""
    return (
        TASKS.c.state.in_(OPEN_STATES),
        TASKS.c.next_attempt_at <= now,
        or_(TASKS.c.lease_owner.is_(None), TASKS.c.lease_expires_at < now),
    )


# It re-checks everything that made the task a candidate, not just the lease: between the
# candidate SELECT and this UPDATE another worker may have claimed, finished and released it.
_CLAIM = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("task_id"), *_is_runnable(bindparam("now", type_=Float)))
    .values(
        lease_owner=bindparam("owner"),
        lease_expires_at=bindparam("expires"),
        claimed_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(*TASKS.c)
)
_RENEW = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("task_id"), TASKS.c.lease_owner == bindparam("owner"))
    .values(lease_expires_at=bindparam("expires"))
)
_RELEASE = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("task_id"), TASKS.c.lease_owner == bindparam("owner"))
    .values(lease_owner=None, lease_expires_at=None, updated_at=bindparam("now"))
    .returning(TASKS.c.state, TASKS.c.stage)
)
_RELEASE_UNTIL = _RELEASE.values(next_attempt_at=bindparam("retry_at"))


@dataclass(frozen=True)
class ClaimStatements:
    candidates: Any
    """SQLite: ids of the next few runnable tasks, in claim order."""
    lock_next: Any
    """PostgreSQL: the id of the next runnable task nobody has locked, locked."""


def claim_statements(is_postgres: bool) -> ClaimStatements:
    """Most urgent first, and among tasks of similar urgency, partners take turns.

    Urgency is the `expectedFinishTime` cut into windows of `:window` seconds (tasks
    without one come last). Within a window the partner whose last claim is oldest goes
    first, so a partner with a large backlog cannot starve one with a few tasks. Inside one
    partner's turn: earliest deadline, then oldest task. Under concurrent claims on
    PostgreSQL the turns are approximate.

    A partner's last claim is one step down the `(partner_id, claimed_at)` index, never an
    aggregate over the whole (ever-growing) table: per waiting partner on PostgreSQL, per
    runnable task on SQLite, whose planner does better with a correlated subquery.
    """
    now: Any = bindparam("now", type_=Float)
    eft = func.coalesce(TASKS.c.expected_finish_time, 1e12)
    window: Any = bindparam("window", type_=Float)
    # SQLite: CAST truncates, which is floor for these positive values.
    urgency = func.floor(eft / window) if is_postgres else cast(eft / window, BigInteger)
    is_runnable = _is_runnable(now)
    earlier = TASKS.alias("earlier")
    if is_postgres:
        waiting = select(TASKS.c.partner_id).where(*is_runnable).distinct().subquery("waiting")
        per_partner = (
            select(func.max(earlier.c.claimed_at))
            .where(earlier.c.partner_id == waiting.c.partner_id)
            .scalar_subquery()
        )
        served = select(waiting.c.partner_id, per_partner.label("last")).subquery("served")
        candidates = select(TASKS.c.id).outerjoin(served, served.c.partner_id == TASKS.c.partner_id)
        last_claimed: Any = served.c.last
    else:
        candidates = select(TASKS.c.id)
        last_claimed = (
            select(func.max(earlier.c.claimed_at))
            .where(earlier.c.partner_id == TASKS.c.partner_id)
            .scalar_subquery()
        )
    ordered = candidates.where(*is_runnable).order_by(
        urgency, func.coalesce(last_claimed, 0.0), eft, TASKS.c.id
    )
    return ClaimStatements(
        candidates=ordered.limit(8),
        lock_next=ordered.limit(1).with_for_update(skip_locked=True, of=TASKS),
    )


class Leases:
    """The engine, the key box, and the lease half of `TaskStore`."""

    def __init__(self, engine: Engine, box: SecretBox) -> None:
        self.engine = engine
        self.box = box
        self.is_postgres = engine.dialect.name == "postgresql"
        self._claims = claim_statements(self.is_postgres)
        # `record_from_row` bypasses the ORM, which configures the mappers on its first
        # query; a fresh daemon may claim before any.
        configure_mappers()

    def _reveal(self, rec: TaskRecord | None) -> TaskRecord | None:
        """Put the plaintext key on a record that has left its session."""
        if rec is not None:
            rec.access_key = self.box.open(rec.access_key)
        return rec

    def _from_row(self, row: Any) -> TaskRecord | None:
        """A record from a Core row (`RETURNING` every column), key revealed."""
        return None if row is None else self._reveal(record_from_row(row))

    def claim_next(
        self, owner: str, lease_s: float, *, fairness_window_s: float = 3600.0
    ) -> TaskRecord | None:
        """Lease the next runnable task to `owner` (see `claim_statements`), or None.

        PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED` picks and locks one row, so replicas
        claiming at once get different tasks without waiting on each other. SQLite: the
        candidates are read, then each taken with an UPDATE conditional on it still being
        runnable, so two racing workers cannot both win.
        """
        now = time.time()
        params = {
            "now": now,
            "window": max(1.0, fairness_window_s),
            "owner": owner,
            "expires": now + lease_s,
        }
        if self.is_postgres:
            with self.engine.begin() as conn:
                task_id = conn.execute(self._claims.lock_next, params).scalar()
                if task_id is None:
                    return None
                row = conn.execute(_CLAIM, {**params, "task_id": task_id}).first()
            return self._from_row(row)
        for _ in range(5):
            with self.engine.begin() as conn:
                candidates = conn.execute(self._claims.candidates, params).scalars().all()
            if not candidates:
                return None
            for task_id in candidates:
                with self.engine.begin() as conn:
                    row = conn.execute(_CLAIM, {**params, "task_id": task_id}).first()
                if row is not None:
                    return self._from_row(row)
        return None

    def renew_lease(self, task_id: int, owner: str, lease_s: float) -> bool:
        """Extend one lease; False means it is no longer ours (expired and taken over)."""
        with self.engine.begin() as conn:
            result = conn.execute(
                _RENEW, {"task_id": task_id, "owner": owner, "expires": time.time() + lease_s}
            )
            return bool(result.rowcount == 1)

    def heartbeat(self, owner: str, lease_s: float) -> int:
        """Extend every lease `owner` holds, itself or through its workers (leases named
        `owner/<worker>`), in one statement; returns how many.

        When a replica dies its heartbeats stop, its leases run out, and other replicas
        take the tasks over.
        """
        ours = or_(
            TASKS.c.lease_owner == owner,
            TASKS.c.lease_owner.startswith(owner + "/", autoescape=True),
        )
        if self.is_postgres:
            # Rows locked right now are skipped, not waited for: waiting while holding other
            # rows closes a deadlock cycle with the poller's sweep. The next beat renews them.
            ours = TASKS.c.id.in_(select(TASKS.c.id).where(ours).with_for_update(skip_locked=True))
        with self.engine.begin() as conn:
            result = conn.execute(
                update(TASKS).where(ours).values(lease_expires_at=time.time() + lease_s)
            )
            return int(result.rowcount)

    def release(
        self, task_id: int, owner: str, *, retry_at: float | None = None, reason: str = ""
    ) -> None:
        """Give the task back, optionally not to be picked up again before `retry_at`."""
        now = time.time()
        params: dict[str, Any] = {"task_id": task_id, "owner": owner, "now": now}
        with self.engine.begin() as conn:
            if retry_at is None:
                row = conn.execute(_RELEASE, params).first()
            else:
                row = conn.execute(_RELEASE_UNTIL, {**params, "retry_at": retry_at}).first()
            if row is not None and reason:
                conn.execute(
                    INSERT_EVENT,
                    {
                        "task_id": task_id,
                        "now": now,
                        "state": row.state,
                        "stage": row.stage,
                        "message": reason,
                    },
                )

    def record_poll(self, at: float, failure: str | None = None) -> None:
        """Record a getJobs sweep that succeeded (`failure` None) or failed ("refused" or
        "unreachable"), on SQLite and PostgreSQL alike, for `health` and the status API."""
        row = {None: POLL_OK_ROW, "refused": POLL_REFUSED_ROW}.get(failure, POLL_UNREACHABLE_ROW)
        with self.engine.begin() as conn:
            conn.execute(_UPSERT_TIME, {"row": row, "at": at})

    def poll_record(self) -> PollRecord:
        with self.engine.connect() as conn:
            return read_poll_record(conn)

    def claim_daily(self, row: int, at: float, interval_s: float) -> bool:
        """Whether this call takes a turn that comes every `interval_s` (the retention
        purge): one atomic statement, so of replicas asking at once one wins, and no
        lock or transaction is held while the turn's work runs."""
        with self.engine.begin() as conn:
            won = conn.execute(_CLAIM_TURN, {"row": row, "at": at, "due": at - interval_s})
            return won.first() is not None

    @contextmanager
    def poll_lock(self, min_interval_s: float = 0.0) -> Iterator[bool]:
        """Whether this replica may poll getJobs now; held for the `with` block.

        PostgreSQL: a transaction-scoped advisory lock, tried without waiting, so exactly
        one replica polls at a time (a crashed poller's lock goes with its connection); and
        no while another polled less than `min_interval_s` ago (`poll_state`), so the group
        polls at the configured rate. SQLite (one host, one daemon): always yes.
        """
        if not self.is_postgres:
            yield True
            return
        with self.engine.connect() as conn, conn.begin():
            got = bool(
                conn.execute(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": POLL_LOCK_KEY}
                ).scalar()
            )
            last = conn.execute(text("SELECT last_poll_at FROM poll_state WHERE id = 1")).scalar()
            now = time.time()
            if got and last is not None and now - float(last) < min_interval_s:
                got = False
            yield got
            if got:
                conn.execute(
                    text(
                        "INSERT INTO poll_state (id, last_poll_at) VALUES (1, :now) "
                        "ON CONFLICT (id) DO UPDATE SET last_poll_at = :now"
                    ),
                    {"now": now},
                )
