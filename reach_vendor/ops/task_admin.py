"""Operator actions on one task: retry it, or cancel it locally. Policy, not plumbing.

Retry makes a task runnable again. An open task waiting for its backoff is simply made
runnable now. A FAILED or ABORTED task is only taken back if Kaltura still has it PENDING
or PROCESSING, since otherwise there is nothing we are allowed to deliver (a task Kaltura
has as ERROR, READY or ABORTED can only be re-submitted by the customer, and then arrives
again through getJobs by itself). This is the one deliberate way out of a final state,
like the re-submission path in `TaskStore.record_offered`.

Cancel stops local work on an open task and never changes its status in Kaltura silently:
the task becomes ABORTED here (getJobs offers of the same version are then ignored) and
Kaltura is told only with an explicit `report_error` reason, which sets ERROR there. A task
leased by a running worker is refused: stop that daemon (it releases the task) or wait.
Both changes are conditional UPDATEs, so a worker claiming the task at the same moment
cannot interleave with them.
"""

from __future__ import annotations

import time

from sqlalchemy import update
from sqlmodel import Session, col, or_

from reach_vendor.domain.states import KalturaStatus, TaskState, status_name
from reach_vendor.kaltura.gateway import (
    KalturaApiError,
    KalturaGateway,
    KalturaTransientError,
    TaskKey,
)
from reach_vendor.store.queries import OPEN_STATES, is_in_flight
from reach_vendor.store.tasks import TaskEvent, TaskRecord, TaskStore


class AdminError(Exception):
    """The action was refused; the message says why in one line."""


def _load(store: TaskStore, kaltura_task_id: int) -> TaskRecord:
    rec = store.by_kaltura_id(kaltura_task_id)
    if rec is None:
        raise AdminError(f"task {kaltura_task_id}: not in the store")
    if is_in_flight(rec):
        raise AdminError(
            f"task {kaltura_task_id}: in flight on {rec.lease_owner}; stop that daemon "
            "(it releases the task) or wait for the current attempt to end"
        )
    return rec


def _kaltura_status(gateway: KalturaGateway, rec: TaskRecord) -> int:
    key = TaskKey(rec.kaltura_task_id, rec.partner_id, rec.entry_id, rec.access_key)
    try:
        return gateway.task_status_and_version(key)[0]
    except KalturaApiError as exc:
        if exc.code == "ENTRY_VENDOR_TASK_NOT_FOUND":
            raise AdminError(
                f"task {rec.kaltura_task_id}: Kaltura no longer offers it (aborted by the "
                "customer, or handed to another vendor); only the customer can order it again"
            ) from None
        raise AdminError(f"task {rec.kaltura_task_id}: cannot ask Kaltura: {exc}") from None
    except KalturaTransientError as exc:
        raise AdminError(f"task {rec.kaltura_task_id}: cannot ask Kaltura: {exc}") from None


def _write(
    store: TaskStore, rec: TaskRecord, from_states: tuple[str, ...], message: str, **values: object
) -> None:
    """Apply `values` only if the task is still in `from_states` and not leased."""
    now = time.time()
    assert rec.id is not None
    with Session(store.engine) as s:
        result = s.execute(
            update(TaskRecord)
            .where(col(TaskRecord.id) == rec.id)
            .where(col(TaskRecord.state).in_(from_states))
            .where(
                or_(col(TaskRecord.lease_owner).is_(None), col(TaskRecord.lease_expires_at) < now)
            )
            .values(updated_at=now, lease_owner=None, lease_expires_at=None, **values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            s.rollback()
            raise AdminError(f"task {rec.kaltura_task_id}: changed meanwhile, try again")
        state = str(values.get("state", rec.state))
        s.add(TaskEvent(task_id=rec.id, state=state, stage=None, message=message))
        s.commit()


def retry(store: TaskStore, gateway: KalturaGateway, kaltura_task_id: int) -> str:
    rec = _load(store, kaltura_task_id)
    if rec.state in OPEN_STATES:
        _write(
            store,
            rec,
            OPEN_STATES,
            "retry requested by operator: runnable now",
            next_attempt_at=0.0,
        )
        return f"task {kaltura_task_id}: {rec.state}, runnable now"
    if rec.state == TaskState.DELIVERED:
        raise AdminError(f"task {kaltura_task_id}: already delivered; nothing to retry")
    status = _kaltura_status(gateway, rec)
    targets = {
        int(KalturaStatus.PENDING): TaskState.QUEUED,
        int(KalturaStatus.PROCESSING): TaskState.RUNNING,
    }
    target = targets.get(status)
    if target is None:
        raise AdminError(
            f"task {kaltura_task_id}: Kaltura has it {status_name(status)}; only the customer "
            "can re-submit it"
        )
    _write(
        store,
        rec,
        (rec.state,),
        f"retried by operator (Kaltura has it {status_name(status)})",
        state=target.value,
        stage=None,
        attempts=0,
        next_attempt_at=0.0,
        error=None,
        finished_at=None,
    )
    return f"task {kaltura_task_id}: {rec.state} -> {target.value}, runnable now"


def cancel(
    store: TaskStore,
    gateway: KalturaGateway | None,
    kaltura_task_id: int,
    report_error: str | None = None,
) -> str:
    rec = _load(store, kaltura_task_id)
    if rec.state not in OPEN_STATES:
        raise AdminError(f"task {kaltura_task_id}: already {rec.state}; nothing to cancel")
    if report_error:
        assert gateway is not None
        try:
            gateway.set_error(kaltura_task_id, report_error)
        except (KalturaApiError, KalturaTransientError) as exc:
            raise AdminError(f"task {kaltura_task_id}: Kaltura refused the ERROR: {exc}") from None
        message = f"cancelled by operator; reported ERROR to Kaltura: {report_error}"
        outcome = "Kaltura has it ERROR now"
    else:
        message = "cancelled by operator; Kaltura status left as it was"
        outcome = (
            "Kaltura status NOT changed (the customer still sees it pending/processing); "
            "use --report-error REASON to tell Kaltura, or `tasks retry` to take it back"
        )
    now = time.time()
    _write(
        store,
        rec,
        OPEN_STATES,
        message,
        state=TaskState.ABORTED.value,
        stage=None,
        finished_at=now,
        error=report_error,
    )
    return f"task {kaltura_task_id}: cancelled locally; {outcome}"
