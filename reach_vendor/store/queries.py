"""Read-only views over the task store for ops: queue snapshot, task lookup, progress.

Metrics, the status API and `reach-vendor tasks` share these queries so they never
disagree, and ask the database rather than in-process counters so the answers hold across
restarts and replicas.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, func, or_, select

from reach_vendor.domain.states import Stage, TaskState
from reach_vendor.store.models import OPEN_STATES, TaskRecord, fits_int64
from reach_vendor.store.tasks import TaskStore

__all__ = [
    "FINISHED_WINDOW_S",
    "OPEN_STATES",
    "PIPELINE_STAGES",
    "SORTS",
    "LabelCount",
    "QueueSnapshot",
    "find_tasks",
    "is_in_flight",
    "progress_percent",
    "snapshot",
]
PIPELINE_STAGES = (
    Stage.CLAIM,
    Stage.DOWNLOAD,
    Stage.WAITING_FOR_DECODER,
    Stage.DECODE,
    Stage.TRANSCRIBE,
    Stage.UPLOAD,
    Stage.FINISH,
)
"""The stages of a run, in the order they first come (waiting may come again later)."""


@dataclass(frozen=True)
class LabelCount:
    state: str
    service_feature: int | None
    partner_id: int
    count: int


@dataclass
class QueueSnapshot:
    """The queue as it is now. Ages and slacks are in seconds; None when nothing is open."""

    taken_at: float
    by_labels: list[LabelCount] = field(default_factory=list)
    queue_depth: int = 0
    """Open tasks a worker could claim right now."""
    in_flight: int = 0
    """Open tasks leased to a worker (being processed)."""
    retry_wait: int = 0
    """Open, unleased tasks waiting for their retry time."""
    oldest_open_age_s: float | None = None
    min_deadline_slack_s: float | None = None
    """Smallest (expectedFinishTime - now) over open tasks; negative means overdue."""
    finished_since: float | None = None
    """Finished tasks are counted from this time on; None: all of them."""

    @property
    def by_state(self) -> dict[str, int]:
        counts = {s.value: 0 for s in TaskState}
        for row in self.by_labels:
            counts[row.state] = counts.get(row.state, 0) + row.count
        return counts


FINISHED_WINDOW_S = 86400.0
"""How far back the ops views count finished tasks (the scrape, the status API summary)."""
SORTS = ("urgent", "created", "-created", "finished", "-finished")
"""Orders `find_tasks` offers; each is served by an index, whatever the table's size."""


def snapshot(
    store: TaskStore, now: float | None = None, finished_window_s: float | None = None
) -> QueueSnapshot:
    """Open tasks exactly; finished ones (delivered, failed, aborted) only those finished
    within `finished_window_s`, if given: counting every task ever served costs a scan of
    the whole table, and only `reach-vendor tasks stats` wants that."""
    now = time.time() if now is None else now
    snap = QueueSnapshot(taken_at=now)
    if finished_window_s is not None:
        snap.finished_since = now - finished_window_s
    is_open = col(TaskRecord.state).in_(OPEN_STATES)
    leased = (col(TaskRecord.lease_owner).is_not(None)) & (col(TaskRecord.lease_expires_at) >= now)
    unleased = or_(col(TaskRecord.lease_owner).is_(None), col(TaskRecord.lease_expires_at) < now)
    labels = (col(TaskRecord.state), col(TaskRecord.service_feature), col(TaskRecord.partner_id))
    with Session(store.engine) as s:
        finished = select(*labels, func.count()).where(~is_open)
        if snap.finished_since is not None:
            finished = finished.where(col(TaskRecord.finished_at) >= snap.finished_since)
        rows = [
            *s.exec(select(*labels, func.count()).where(is_open).group_by(*labels)).all(),
            *s.exec(finished.group_by(*labels)).all(),
        ]
        snap.by_labels = [LabelCount(st, feat, partner, int(n)) for st, feat, partner, n in rows]

        def count(*conditions: object) -> int:
            query = select(func.count()).select_from(TaskRecord).where(is_open)
            for c in conditions:
                query = query.where(c)  # type: ignore[arg-type]
            return int(s.exec(query).one())

        snap.in_flight = count(leased)
        snap.queue_depth = count(unleased, col(TaskRecord.next_attempt_at) <= now)
        snap.retry_wait = count(unleased, col(TaskRecord.next_attempt_at) > now)
        oldest, deadline = s.exec(
            select(func.min(TaskRecord.created_at), func.min(TaskRecord.expected_finish_time))
            .select_from(TaskRecord)
            .where(is_open)
        ).one()
    if oldest is not None:
        snap.oldest_open_age_s = max(0.0, now - float(oldest))
    if deadline is not None:
        snap.min_deadline_slack_s = float(deadline) - now
    return snap


def find_tasks(
    store: TaskStore,
    *,
    kaltura_task_id: int | None = None,
    entry_id: str | None = None,
    state: str | None = None,
    partner_id: int | None = None,
    search: str | None = None,
    open_only: bool | None = None,
    sort: str = "urgent",
    offset: int = 0,
    limit: int = 100,
) -> list[TaskRecord]:
    """Tasks matching every filter given, one page of them. `search` is an entry id, or a
    Kaltura task or partner id. `open_only`: True for open tasks only, False for finished
    ones only. Sorts (`SORTS`): "urgent" puts open tasks first, earliest deadline first,
    then the others newest first; "finished" lists finished tasks only.
    Access keys stay as stored: these views never show them."""
    query = select(TaskRecord)
    if kaltura_task_id is not None:
        if not fits_int64(kaltura_task_id):
            return []  # no column holds it, and binding it would fail the query
        query = query.where(TaskRecord.kaltura_task_id == kaltura_task_id)
    if entry_id is not None:
        query = query.where(TaskRecord.entry_id == entry_id)
    if state is not None:
        query = query.where(TaskRecord.state == state)
    if partner_id is not None:
        if not fits_int64(partner_id):
            return []
        query = query.where(TaskRecord.partner_id == partner_id)
    if search:
        matches: list[Any] = [col(TaskRecord.entry_id) == search]
        if search.isdigit() and fits_int64(int(search)):
            matches += [
                col(TaskRecord.kaltura_task_id) == int(search),
                col(TaskRecord.partner_id) == int(search),
            ]
        query = query.where(or_(*matches))
    is_open = col(TaskRecord.state).in_(OPEN_STATES)
    if open_only is True:
        query = query.where(is_open)
    elif open_only is False:
        query = query.where(~is_open)
    by_id = col(TaskRecord.id).desc()
    with Session(store.engine) as s:
        if sort != "urgent":
            key = col(TaskRecord.finished_at if "finished" in sort else TaskRecord.created_at)
            if "finished" in sort:
                query = query.where(key.is_not(None))
            order = (key.desc(), by_id) if sort.startswith("-") else (key, col(TaskRecord.id))
            return list(s.exec(query.order_by(*order).offset(offset).limit(limit)).all())
        # Two index-served queries rather than one sort of the whole table: the open tasks
        # are few, the finished ones come newest first by primary key.
        found: list[TaskRecord] = []
        if open_only is not False:
            open_query = query.where(is_open).order_by(
                col(TaskRecord.expected_finish_time).is_(None),
                col(TaskRecord.expected_finish_time),
                by_id,
            )
            found = list(s.exec(open_query.offset(offset).limit(limit)).all())
            if len(found) == limit or open_only:
                return found
            if offset:
                count = select(func.count()).select_from(open_query.subquery())
                offset = max(0, offset - int(s.exec(count).one()))
        rest = query.where(~is_open).order_by(by_id).offset(offset).limit(limit - len(found))
        return found + list(s.exec(rest).all())


def is_in_flight(rec: TaskRecord, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    return (
        rec.state in OPEN_STATES
        and rec.lease_owner is not None
        and (rec.lease_expires_at or 0) >= now
    )


_STAGE_PERCENT = {
    Stage.CLAIM: 0,
    Stage.DOWNLOAD: 3,
    Stage.DECODE: 10,
    # Before decode or transcribe it is where decode starts; within a transcription (a
    # helper engine), where the transcription got to, as the stored progress says.
    Stage.WAITING_FOR_DECODER: 10,
    Stage.TRANSCRIBE: 15,
    Stage.UPLOAD: 90,
    Stage.FINISH: 96,
}
"""Where each stage starts on the bar. Transcription takes most of a task's time, so it
gets most of the bar and moves with the engine's progress (`TaskRecord.progress`)."""
_TRANSCRIBE_SPAN = _STAGE_PERCENT[Stage.UPLOAD] - _STAGE_PERCENT[Stage.TRANSCRIBE]


def progress_percent(rec: TaskRecord) -> int:
    """Progress for a bar: the stage's place, plus within a transcription the share of the
    audio the engine got through. Never goes back within a run (a new run may)."""
    if rec.state == TaskState.DELIVERED:
        return 100
    if rec.state in (TaskState.QUEUED, TaskState.FAILED, TaskState.ABORTED) or not rec.stage:
        return 0
    try:
        stage = Stage(rec.stage)
        start = _STAGE_PERCENT[stage]
    except (ValueError, KeyError):
        return 0  # a stage of a newer version, or REPORT_ERROR
    fraction = rec.progress
    if stage in (Stage.TRANSCRIBE, Stage.WAITING_FOR_DECODER) and fraction is not None:
        if not 0.0 <= fraction <= 1.0:  # also NaN
            fraction = 1.0 if fraction > 1.0 else 0.0
        return int(_STAGE_PERCENT[Stage.TRANSCRIBE] + _TRANSCRIBE_SPAN * fraction)
    return start
