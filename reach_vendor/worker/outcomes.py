"""How a task's run ends when it does not end delivered: every exception a run (or its
keeper) meets is sorted here, in one place, into what happens to the task."""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass
from enum import Enum

from reach_vendor.common.redact import redact
from reach_vendor.engines.base import ProcessingCancelled, ProcessorError, ProcessorUnavailable
from reach_vendor.engines.remote.driver import RemoteAuthError, RemoteConfigError
from reach_vendor.kaltura.calls import KEY_NOT_EXTENDED
from reach_vendor.kaltura.gateway import (
    KalturaApiError,
    KalturaTransientError,
)

# Faults of this machine, not of the task.
_LOCAL_FAULT_ERRNOS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EMFILE: "out of file descriptors",
    errno.ENFILE: "out of file descriptors (system)",
    errno.ENOMEM: "out of memory",
    errno.EROFS: "read-only file system",
}


class TaskAborted(Exception):
    """Kaltura no longer wants this task (customer abort, re-submission, taken back)."""


class LeaseLost(Exception):
    """Another worker holds the task now: stop without touching it, since two owners
    uploading would duplicate the deliverables."""


class Ending(Enum):
    RETRY_LATER = "retry later"
    """Nobody's fault in the task (Kaltura unreachable, engine service down, a bug)."""
    FAILED = "failed"
    """The task's own fault: ERROR at Kaltura with `reason` for the customer."""
    ABORTED = "aborted"
    LOCAL_FAULT = "local fault"
    """This machine ran out of something: released, and intake paused."""
    LEASE_LOST = "lease lost"
    SHUTDOWN = "shutdown"
    """Released for the next run to resume."""


@dataclass(frozen=True)
class Outcome:
    ending: Ending
    reason: str
    alarm: str | None = None
    """What ops must look at (a refused vendor session, a bug): logged as an error."""
    vendor_side: bool = False
    """The vendor's own setup is at fault (a remote engine's credentials or configuration):
    retried without a limit, never the customer's ERROR, until ops fix it."""
    engine_fault: str | None = None
    """The engine's service could not serve (`metrics.ENGINE_FAULT_KINDS`): "credentials"
    and "config" are the vendor's to fix, "unavailable" passes by itself."""


LEASE_LOST = Outcome(Ending.LEASE_LOST, "lease lost to another worker; leaving the task to it")


def classify(
    exc: BaseException,
    *,
    watch: Outcome | None = None,
    shutting_down: bool = False,
    key_expired_at: float | None = None,
) -> Outcome:
    """What `exc` means for the task. `watch` is the keeper's verdict, if it stopped the
    work: a cancelled step was cancelled for that reason. `key_expired_at`: when the
    task's access key ran out, if it did (for the customer's reason on INVALID_KS)."""
    if isinstance(exc, LeaseLost):
        return LEASE_LOST
    if isinstance(exc, TaskAborted):
        return Outcome(Ending.ABORTED, f"aborted: {exc}")
    if isinstance(exc, ProcessingCancelled):
        if watch is not None:
            return watch
        if shutting_down:
            return Outcome(Ending.SHUTDOWN, "released at shutdown")
        return Outcome(Ending.ABORTED, "aborted by the customer while processing")
    if isinstance(exc, ProcessorError):
        return Outcome(Ending.FAILED, str(exc))
    if isinstance(exc, KalturaApiError):
        return _kaltura_refusal(exc, key_expired_at)
    if isinstance(exc, ProcessorUnavailable):
        return Outcome(
            Ending.RETRY_LATER,
            str(exc),
            alarm=exc.alarm,
            vendor_side=exc.alarm is not None,
            engine_fault=_engine_fault(exc),
        )
    if isinstance(exc, KalturaTransientError):
        return Outcome(Ending.RETRY_LATER, str(exc))
    fault = local_fault(exc)
    if fault is not None:
        return Outcome(Ending.LOCAL_FAULT, fault)
    reason = f"internal error: {type(exc).__name__}: {redact(str(exc))}"
    return Outcome(Ending.RETRY_LATER, reason, alarm="unexpected error")


def _engine_fault(exc: ProcessorUnavailable) -> str:
    if isinstance(exc, RemoteAuthError):
        return "credentials"
    # Another engine's alarm is also its setup: its configuration is what ops can change.
    if isinstance(exc, RemoteConfigError) or exc.alarm is not None:
        return "config"
    return "unavailable"


def _kaltura_refusal(exc: KalturaApiError, key_expired_at: float | None) -> Outcome:
    if exc.code == KEY_NOT_EXTENDED:
        return Outcome(Ending.ABORTED, f"aborted: Kaltura no longer has the task PROCESSING: {exc}")
    if exc.task_gone:  # aborted, final, or no longer PROCESSING
        return Outcome(Ending.ABORTED, f"Kaltura no longer offers the task: {exc}")
    if exc.vendor_setup:
        reason = f"Kaltura refused the vendor's request: {exc}"
        return Outcome(Ending.RETRY_LATER, reason, alarm="Kaltura refused the vendor")
    if exc.dead_key:
        # The key could not be replaced; ERROR goes through the vendor session, which
        # does not need it.
        if key_expired_at is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(key_expired_at))
            return Outcome(
                Ending.FAILED,
                f"the task's access key expired at {when} and could not be renewed",
            )
        return Outcome(
            Ending.FAILED,
            "Kaltura refused the task's access key (INVALID_KS) and a new one did not help",
        )
    return Outcome(Ending.FAILED, f"Kaltura rejected a request: {exc}")


def watch_verdict(exc: Exception) -> Outcome | None:
    """The keeper's reading of a failed check: an abort stops the work; anything else
    (Kaltura unreachable for a moment) is for the run itself to meet, not the keeper."""
    outcome = classify(exc)
    if outcome.ending is not Ending.ABORTED:
        return None
    return Outcome(Ending.ABORTED, f"{outcome.reason} while processing")


def local_fault(exc: BaseException) -> str | None:
    """What ran out on this machine, if `exc` (or what caused it) says so."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _LOCAL_FAULT_ERRNOS:
            return _LOCAL_FAULT_ERRNOS[current.errno]
        current = current.__cause__ or current.__context__
    return None
