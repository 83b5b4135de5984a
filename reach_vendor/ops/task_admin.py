"""Operator actions on one task: retry it, or cancel it locally. Policy, not plumbing:
the writes are `TaskStore`'s, each conditional on the task being unleased, so a worker
claiming it at the same moment cannot interleave.

Retry: an open task waiting for its backoff runs now; a FAILED or ABORTED one is taken
back only if Kaltura still has it PENDING or PROCESSING, since otherwise there is nothing
we may deliver (only the customer can re-submit it, and it then arrives through getJobs).

Cancel stops local work on an open task and never changes its Kaltura status silently:
it becomes ABORTED here, and Kaltura is told only with an explicit `report_error` reason.
A task leased by a running worker is refused: stop that daemon (it releases the task).
"""

from __future__ import annotations

from reach_vendor.domain.states import KalturaStatus, TaskState, status_name
from reach_vendor.kaltura.gateway import (
    KalturaApiError,
    KalturaGateway,
    KalturaTransientError,
    TaskKey,
)
from reach_vendor.store.queries import OPEN_STATES, is_in_flight
from reach_vendor.store.tasks import TaskRecord, TaskStore


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
        if exc.task_gone:
            raise AdminError(
                f"task {rec.kaltura_task_id}: Kaltura no longer offers it (aborted by the "
                "customer, or handed to another vendor); only the customer can order it again"
            ) from None
        raise AdminError(f"task {rec.kaltura_task_id}: cannot ask Kaltura: {exc}") from None
    except KalturaTransientError as exc:
        raise AdminError(f"task {rec.kaltura_task_id}: cannot ask Kaltura: {exc}") from None


def _done(rec: TaskRecord, written: TaskRecord | None) -> None:
    if written is None:
        raise AdminError(f"task {rec.kaltura_task_id}: changed meanwhile, try again")


def retry(store: TaskStore, gateway: KalturaGateway, kaltura_task_id: int) -> str:
    rec = _load(store, kaltura_task_id)
    assert rec.id is not None
    if rec.state in OPEN_STATES:
        _done(rec, store.make_runnable_now(rec.id, "retry requested by operator: runnable now"))
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
    message = f"retried by operator (Kaltura has it {status_name(status)})"
    _done(rec, store.reopen(rec.id, TaskState(rec.state), target, message))
    return f"task {kaltura_task_id}: {rec.state} -> {target.value}, runnable now"


def cancel(
    store: TaskStore,
    gateway: KalturaGateway | None,
    kaltura_task_id: int,
    report_error: str | None = None,
) -> str:
    rec = _load(store, kaltura_task_id)
    assert rec.id is not None
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
    _done(rec, store.cancel(rec.id, message, error=report_error))
    return f"task {kaltura_task_id}: cancelled locally; {outcome}"
