"""Durable task store (SQLModel): the daemon's memory across crashes and restarts.

Every task Kaltura offers is written here with its access key before any work starts, so
a crash at any point leaves a row that says what was done. Work is handed out through
leases (owner + expiry, kept alive by heartbeats) rather than in-memory queues, which is
what lets several worker threads, and several replicas on PostgreSQL, share one table
safely. The schema comes from the Alembic migrations (`store.migrate`), never from
`create_all`, so every database in the field can be upgraded in place.
Times are epoch seconds (float): no time-zone ambiguity between SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Index,
    Text,
    bindparam,
    cast,
    event,
    insert,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import configure_mappers
from sqlalchemy.orm.attributes import manager_of_class
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, Session, SQLModel, col, create_engine, func, or_, select

from reach_vendor.common.secretbox import SecretBox
from reach_vendor.domain.offer import OfferedTask
from reach_vendor.domain.states import TERMINAL, Stage, TaskState, check_transition, sources_of

log = logging.getLogger(__name__)

POLL_LOCK_KEY = 0x7265_6163_6876
"""PostgreSQL advisory lock key ("reachv") held by the replica that is polling getJobs."""


class TaskRecord(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_runnable", "state", "next_attempt_at"),
        Index("ix_tasks_partner_claimed", "partner_id", "claimed_at"),
        Index("ix_tasks_lease_owner", "lease_owner"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # Integers as Kaltura hands them over are BIGINT there (KalturaEntryVendorTask.id is
    # `@var bigint`): a task id past 2^31 must not fail a poll.
    kaltura_task_id: int = Field(unique=True, index=True, sa_type=BigInteger)
    partner_id: int = Field(sa_type=BigInteger)
    entry_id: str
    version: int = Field(default=0, sa_type=BigInteger)
    service_type: int | None = Field(default=None, sa_type=BigInteger)
    service_feature: int | None = Field(default=None, sa_type=BigInteger)
    turn_around_time: int | None = Field(default=None, sa_type=BigInteger)
    expected_finish_time: float | None = None
    access_key: str = Field(repr=False)
    """The task's KS; ciphertext in the database when `database.key_file` is set."""
    access_key_expires_at: float | None = None

    state: str = Field(default=TaskState.QUEUED.value)
    stage: str | None = None
    attempts: int = 0
    next_attempt_at: float = 0.0
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    claimed_at: float | None = None
    """When the task was last leased; per partner, it decides whose turn it is."""
    error: str | None = None

    caption_asset_id: str | None = None
    transcript_asset_id: str | None = None
    accuracy: int | None = None
    processor: str | None = None
    processor_state: str | None = Field(default=None, sa_type=Text)
    """JSON the processor checkpointed (e.g. a remote job id), so a restart resumes the job."""
    delivery: str | None = Field(default=None, sa_type=Text)
    """JSON `DeliveryRecord`: tokens, assets and what was sent, so a delivery is never
    made twice whatever answer was lost."""

    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None


class TaskEvent(SQLModel, table=True):
    """One line of a task's history: why it moved, for ops and the status API."""

    __tablename__ = "task_events"

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks.id", index=True)
    at: float = Field(default_factory=time.time)
    state: str
    stage: str | None = None
    message: str


_TASKS = TaskRecord.__table__  # type: ignore[attr-defined]
_TASK_CLASS = manager_of_class(TaskRecord)
_EVENTS = TaskEvent.__table__  # type: ignore[attr-defined]
_ENTER_STAGE = (
    update(_TASKS)
    .where(_TASKS.c.id == bindparam("task_id"), _TASKS.c.lease_owner == bindparam("owner"))
    .values(
        stage=bindparam("stage"),
        lease_expires_at=bindparam("expires"),
        updated_at=bindparam("now"),
    )
    .returning(*_TASKS.c)
)
"""`TaskStore.enter_stage`'s write, built once (its SQL is compiled once per dialect)."""
_ENTER_STAGE_WITH_DELIVERY = _ENTER_STAGE.values(delivery=bindparam("delivery"))
_SELECT_TASK = select(_TASKS).where(_TASKS.c.id == bindparam("task_id"))
_STAGE_EVENT = insert(_EVENTS).values(
    task_id=bindparam("task_id"),
    at=bindparam("now"),
    state=bindparam("state"),
    stage=bindparam("stage"),
    message=bindparam("message"),
)


@lru_cache(maxsize=256)
def _update_statement(
    state: TaskState | None, columns: tuple[str, ...], release_lease: bool
) -> Any:
    """`TaskStore.update`'s UPDATE for one shape of change (the target state, which
    columns, whether the lease goes), built once: a task makes several updates of a few
    shapes, and building the statement each time cost as much CPU as running it. Values
    are bound by column name, plus `task_id` and `now`."""
    now = bindparam("now", type_=Float)
    values: dict[str, Any] = {name: bindparam(name) for name in columns}
    where = [_TASKS.c.id == bindparam("task_id")]
    if state is not None:
        where.append(_TASKS.c.state.in_(sources_of(state)))
        if state == TaskState.RUNNING:
            values["started_at"] = func.coalesce(_TASKS.c.started_at, now)
        if state in TERMINAL:
            values["finished_at"] = now
        values["state"] = state.value
    if release_lease:
        values["lease_owner"] = None
        values["lease_expires_at"] = None
    values["updated_at"] = now
    return update(_TASKS).where(*where).values(**values).returning(*_TASKS.c)


class PollState(SQLModel, table=True):
    """One row: when a replica last polled getJobs (PostgreSQL; see `poll_lock`)."""

    __tablename__ = "poll_state"

    id: int = Field(default=1, primary_key=True)
    last_poll_at: float


@dataclass(frozen=True)
class SkippedOffer:
    """An offered task the store could not hold, left out of `TaskStore.intake`."""

    position: int
    """Its index in the sequence given."""
    kaltura_task_id: int | None
    """None when the id itself is what is wrong."""
    reason: str
    """Which field is wrong and how, never its value (it may be a key, or huge)."""


@dataclass(frozen=True)
class OfferIntake:
    """What `TaskStore.intake` did with a getJobs sweep."""

    new: int
    skipped: tuple[SkippedOffer, ...] = ()


# SQLite's INTEGER and PostgreSQL's BIGINT both hold 64-bit signed integers.
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1
_OFFER_INTS = {
    "kaltura_task_id": True,
    "partner_id": True,
    "version": True,
    "service_type": False,
    "service_feature": False,
    "turn_around_time": False,
}
"""Integer fields of `OfferedTask` that are stored: whether they are required."""
_OFFER_TEXTS = ("entry_id", "access_key")
_OFFER_TIMES = ("access_key_expires_at", "expected_finish_time")


def offer_problem(o: OfferedTask) -> str | None:
    """Why `o` cannot be stored (a missing value, an integer past 64 bits, text
    PostgreSQL refuses, a time no float holds), or None if it can."""
    for name, required in _OFFER_INTS.items():
        value = getattr(o, name)
        if value is None:
            if required:
                return f"{name} is missing"
        elif not isinstance(value, int) or isinstance(value, bool):
            return f"{name} is not an integer"
        elif not _INT_MIN <= value <= _INT_MAX:
            return f"{name} is outside the 64-bit integer range"
    for name in _OFFER_TEXTS:
        value = getattr(o, name)
        if not isinstance(value, str) or not value:
            return f"{name} is missing"
        if "\x00" in value:
            return f"{name} contains a NUL character"
    for name in _OFFER_TIMES:
        value = getattr(o, name)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"{name} is not a number"
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an int no float can hold
            finite = False
        if not finite:
            return f"{name} is not a finite number"
    return None


def _as_float(value: float | None) -> float | None:
    """Times may come as integers of any size; stored as floats (SQLite refuses an int
    past 64 bits even for a REAL column)."""
    return None if value is None else float(value)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _create_private_file(url: str) -> None:
    """Create the SQLite file 0600 before SQLite does: it holds access keys."""
    path = url.split("///", 1)[1] if "///" in url else ""
    if not path or path == ":memory:" or os.path.exists(path):
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def make_engine(url: str, *, threads: int = 5) -> Engine:
    """An engine whose pool holds a connection for each of `threads` concurrent users.

    SQLAlchemy's default pool keeps 5 connections and closes any extra one when it is
    given back, so a daemon with more workers than that opened and closed connections
    (pragmas and all on SQLite, a TCP + auth handshake on PostgreSQL) many times a task.
    """
    pool_args: dict[str, Any] = {"pool_size": threads, "max_overflow": 10}
    if url.startswith("sqlite"):
        _create_private_file(url)
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
            **({} if memory else pool_args),
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **pool_args)


_OPEN_STATES = [st.value for st in TaskState if st not in TERMINAL]
# Known tasks looked up per SELECT when a poll records what getJobs offered (well under
# SQLite's 32766 bound parameters, and one getJobs page at its largest).
_OFFER_BATCH = 500


def _is_runnable(now: Any) -> tuple[Any, ...]:
    """Open, due, and not leased (or its lease ran out): what a claim may take."""
    return (
        _TASKS.c.state.in_(_OPEN_STATES),
        _TASKS.c.next_attempt_at <= now,
        or_(_TASKS.c.lease_owner.is_(None), _TASKS.c.lease_expires_at < now),
    )


_CLAIM = (
    update(_TASKS)
    .where(_TASKS.c.id == bindparam("task_id"), *_is_runnable(bindparam("now", type_=Float)))
    .values(
        lease_owner=bindparam("owner"),
        lease_expires_at=bindparam("expires"),
        claimed_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(*_TASKS.c)
)
"""The lease itself. It re-checks everything that made the task a candidate, not just the
lease: between the candidate SELECT and this UPDATE another worker may have claimed,
finished and released the task, and a free lease alone would then hand it out again."""


@dataclass(frozen=True)
class _ClaimStatements:
    candidates: Any
    """SQLite: ids of the next few runnable tasks, in claim order."""
    lock_next: Any
    """PostgreSQL: the id of the next runnable task nobody has locked, locked."""


def _claim_statements(is_postgres: bool) -> _ClaimStatements:
    """Most urgent first, and among tasks of similar urgency, partners take turns.

    Urgency is the `expectedFinishTime` cut into windows of `:window` seconds (tasks
    without one come last). Within a window the partner whose last claim is oldest goes
    first, so a partner with 1000 queued tasks cannot starve one with 3: claims alternate
    between them. Inside one partner's turn: earliest deadline, then oldest task. Under
    concurrent claims on PostgreSQL the turns are approximate (two replicas may both see
    the same partner's turn before either commits).

    A partner's last claim is looked up with one step down the `(partner_id, claimed_at)`
    index rather than aggregated over the whole table, which grows with every task ever
    served: on PostgreSQL once per partner that has runnable tasks, on SQLite (whose
    planner does better with a correlated subquery) once per runnable task. Built once per
    store, with the time and the window as parameters, so SQLAlchemy compiles each
    statement once.
    """
    now: Any = bindparam("now", type_=Float)
    eft = func.coalesce(_TASKS.c.expected_finish_time, 1e12)
    window: Any = bindparam("window", type_=Float)
    # SQLite: CAST truncates, which is floor for these positive values.
    urgency = func.floor(eft / window) if is_postgres else cast(eft / window, BigInteger)
    is_runnable = _is_runnable(now)
    earlier = _TASKS.alias("earlier")
    if is_postgres:
        waiting = select(_TASKS.c.partner_id).where(*is_runnable).distinct().subquery("waiting")
        per_partner = (
            select(func.max(earlier.c.claimed_at))
            .where(earlier.c.partner_id == waiting.c.partner_id)
            .scalar_subquery()
        )
        served = select(waiting.c.partner_id, per_partner.label("last")).subquery("served")
        candidates = select(_TASKS.c.id).outerjoin(
            served, served.c.partner_id == _TASKS.c.partner_id
        )
        last_claimed: Any = served.c.last
    else:
        candidates = select(_TASKS.c.id)
        last_claimed = (
            select(func.max(earlier.c.claimed_at))
            .where(earlier.c.partner_id == _TASKS.c.partner_id)
            .scalar_subquery()
        )
    ordered = candidates.where(*is_runnable).order_by(
        urgency, func.coalesce(last_claimed, 0.0), eft, _TASKS.c.id
    )
    return _ClaimStatements(
        candidates=ordered.limit(8),
        lock_next=ordered.limit(1).with_for_update(skip_locked=True, of=_TASKS),
    )


class TaskStore:
    """Tasks, their history and their leases, on SQLite (one host) or PostgreSQL (replicas).

    `key_file` switches on encryption of access keys at rest (see `secretbox`); records
    handed out by the store always carry the plaintext key, and only the store seals it.
    """

    def __init__(self, url: str, *, key_file: Path | None = None, threads: int = 5) -> None:
        """`threads`: how many threads use the store at once (workers, poller, heartbeat,
        status API), so that many connections stay open in the pool."""
        from reach_vendor.store import migrate

        self.box = SecretBox.from_key_file(key_file)
        self.engine = make_engine(url, threads=threads)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._claims = _claim_statements(self.is_postgres)
        # `_from_row` builds records without the ORM, which needs the mappers configured
        # (the ORM does it on its first query; a fresh daemon may claim before any).
        configure_mappers()
        migrate.upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def _from_row(self, row: Any) -> TaskRecord | None:
        """A record from a Core row (`RETURNING` every column), key revealed.

        Built the way the ORM loads a row (a bare instance, then its attribute dict), not
        through `TaskRecord(...)`, whose per-field instrumented setattr costs 30 times as
        much: a task reads its record back after every stage.
        """
        if row is None:
            return None
        rec: TaskRecord = _TASK_CLASS.new_instance()
        rec.__dict__.update(row._mapping)
        return self._reveal(rec)

    def _reveal(self, rec: TaskRecord | None) -> TaskRecord | None:
        """Put the plaintext key on a record that has left its session."""
        if rec is not None:
            rec.access_key = self.box.open(rec.access_key)
        return rec

    # -- intake ---------------------------------------------------------------------

    def record_offered(self, offered: Sequence[OfferedTask]) -> int:
        """Persist tasks from getJobs (see `intake`); returns how many are new.

        Offers that cannot be stored are skipped and logged here, since the count cannot
        tell the caller about them; `intake` hands them back instead.
        """
        result = self.intake(offered)
        for skipped in result.skipped:
            log.warning(
                "offered task %s (entry %d of the sweep) skipped: %s",
                skipped.kaltura_task_id if skipped.kaltura_task_id is not None else "?",
                skipped.position + 1,
                skipped.reason,
            )
        return result.new

    def intake(self, offered: Sequence[OfferedTask]) -> OfferIntake:
        """Persist tasks from getJobs; says how many are new and which were skipped.

        Each offer is checked first (`offer_problem`): one that no column can hold is
        left out, so it costs its own task and not the poll. The skipped ones are not
        logged here; the caller says what it does with them.

        A task we already know keeps its progress but takes the fresh access key. A task
        we finished that Kaltura offers again with a new version was re-submitted by the
        customer, so it starts over.

        Every poll offers the whole PENDING backlog again, almost all of it unchanged, so
        known tasks are looked up a page at a time (one SELECT of four columns) and only
        the new or changed ones are loaded and written: no row lock is held for the rest
        of the sweep over a task that did not change.
        """
        skipped: list[SkippedOffer] = []
        storable: list[OfferedTask] = []
        for position, o in enumerate(offered):
            problem = offer_problem(o)
            if problem is None:
                storable.append(o)
                continue
            task_id = o.kaltura_task_id
            ok_id = isinstance(task_id, int) and _INT_MIN <= task_id <= _INT_MAX
            skipped.append(SkippedOffer(position, task_id if ok_id else None, problem))
        new = 0
        now = time.time()
        with self._session() as s:
            for start in range(0, len(storable), _OFFER_BATCH):
                batch = storable[start : start + _OFFER_BATCH]
                known = {
                    row[0]: (row[1], row[2], row[3])
                    for row in s.execute(
                        select(
                            _TASKS.c.kaltura_task_id,
                            _TASKS.c.state,
                            _TASKS.c.version,
                            _TASKS.c.access_key,
                        ).where(_TASKS.c.kaltura_task_id.in_([o.kaltura_task_id for o in batch]))
                    )
                }
                for o in batch:
                    seen = known.get(o.kaltura_task_id)
                    if seen is None:
                        rec = self._add_offered(s, o)
                        new += 1
                    else:
                        change = self._offer_change(o, *seen)
                        if change is None:
                            continue
                        rec = self._apply_offer(s, o, change, now)
                    # getJobs pages can overlap while the backlog moves: a task listed
                    # twice is only recorded once.
                    known[o.kaltura_task_id] = (rec.state, rec.version, rec.access_key)
            s.commit()
        return OfferIntake(new, tuple(skipped))

    def _offer_change(self, o: OfferedTask, state: str, version: int, key: str) -> str | None:
        """What a re-offer of a known task means: None (nothing new: every poll offers
        every pending task again), "rekey" (an open task's fresh access key),
        "resubmitted" or "rekeyed" (a finished task that starts over)."""
        if state not in TERMINAL:
            return None if self.box.open(key) == o.access_key else "rekey"
        if o.version != version:
            return "resubmitted"
        # We stopped it because Kaltura had taken it back (reset to PENDING, or gone);
        # offered as PENDING again, it is wanted again. Aborted tasks are never listed
        # (EntryVendorTaskPeer hides them), and a stale listing shows its real status.
        if state == TaskState.ABORTED.value and o.status == 1:
            return "reoffered"
        # A task we gave up on (FAILED) that Kaltura still offers as PENDING never got our
        # ERROR, typically because its access key had run out; a fresh key is a fresh
        # chance. With the same key nothing has changed: leave it.
        if state == TaskState.FAILED.value and self.box.open(key) != o.access_key:
            return "rekeyed"
        return None

    def _add_offered(self, s: Session, o: OfferedTask) -> TaskRecord:
        rec = TaskRecord(
            kaltura_task_id=o.kaltura_task_id,
            partner_id=o.partner_id,
            entry_id=o.entry_id,
            version=o.version,
            access_key=self.box.seal(o.access_key),
            access_key_expires_at=_as_float(o.access_key_expires_at),
            service_type=o.service_type,
            service_feature=o.service_feature,
            turn_around_time=o.turn_around_time,
            expected_finish_time=_as_float(o.expected_finish_time),
        )
        s.add(rec)
        s.flush()
        assert rec.id is not None
        s.add(TaskEvent(task_id=rec.id, state=rec.state, message="offered by getJobs"))
        return rec

    def _apply_offer(self, s: Session, o: OfferedTask, change: str, now: float) -> TaskRecord:
        rec = s.exec(
            select(TaskRecord).where(TaskRecord.kaltura_task_id == o.kaltura_task_id)
        ).one()
        assert rec.id is not None
        rec.access_key = self.box.seal(o.access_key)
        rec.access_key_expires_at = _as_float(o.access_key_expires_at)
        rec.updated_at = now
        if change != "rekey":
            rec.state = TaskState.QUEUED.value
            rec.stage = None
            rec.attempts = 0
            rec.next_attempt_at = 0.0
            rec.error = None
            if change == "resubmitted":
                rec.version = o.version
                rec.caption_asset_id = rec.transcript_asset_id = None
                rec.processor_state = None
                rec.delivery = None
                rec.expected_finish_time = _as_float(o.expected_finish_time)
                message = f"re-submitted as version {o.version}"
            elif change == "reoffered":
                rec.finished_at = None
                message = "offered again by Kaltura after it took the task back; starting over"
            else:
                rec.finished_at = None
                message = "offered again with a fresh access key; starting over"
            s.add(TaskEvent(task_id=rec.id, state=rec.state, message=message))
        s.add(rec)
        return rec

    # -- leases ---------------------------------------------------------------------

    def claim_next(
        self, owner: str, lease_s: float, *, fairness_window_s: float = 3600.0
    ) -> TaskRecord | None:
        """Lease the next runnable task to `owner` (see `_claim_statements`), or None.

        PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED` picks and locks one row in one
        statement, so replicas claiming at once each get a different task without waiting
        on each other. SQLite: candidates are read first, then each is taken with an
        UPDATE conditional on it still being runnable, so two workers racing for the same
        row cannot both win and a task finished meanwhile is not taken again.
        On PostgreSQL the row lock already ensures this; the UPDATE checks it all the same.
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
        with self._session() as s:
            result = s.execute(
                update(TaskRecord)
                .where(col(TaskRecord.id) == task_id)
                .where(col(TaskRecord.lease_owner) == owner)
                .values(lease_expires_at=time.time() + lease_s)
            )
            s.commit()
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def enter_stage(
        self,
        task_id: int,
        owner: str,
        lease_s: float,
        stage: Stage,
        message: str,
        delivery: str | None = None,
    ) -> TaskRecord | None:
        """Record the stage a worker is about to start, renew its lease and log the event,
        in one transaction; None (and nothing written) if the lease is no longer `owner`'s.

        This is the write every stage of every task makes, so it is kept to one UPDATE
        (conditional on the lease owner, so a task another replica took over is never
        touched, and RETURNING the row so the caller sees e.g. a fresh access key) and one
        INSERT, committed before the stage's work starts: a crash afterwards still finds
        the stage recorded. Separate lease-renew and update transactions cost twice the
        commits and an extra SELECT for the same guarantee. `delivery` (the delivery
        record's JSON) is written in the same UPDATE when given.
        """
        now = time.time()
        # Prepared Core statements on a plain connection: building the statement, its
        # cache key and the ORM unit of work cost more CPU than the SQL itself here.
        with self.engine.begin() as conn:
            values = {
                "task_id": task_id,
                "owner": owner,
                "stage": stage.value,
                "expires": now + lease_s,
                "now": now,
            }
            if delivery is None:
                row = conn.execute(_ENTER_STAGE, values).first()
            else:
                row = conn.execute(
                    _ENTER_STAGE_WITH_DELIVERY, {**values, "delivery": delivery}
                ).first()
            if row is None:
                return None
            conn.execute(
                _STAGE_EVENT,
                {
                    "task_id": task_id,
                    "now": now,
                    "state": row.state,
                    "stage": stage.value,
                    "message": message,
                },
            )
        return self._from_row(row)

    def heartbeat(self, owner: str, lease_s: float) -> int:
        """Extend every lease `owner` holds, itself or through its workers (leases named
        `owner/<worker>`), in one statement; returns how many.

        A replica calls this on a timer, whatever stage its tasks are in; when it dies
        the heartbeats stop and its leases run out, and other replicas take the tasks over.
        """
        ours = or_(
            _TASKS.c.lease_owner == owner,
            _TASKS.c.lease_owner.startswith(owner + "/", autoescape=True),
        )
        if self.is_postgres:
            # Rows locked right now (a worker entering a stage, which renews the lease
            # itself; the poller) are skipped, not waited for: a heartbeat that waits while
            # holding other rows closes a deadlock cycle with the poller's sweep, and
            # PostgreSQL then aborts whichever transaction it picks, a worker's included.
            # A skipped lease is renewed by the next beat, a third of a lease later.
            ours = _TASKS.c.id.in_(
                select(_TASKS.c.id).where(ours).with_for_update(skip_locked=True)
            )
        with self.engine.begin() as conn:
            result = conn.execute(
                update(_TASKS).where(ours).values(lease_expires_at=time.time() + lease_s)
            )
            return int(result.rowcount)

    def release(
        self, task_id: int, owner: str, *, retry_at: float | None = None, reason: str = ""
    ) -> None:
        """Give the task back, optionally not to be picked up again before `retry_at`."""
        with self._session() as s:
            rec = s.get(TaskRecord, task_id)
            if rec is None or rec.lease_owner != owner:
                return
            rec.lease_owner = None
            rec.lease_expires_at = None
            if retry_at is not None:
                rec.next_attempt_at = retry_at
            rec.updated_at = time.time()
            s.add(rec)
            if reason:
                s.add(TaskEvent(task_id=task_id, state=rec.state, stage=rec.stage, message=reason))
            s.commit()

    @contextmanager
    def poll_lock(self, min_interval_s: float = 0.0) -> Iterator[bool]:
        """Whether this replica may poll getJobs now; held for the `with` block.

        PostgreSQL: a transaction-scoped advisory lock, tried without waiting, so of
        several replicas exactly one polls at a time and a crashed poller's lock goes with
        its connection. The time of the last poll is kept in `poll_state`, so a replica
        also says no when another one polled less than `min_interval_s` ago: the whole
        group calls getJobs at the configured rate, not once per replica.
        SQLite (one host, one daemon): always yes.
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

    # -- progress -------------------------------------------------------------------

    def update(
        self,
        task_id: int,
        *,
        state: TaskState | None = None,
        stage: Stage | None = None,
        message: str | None = None,
        release_lease: bool = False,
        **fields: Any,
    ) -> TaskRecord:
        """Change a task, checking the state machine and logging an event if asked.

        Core statements (an UPDATE ... RETURNING that is conditional on the state machine
        allowing the move, and the event INSERT) rather than the ORM: a task makes several
        of these, and the ORM's unit of work was a good part of the CPU a task costs. Only
        when the UPDATE matches nothing is the row read, to say why.
        """
        now = time.time()
        for name in fields:
            if name not in _TASKS.c or name == "id":
                raise AttributeError(name)
        if "access_key" in fields:
            fields["access_key"] = self.box.seal(fields["access_key"])
        values: dict[str, Any] = dict(fields)
        if state is not None and state in TERMINAL:
            values["stage"] = None
        if stage is not None:
            values["stage"] = stage.value
        statement = _update_statement(state, tuple(sorted(values)), release_lease)
        with self.engine.begin() as conn:
            row = conn.execute(statement, {**values, "task_id": task_id, "now": now}).first()
            if row is None:
                current = conn.execute(_SELECT_TASK, {"task_id": task_id}).first()
                if current is None:
                    raise KeyError(task_id)
                assert state is not None
                check_transition(TaskState(current.state), state)
                raise AssertionError(f"task {task_id} changed while it was updated")
            if message:
                conn.execute(
                    _STAGE_EVENT,
                    {
                        "task_id": task_id,
                        "now": now,
                        "state": row.state,
                        "stage": row.stage,
                        "message": message,
                    },
                )
        revealed = self._from_row(row)
        assert revealed is not None
        return revealed

    # -- queries --------------------------------------------------------------------

    def get(self, task_id: int) -> TaskRecord | None:
        with self._session() as s:
            rec = s.get(TaskRecord, task_id)
        return self._reveal(rec)

    def by_kaltura_id(self, kaltura_task_id: int) -> TaskRecord | None:
        if not _INT_MIN <= kaltura_task_id <= _INT_MAX:
            return None  # no such row can exist, and the query would fail binding it
        with self._session() as s:
            rec = s.exec(
                select(TaskRecord).where(TaskRecord.kaltura_task_id == kaltura_task_id)
            ).first()
        return self._reveal(rec)

    def all(self) -> list[TaskRecord]:
        with self._session() as s:
            rows = list(s.exec(select(TaskRecord).order_by(col(TaskRecord.id))).all())
        return [r for r in map(self._reveal, rows) if r is not None]

    def events(self, task_id: int) -> list[TaskEvent]:
        with self._session() as s:
            return list(
                s.exec(
                    select(TaskEvent)
                    .where(TaskEvent.task_id == task_id)
                    .order_by(col(TaskEvent.id))
                ).all()
            )

    def count_by_state(self) -> dict[str, int]:
        with self._session() as s:
            rows = s.exec(select(TaskRecord.state, func.count()).group_by(TaskRecord.state)).all()
            return {state: int(n) for state, n in rows}

    def runnable_count(self) -> int:
        """Open tasks that a worker could pick up now (used by `run --once`)."""
        now = time.time()
        with self._session() as s:
            n = s.exec(
                select(func.count())
                .select_from(TaskRecord)
                .where(col(TaskRecord.state).in_(_OPEN_STATES))
                .where(TaskRecord.next_attempt_at <= now)
            ).one()
            return int(n)
