"""The store's tables and the records it hands out.

The schema itself comes from the Alembic migrations (`store.migrate`), never `create_all`,
so every database in the field is upgraded in place; these models must match them.
Times are epoch seconds (float): no time-zone ambiguity between SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Index, Table, Text, bindparam, insert
from sqlalchemy.orm.attributes import manager_of_class
from sqlmodel import Field, SQLModel

from reach_vendor.domain.states import TERMINAL, TaskState


class TaskRecord(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_runnable", "state", "next_attempt_at"),
        Index("ix_tasks_partner_claimed", "partner_id", "claimed_at"),
        Index("ix_tasks_lease_owner", "lease_owner"),
        # Ops views (migration 0004): recently finished, newest first, by entry id.
        Index("ix_tasks_finished_at", "finished_at"),
        Index("ix_tasks_created_at", "created_at"),
        Index("ix_tasks_entry_id", "entry_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # BIGINT as at Kaltura (KalturaEntryVendorTask.id is `@var bigint`).
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
    progress: float | None = None
    """How far the engine got through the audio (0..1) in this run; NULL until it says
    (migration 0005). Written by the lease holder only, a few seconds apart."""
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
    """JSON `DeliveryRecord`, so a delivery is never made twice whatever answer was lost."""

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


class PollState(SQLModel, table=True):
    """Times by row id: 1 when a replica last took the poll lock (PostgreSQL, see
    `Leases.poll_lock`); the others what getJobs and the retention purge last did
    (`store.leases.POLL_OK_ROW` and the rows after it), on SQLite too."""

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


TASKS: Table = TaskRecord.__table__  # type: ignore[attr-defined]
EVENTS: Table = TaskEvent.__table__  # type: ignore[attr-defined]
OPEN_STATES = tuple(s.value for s in TaskState if s not in TERMINAL)

# SQLite's INTEGER and PostgreSQL's BIGINT both hold 64-bit signed integers.
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def fits_int64(value: int) -> bool:
    """Whether an integer column can hold `value`; binding one that cannot fails the query."""
    return INT64_MIN <= value <= INT64_MAX


INSERT_EVENT = insert(EVENTS).values(
    task_id=bindparam("task_id"),
    at=bindparam("now"),
    state=bindparam("state"),
    stage=bindparam("stage"),
    message=bindparam("message"),
)
"""A history line as a prebuilt Core statement (compiled once per dialect)."""

_TASK_CLASS = manager_of_class(TaskRecord)


def record_from_row(row: Any) -> TaskRecord:
    """A record from a Core row holding every column, its access key as stored.

    Built the way the ORM loads a row (a bare instance, then its attribute dict): the
    instrumented `TaskRecord(...)` costs far more, and a task reads its record after
    every stage. Needs the mappers configured (`TaskStore.__init__` does it).
    """
    rec: TaskRecord = _TASK_CLASS.new_instance()
    rec.__dict__.update(row._mapping)
    return rec
