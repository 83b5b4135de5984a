"""Durable task store: the daemon's memory across crashes and restarts.

Every task Kaltura offers is written here with its access key before any work starts, so
a crash at any point leaves a row that says what was done. `TaskStore` is the only writer
of the database: intake, stages, outcomes and history here, claims and leases in
`leases`, the tables in `models`, read-only ops views in `queries`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Float, bindparam, update
from sqlmodel import Session, col, func, or_, select

from reach_vendor.common.secretbox import SecretBox
from reach_vendor.domain.offer import OfferedTask
from reach_vendor.domain.states import (
    TERMINAL,
    Stage,
    TaskState,
    check_reopen,
    check_transition,
    sources_of,
)
from reach_vendor.store.engine import make_engine, sqlite_path
from reach_vendor.store.leases import POLL_LOCK_KEY, Leases
from reach_vendor.store.migrate import SchemaNotCurrent, require_current, upgrade
from reach_vendor.store.models import (
    INSERT_EVENT,
    OPEN_STATES,
    TASKS,
    OfferIntake,
    PollState,
    SkippedOffer,
    TaskEvent,
    TaskRecord,
    fits_int64,
)

__all__ = [
    "POLL_LOCK_KEY",
    "OfferIntake",
    "PollState",
    "SchemaNotCurrent",
    "SkippedOffer",
    "TaskEvent",
    "TaskRecord",
    "TaskStore",
    "make_engine",
    "offer_problem",
]

log = logging.getLogger(__name__)

_ENTER_STAGE = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("task_id"), TASKS.c.lease_owner == bindparam("owner"))
    .values(
        stage=bindparam("stage"),
        lease_expires_at=bindparam("expires"),
        updated_at=bindparam("now"),
    )
    .returning(*TASKS.c)
)
_ENTER_STAGE_WITH_DELIVERY = _ENTER_STAGE.values(delivery=bindparam("delivery"))
# A run starts at the claim stage: what an earlier run's engine got through is not this one's.
_ENTER_CLAIM = _ENTER_STAGE.values(progress=None)
_SET_PROGRESS = (
    update(TASKS)
    .where(TASKS.c.id == bindparam("task_id"), TASKS.c.lease_owner == bindparam("owner"))
    .values(progress=bindparam("progress"))
)
_SELECT_TASK = TASKS.select().where(TASKS.c.id == bindparam("task_id"))


@lru_cache(maxsize=256)
def _update_statement(
    state: TaskState | None, columns: tuple[str, ...], release_lease: bool
) -> Any:
    """`TaskStore.update`'s UPDATE for one shape of change, built once: building it each
    time cost as much CPU as running it. Binds the columns by name, `task_id` and `now`."""
    now = bindparam("now", type_=Float)
    values: dict[str, Any] = {name: bindparam(name) for name in columns}
    where = [TASKS.c.id == bindparam("task_id")]
    if state is not None:
        where.append(TASKS.c.state.in_(sources_of(state)))
        if state == TaskState.RUNNING:
            values["started_at"] = func.coalesce(TASKS.c.started_at, now)
        if state in TERMINAL:
            values["finished_at"] = now
        values["state"] = state.value
    if release_lease:
        values["lease_owner"] = None
        values["lease_expires_at"] = None
    values["updated_at"] = now
    return update(TASKS).where(*where).values(**values).returning(*TASKS.c)


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
# Known tasks looked up per SELECT during intake: one getJobs page at its largest, well
# under SQLite's bound-parameter limit.
_OFFER_BATCH = 500


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
        elif not fits_int64(value):
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
    """Times may come as integers of any size; SQLite refuses one past 64 bits even for
    a REAL column."""
    return None if value is None else float(value)


class TaskStore(Leases):
    """Tasks, their history and their leases, on SQLite (one host) or PostgreSQL (replicas).

    `key_file` switches on encryption of access keys at rest (see `secretbox`); records
    handed out by the store always carry the plaintext key, and only the store seals it.
    """

    def __init__(
        self,
        url: str,
        *,
        key_file: Path | None = None,
        threads: int = 5,
        migrate: bool = False,
    ) -> None:
        """`threads`: how many threads use the store at once, so that many connections
        stay open. `migrate`: bring the schema to this code's revision first (`run` and
        `migrate` only); otherwise a database that is not there refuses with
        `SchemaNotCurrent`, so read-only commands never change a production schema."""
        box = SecretBox.from_key_file(key_file)
        path = sqlite_path(url)
        if not migrate and path is not None and not os.path.exists(path):
            raise SchemaNotCurrent(f"no database at {path}: run `reach-vendor migrate`")
        engine = make_engine(url, threads=threads)
        try:
            if migrate:
                upgrade(engine)
            else:
                require_current(engine)
        except BaseException:
            engine.dispose()
            raise
        super().__init__(engine, box)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

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

        An offer no column can hold (`offer_problem`) is left out, so it costs its own
        task and not the poll. A known task keeps its progress but takes a fresh access
        key; a finished one offered again with a new version was re-submitted and starts
        over. Every poll offers the whole backlog again, so known tasks are looked up a
        page at a time and only new or changed ones are written (no row lock held over an
        unchanged task for the rest of the sweep).
        """
        skipped: list[SkippedOffer] = []
        storable: list[OfferedTask] = []
        for position, o in enumerate(offered):
            problem = offer_problem(o)
            if problem is None:
                storable.append(o)
                continue
            task_id = o.kaltura_task_id
            ok_id = isinstance(task_id, int) and fits_int64(task_id)
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
                            TASKS.c.kaltura_task_id,
                            TASKS.c.state,
                            TASKS.c.version,
                            TASKS.c.access_key,
                        ).where(TASKS.c.kaltura_task_id.in_([o.kaltura_task_id for o in batch]))
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
        "resubmitted", "reoffered" or "rekeyed" (a finished task that starts over)."""
        if state not in TERMINAL:
            return None if self.box.open(key) == o.access_key else "rekey"
        if o.version != version:
            return "resubmitted"
        # We stopped it because Kaltura had taken it back; offered as PENDING again, it is
        # wanted again (aborted tasks are never listed, and a stale listing shows its status).
        if state == TaskState.ABORTED.value and o.status == 1:
            return "reoffered"
        # Given up on (FAILED) but still PENDING there: our ERROR never arrived, typically
        # for an expired key; a fresh key is a fresh chance, the same key changes nothing.
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
            check_reopen(TaskState(rec.state), TaskState.QUEUED)
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

    # -- progress -------------------------------------------------------------------

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
        in one transaction committed before the stage's work starts; None (and nothing
        written) if the lease is no longer `owner`'s. `delivery`, the delivery record's
        JSON, goes in the same UPDATE when given.

        Every stage of every task makes this write, so it is one prebuilt UPDATE ...
        RETURNING and one INSERT on a plain connection: the ORM's unit of work cost more
        CPU than the SQL itself.
        """
        now = time.time()
        with self.engine.begin() as conn:
            values = {
                "task_id": task_id,
                "owner": owner,
                "stage": stage.value,
                "expires": now + lease_s,
                "now": now,
            }
            if delivery is None:
                statement = _ENTER_CLAIM if stage == Stage.CLAIM else _ENTER_STAGE
                row = conn.execute(statement, values).first()
            else:
                row = conn.execute(
                    _ENTER_STAGE_WITH_DELIVERY, {**values, "delivery": delivery}
                ).first()
            if row is None:
                return None
            conn.execute(
                INSERT_EVENT,
                {
                    "task_id": task_id,
                    "now": now,
                    "state": row.state,
                    "stage": stage.value,
                    "message": message,
                },
            )
        return self._from_row(row)

    def set_progress(self, task_id: int, owner: str, fraction: float) -> bool:
        """Record how far the engine got (0..1); False (nothing written) if the lease is
        no longer `owner`'s. No history line: callers write every few seconds at most."""
        with self.engine.begin() as conn:
            values = {"task_id": task_id, "owner": owner, "progress": fraction}
            return bool(conn.execute(_SET_PROGRESS, values).rowcount == 1)

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

        One UPDATE ... RETURNING conditional on the state machine allowing the move (Core,
        not the ORM, for CPU's sake); only when it matches nothing is the row read, to say
        why.
        """
        now = time.time()
        for name in fields:
            if name not in TASKS.c or name == "id":
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
                    INSERT_EVENT,
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

    # -- operator actions (`ops.task_admin`) ------------------------------------------
    # Each is one UPDATE conditional on the task's state and on nobody holding its lease,
    # so a worker claiming the task at the same moment cannot interleave; None (nothing
    # written) when that condition no longer holds.

    def make_runnable_now(self, task_id: int, message: str) -> TaskRecord | None:
        """An open, unleased task waiting for its retry time may be claimed now."""
        return self._write_unleased(task_id, OPEN_STATES, None, message, next_attempt_at=0.0)

    def cancel(self, task_id: int, message: str, error: str | None = None) -> TaskRecord | None:
        """An open, unleased task becomes ABORTED here; Kaltura is not told."""
        return self._write_unleased(
            task_id,
            sources_of(TaskState.ABORTED),
            TaskState.ABORTED,
            message,
            stage=None,
            finished_at=time.time(),
            error=error,
        )

    def reopen(
        self, task_id: int, current: TaskState, target: TaskState, message: str
    ) -> TaskRecord | None:
        """A finished task still in `current` starts over in `target` (see `check_reopen`)."""
        check_reopen(current, target)
        return self._write_unleased(
            task_id,
            (current.value,),
            target,
            message,
            stage=None,
            attempts=0,
            next_attempt_at=0.0,
            error=None,
            finished_at=None,
        )

    def purge_finished(self, finished_before: float, limit: int | None = None) -> int:
        """Delete DELIVERED and FAILED tasks (and their history) finished before the given
        time; the number of tasks deleted. Never ABORTED ones, nor a failure Kaltura was not
        told of yet: Kaltura may still offer those, and a forgotten task would run again.
        `limit`: at most that many, oldest first, so one call is one short transaction."""
        done = (TaskState.DELIVERED.value, TaskState.FAILED.value)
        doomed: Any = select(TASKS.c.id).where(
            TASKS.c.state.in_(done),
            TASKS.c.finished_at.is_not(None),
            TASKS.c.finished_at < finished_before,
            or_(TASKS.c.stage.is_(None), TASKS.c.stage != Stage.REPORT_ERROR.value),
        )
        events = TaskEvent.__table__  # type: ignore[attr-defined]
        with self.engine.begin() as conn:
            if limit is not None:
                # The ids once, so the history and the tasks deleted are the same batch.
                ids = conn.execute(doomed.order_by(TASKS.c.finished_at).limit(limit))
                doomed = list(ids.scalars())
                if not doomed:
                    return 0
            else:
                doomed = doomed.scalar_subquery()
            conn.execute(events.delete().where(events.c.task_id.in_(doomed)))
            return int(conn.execute(TASKS.delete().where(TASKS.c.id.in_(doomed))).rowcount)

    def _write_unleased(
        self,
        task_id: int,
        states: Sequence[str],
        target: TaskState | None,
        message: str,
        **values: object,
    ) -> TaskRecord | None:
        now = time.time()
        if target is not None:
            values["state"] = target.value
        statement = (
            update(TASKS)
            .where(
                TASKS.c.id == task_id,
                TASKS.c.state.in_(states),
                or_(TASKS.c.lease_owner.is_(None), TASKS.c.lease_expires_at < now),
            )
            .values(updated_at=now, lease_owner=None, lease_expires_at=None, **values)
            .returning(*TASKS.c)
        )
        with self.engine.begin() as conn:
            row = conn.execute(statement).first()
            if row is None:
                return None
            conn.execute(
                INSERT_EVENT,
                {
                    "task_id": task_id,
                    "now": now,
                    "state": row.state,
                    "stage": None,
                    "message": message,
                },
            )
        return self._from_row(row)

    # -- queries --------------------------------------------------------------------

    def get(self, task_id: int) -> TaskRecord | None:
        with self._session() as s:
            rec = s.get(TaskRecord, task_id)
        return self._reveal(rec)

    def by_kaltura_id(self, kaltura_task_id: int) -> TaskRecord | None:
        if not fits_int64(kaltura_task_id):
            return None  # no such row can exist, and binding it would fail the query
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
                .where(col(TaskRecord.state).in_(OPEN_STATES))
                .where(TaskRecord.next_attempt_at <= now)
            ).one()
            return int(n)
