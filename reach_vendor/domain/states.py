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
    """KalturaVendorServiceFeature (KalturaApiClient 23.10.0)."""

    CAPTIONS = 1
    TRANSLATION = 2
    ALIGNMENT = 3
    AUDIO_DESCRIPTION = 4
    CHAPTERING = 5
    INTELLIGENT_TAGGING = 6
    DUBBING = 7
    LIVE_CAPTION = 8
    EXTENDED_AUDIO_DESCRIPTION = 9
    CLIPS = 10
    LIVE_TRANSLATION = 11
    QUIZ = 12
    SUMMARY = 13
    VIDEO_ANALYSIS = 14
    MODERATION = 15
    METADATA_ENRICHMENT = 16
    SENTIMENT_ANALYSIS = 17
    DOCUMENT_ENRICHMENT = 18
    SIGN_LANGUAGE = 19
    SPEECH_TO_VIDEO = 20


class ServiceType(IntEnum):
    """KalturaVendorServiceType."""

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
    WAITING_FOR_DECODER = "wait_decoder"
    """Waiting for a free child process to decode media or run an engine in (more tasks
    than cores): before decode, before transcribe, or within it for a helper engine."""
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


_REOPEN_TARGETS = frozenset({TaskState.QUEUED, TaskState.RUNNING})


def check_reopen(current: TaskState, target: TaskState) -> None:
    """The one deliberate way out of a final state (a re-submission, a fresh key, an
    operator's retry while Kaltura still wants the task); `check_transition` forbids it."""
    if current not in TERMINAL or target not in _REOPEN_TARGETS:
        raise IllegalTransition(f"task cannot be reopened from {current} to {target}")


def sources_of(target: TaskState) -> list[str]:
    """The states a task may be in to move to `target` (for a conditional UPDATE)."""
    return sorted(state.value for state, targets in _ALLOWED.items() if target in targets)


def retry_delay_s(attempt: int, base_s: float, cap_s: float = 3600.0) -> float:
    """Exponential backoff: base, 2*base, 4*base ... capped (jitter is added by callers)."""
    return float(min(cap_s, base_s * (2 ** max(0, attempt - 1))))
