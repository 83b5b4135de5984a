"""The local life of a REACH task, as plain data: states, stages and legal moves.

Kaltura's own status (PENDING, PROCESSING, READY, ERROR, ABORTED) is what the customer
sees; ours adds what the vendor needs to never lose or duplicate work: whether the task
is still ours to do, and which stage of the pipeline it reached. No I/O here.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class KalturaStatus(IntEnum):
    """KalturaEntryVendorTaskStatus."""

    PENDING = 1
    READY = 2
    PROCESSING = 3
    PENDING_MODERATION = 4
    REJECTED = 5
    ERROR = 6
    ABORTED = 7
    PENDING_ENTRY_READY = 8
    SCHEDULED = 9


def status_name(value: int) -> str:
    """Readable status for messages, tolerant of values newer than this code."""
    try:
        return KalturaStatus(value).name
    except ValueError:
        return f"status {value}"


class ServiceFeature(IntEnum):
    CAPTIONS = 1
    TRANSLATION = 2
    ALIGNMENT = 3


class ServiceType(IntEnum):
    HUMAN = 1
    MACHINE = 2
    HYBRID = 3


class TaskState(StrEnum):
    QUEUED = "queued"
    """Seen in getJobs, not yet started in Kaltura."""
    RUNNING = "running"
    """Set to PROCESSING in Kaltura; somewhere in the pipeline."""
    DELIVERED = "delivered"
    """Deliverable uploaded and the task set READY."""
    FAILED = "failed"
    """Reported to Kaltura as ERROR."""
    ABORTED = "aborted"
    """The customer aborted it, or Kaltura no longer offers it to us."""


class Stage(StrEnum):
    """Where a running task is; recorded so a restart resumes at the right place."""

    CLAIM = "claim"
    DOWNLOAD = "download"
    DECODE = "decode"
    TRANSCRIBE = "transcribe"
    UPLOAD = "upload"
    FINISH = "finish"
    REPORT_ERROR = "report_error"
    """The task failed but Kaltura could not be told yet; only the ERROR report remains."""


TERMINAL = frozenset({TaskState.DELIVERED, TaskState.FAILED, TaskState.ABORTED})

_ALLOWED: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.RUNNING, TaskState.FAILED, TaskState.ABORTED}),
    TaskState.RUNNING: frozenset(
        {TaskState.RUNNING, TaskState.DELIVERED, TaskState.FAILED, TaskState.ABORTED}
    ),
    TaskState.DELIVERED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.ABORTED: frozenset(),
}


class IllegalTransition(Exception):
    pass


def check_transition(current: TaskState, target: TaskState) -> None:
    if target not in _ALLOWED[current]:
        raise IllegalTransition(f"task cannot go from {current} to {target}")


def sources_of(target: TaskState) -> list[str]:
    """The states a task may be in to move to `target` (for a conditional UPDATE)."""
    return sorted(state.value for state, targets in _ALLOWED.items() if target in targets)


def retry_delay_s(attempt: int, base_s: float, cap_s: float = 3600.0) -> float:
    """Exponential backoff: base, 2*base, 4*base ... capped (jitter is added by callers)."""
    return float(min(cap_s, base_s * (2 ** max(0, attempt - 1))))
