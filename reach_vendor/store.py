"""Durable task store (SQLModel): the daemon's memory across crashes and restarts.

Every task Kaltura offers is written here with its access key before any work starts, so
a crash at any point leaves a row that says what was done. Work is handed out through
leases (owner + expiry) rather than in-memory queues, which is what lets several worker
threads, and later several replicas on PostgreSQL, share one table safely.
Times are epoch seconds (float): no time-zone ambiguity between SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Index, event, update
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, Session, SQLModel, col, create_engine, func, or_, select

from reach_vendor.states import TERMINAL, Stage, TaskState, check_transition


class TaskRecord(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_runnable", "state", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kaltura_task_id: int = Field(unique=True, index=True)
    partner_id: int
    entry_id: str
    version: int = 0
    service_type: int | None = None
    service_feature: int | None = None
    turn_around_time: int | None = None
    expected_finish_time: float | None = None
    access_key: str = Field(repr=False)
    access_key_expires_at: float | None = None

    state: str = Field(default=TaskState.QUEUED.value)
    stage: str | None = None
    attempts: int = 0
    next_attempt_at: float = 0.0
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    error: str | None = None

    caption_asset_id: str | None = None
    transcript_asset_id: str | None = None
    accuracy: int | None = None
    processor: str | None = None
    processor_state: str | None = None
    """JSON the processor checkpointed (e.g. a remote job id), so a restart resumes the job."""

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


@dataclass(frozen=True)
class OfferedTask:
    """What getJobs told us about a task; the input to `TaskStore.record_offered`."""

    kaltura_task_id: int
    partner_id: int
    entry_id: str
    version: int
    access_key: str
    access_key_expires_at: float | None
    service_type: int | None
    service_feature: int | None
    turn_around_time: int | None
    expected_finish_time: float | None


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


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _create_private_file(url)
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


class TaskStore:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        SQLModel.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    # -- intake ---------------------------------------------------------------------

    def record_offered(self, offered: Sequence[OfferedTask]) -> int:
        """Persist tasks from getJobs; returns how many are new.

        A task we already know keeps its progress but takes the fresh access key. A task
        we finished that Kaltura offers again with a new version was re-submitted by the
        customer, so it starts over.
        """
        new = 0
        now = time.time()
        with self._session() as s:
            for o in offered:
                rec = s.exec(
                    select(TaskRecord).where(TaskRecord.kaltura_task_id == o.kaltura_task_id)
                ).first()
                if rec is None:
                    rec = TaskRecord(
                        kaltura_task_id=o.kaltura_task_id,
                        partner_id=o.partner_id,
                        entry_id=o.entry_id,
                        version=o.version,
                        access_key=o.access_key,
                        access_key_expires_at=o.access_key_expires_at,
                        service_type=o.service_type,
                        service_feature=o.service_feature,
                        turn_around_time=o.turn_around_time,
                        expected_finish_time=o.expected_finish_time,
                    )
                    s.add(rec)
                    s.flush()
                    assert rec.id is not None
                    s.add(TaskEvent(task_id=rec.id, state=rec.state, message="offered by getJobs"))
                    new += 1
                    continue
                resubmitted = rec.state in TERMINAL and o.version != rec.version
                if rec.state in TERMINAL and not resubmitted:
                    continue
                rec.access_key = o.access_key
                rec.access_key_expires_at = o.access_key_expires_at
                rec.updated_at = now
                if resubmitted:
                    assert rec.id is not None
                    rec.version = o.version
                    rec.state = TaskState.QUEUED.value
                    rec.stage = None
                    rec.attempts = 0
                    rec.next_attempt_at = 0.0
                    rec.error = None
                    rec.caption_asset_id = rec.transcript_asset_id = None
                    rec.processor_state = None
                    s.add(TaskEvent(task_id=rec.id, state=rec.state, message="re-submitted"))
                s.add(rec)
            s.commit()
        return new

    # -- leases ---------------------------------------------------------------------

    def claim_next(self, owner: str, lease_s: float) -> TaskRecord | None:
        """Lease the most urgent runnable task to `owner`, or return None.

        Claiming is a conditional UPDATE on the lease columns, so two workers racing for
        the same row cannot both win, on SQLite and PostgreSQL alike.
        """
        now = time.time()
        open_states = [s.value for s in TaskState if s not in TERMINAL]
        with self._session() as s:
            for _ in range(5):
                candidates = s.exec(
                    select(TaskRecord.id)
                    .where(col(TaskRecord.state).in_(open_states))
                    .where(TaskRecord.next_attempt_at <= now)
                    .where(
                        or_(
                            col(TaskRecord.lease_owner).is_(None),
                            col(TaskRecord.lease_expires_at) < now,
                        )
                    )
                    .order_by(
                        col(TaskRecord.expected_finish_time).is_(None),
                        col(TaskRecord.expected_finish_time),
                        col(TaskRecord.id),
                    )
                    .limit(8)
                ).all()
                if not candidates:
                    return None
                for task_id in candidates:
                    result = s.execute(
                        update(TaskRecord)
                        .where(col(TaskRecord.id) == task_id)
                        .where(
                            or_(
                                col(TaskRecord.lease_owner).is_(None),
                                col(TaskRecord.lease_expires_at) < now,
                            )
                        )
                        .values(lease_owner=owner, lease_expires_at=now + lease_s, updated_at=now)
                    )
                    s.commit()
                    if result.rowcount == 1:  # type: ignore[attr-defined]
                        return s.get(TaskRecord, task_id)
        return None

    def renew_lease(self, task_id: int, owner: str, lease_s: float) -> bool:
        with self._session() as s:
            result = s.execute(
                update(TaskRecord)
                .where(col(TaskRecord.id) == task_id)
                .where(col(TaskRecord.lease_owner) == owner)
                .values(lease_expires_at=time.time() + lease_s)
            )
            s.commit()
            return bool(result.rowcount == 1)  # type: ignore[attr-defined]

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
        """Change a task, checking the state machine and logging an event if asked."""
        now = time.time()
        with self._session() as s:
            rec = s.get(TaskRecord, task_id)
            if rec is None:
                raise KeyError(task_id)
            if state is not None:
                check_transition(TaskState(rec.state), state)
                if state == TaskState.RUNNING and rec.started_at is None:
                    rec.started_at = now
                if state in TERMINAL:
                    rec.finished_at = now
                    rec.stage = None
                rec.state = state.value
            if stage is not None:
                rec.stage = stage.value
            for name, value in fields.items():
                if not hasattr(rec, name):
                    raise AttributeError(name)
                setattr(rec, name, value)
            if release_lease:
                rec.lease_owner = None
                rec.lease_expires_at = None
            rec.updated_at = now
            s.add(rec)
            if message:
                assert rec.id is not None
                s.add(TaskEvent(task_id=rec.id, state=rec.state, stage=rec.stage, message=message))
            s.commit()
            return rec

    # -- queries --------------------------------------------------------------------

    def get(self, task_id: int) -> TaskRecord | None:
        with self._session() as s:
            return s.get(TaskRecord, task_id)

    def by_kaltura_id(self, kaltura_task_id: int) -> TaskRecord | None:
        with self._session() as s:
            return s.exec(
                select(TaskRecord).where(TaskRecord.kaltura_task_id == kaltura_task_id)
            ).first()

    def all(self) -> list[TaskRecord]:
        with self._session() as s:
            return list(s.exec(select(TaskRecord).order_by(col(TaskRecord.id))).all())

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
        open_states = [s.value for s in TaskState if s not in TERMINAL]
        with self._session() as s:
            n = s.exec(
                select(func.count())
                .select_from(TaskRecord)
                .where(col(TaskRecord.state).in_(open_states))
                .where(TaskRecord.next_attempt_at <= now)
            ).one()
            return int(n)
