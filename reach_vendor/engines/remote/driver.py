"""The shared remote-job driver: submit once, poll with backoff, fetch, cancel, resume.

Services differ in wire format and status words (one `RemoteBackend` each); what must be
right once lives here:

* the job is checkpointed *before* polling, so a restarted daemon polls the same job
  instead of paying for a second one;
* polling backs off but never faster than the service allows, and a briefly unreachable
  service does not fail the customer's task;
* a customer abort cancels the remote job (where the service can), a daemon shutdown
  leaves it running, to be picked up after the restart;
* staged media is removed once the job has ended, whatever the outcome.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from reach_vendor.common.redact import redact
from reach_vendor.domain.states import ServiceFeature
from reach_vendor.engines.base import (
    ProcessingCancelled,
    ProcessingRequest,
    ProcessorError,
    ProcessorUnavailable,
    Transcript,
    UnsupportedTaskError,
)
from reach_vendor.engines.remote.options import PollOptions

log = logging.getLogger(__name__)


class RemoteState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RemoteState.SUCCEEDED, RemoteState.FAILED, RemoteState.CANCELLED)


@dataclass(frozen=True)
class RemoteStatus:
    state: RemoteState
    raw: str
    """The service's own status words, kept for logs and ops."""
    reason: str = ""
    """Why a job failed or was cancelled, as the service put it (shown to the customer)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Whatever the backend needs later to fetch the outputs (output ids, links...)."""


class RemoteUnavailable(ProcessorUnavailable):
    """The service cannot answer now (network, 5xx, rate limit): try again later.

    Not a ProcessorError: it is nobody's fault and says nothing about the task, so polling
    continues and, if it lasts, the pipeline retries the task later from its checkpoint.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RemoteAuthError(ProcessorUnavailable):
    """The service rejected our credentials: a vendor configuration problem.

    Not a ProcessorError either: the customer's task is not at fault, so the pipeline
    retries it later (an operator can fix the credentials meanwhile) instead of failing it.
    """

    alarm = "a remote service refused the vendor's credentials"


class RemoteConfigError(ProcessorUnavailable):
    """The service refused a request we built from our configuration (a wrong path, id or
    host): the vendor's setup, not the customer's task, so retried later and alerted."""

    alarm = "a remote service refused a request: check the engine's configuration"


class RemoteRefused(ProcessorError):
    """The service answered 4xx (not 401/403/429) to an HTTP request; `status` says which."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


Job = dict[str, Any]
"""A backend's handle on a submitted job (at least "id"); JSON-serialisable, checkpointed."""


class RemoteBackend(Protocol):
    name: str
    min_poll_interval_s: float
    """The shortest interval between two status calls for one job that the service allows."""

    def submit(self, request: ProcessingRequest) -> Job: ...

    def find(self, request: ProcessingRequest) -> Job | None:
        """The job already submitted for `request.reference`, if the service can look it
        up: covers a crash between submitting and checkpointing."""
        ...

    def status(self, job: Job) -> RemoteStatus: ...

    def fetch(self, job: Job, status: RemoteStatus, request: ProcessingRequest) -> Transcript: ...

    def cancel(self, job: Job) -> None:
        """Stop the job at the service; a no-op where the service documents no cancel."""
        ...

    def cleanup(self, job: Job) -> None:
        """Remove what was staged for the job (media in S3...)."""
        ...

    def probe(self) -> str:
        """Try the configured credentials and addresses with calls that change nothing
        (for `check-config`); says what was checked, raises the driver's error kinds."""
        ...


@dataclass(frozen=True)
class PollPolicy:
    initial_s: float = 5.0
    max_s: float = 60.0
    factor: float = 1.5
    max_wait_s: float = 24 * 3600.0
    """A job running longer than this is given up (ERROR): services with human review can
    stall forever, and REACH tasks have a turnaround time."""
    unavailable_limit_s: float = 900.0
    """How long the service may stay unreachable before the task is retried later."""

    @classmethod
    def from_options(cls, opts: PollOptions) -> PollPolicy:
        return cls(
            initial_s=opts.poll_initial_s,
            max_s=opts.poll_max_s,
            factor=opts.poll_factor,
            max_wait_s=opts.max_wait_s,
            unavailable_limit_s=opts.unavailable_limit_s,
        )


def next_delay(
    previous_s: float | None,
    policy: PollPolicy,
    min_interval_s: float,
    retry_after_s: float | None = None,
) -> float:
    """Seconds to wait before the next status call.

    Starts at `initial_s`, grows by `factor` up to `max_s`, and never goes below the
    service's own limit or a Retry-After it sent: the limit wins over our configuration.
    """
    delay = (
        policy.initial_s if previous_s is None else min(policy.max_s, previous_s * policy.factor)
    )
    delay = max(delay, min_interval_s)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay


def as_dict(value: object) -> dict[str, Any]:
    """`value` if the service sent an object there, else an empty one: answers are read
    defensively, a missing or null field must not crash the poll loop."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


class RemoteJobProcessor:
    """A `Processor` that runs each task as a job of a remote service."""

    def __init__(self, backend: RemoteBackend, policy: PollPolicy) -> None:
        self.backend = backend
        self.policy = policy
        self.name = backend.name

    def process(self, request: ProcessingRequest) -> Transcript:
        if request.service_feature != ServiceFeature.CAPTIONS:
            raise UnsupportedTaskError(
                f"service feature {request.service_feature} is not supported by the "
                f"{self.name} engine (captions only)"
            )
        request.check_cancelled()
        resumed = request.checkpoint.get("backend") == self.name
        job = self._job(request)
        try:
            status = self._wait(request, job, resumed)
        except ProcessingCancelled:
            if not request.shutdown.is_set():
                self._cancel(request, job)
            raise
        except ProcessorError:
            # The job is gone or given up (404, max_wait_s): nothing will read the media.
            self._cleanup(job)
            raise
        if status.state == RemoteState.SUCCEEDED:
            # An unavailable service propagates with the checkpoint intact (the retry
            # fetches again); an unusable transcript ends the task, so clean up first.
            try:
                transcript = self.backend.fetch(job, status, request)
            except ProcessorError:
                self._cleanup(job)
                raise
            self._cleanup(job)
            request.progress(1.0)
            return transcript
        self._cleanup(job)
        if status.state == RemoteState.CANCELLED:
            raise ProcessorError(
                f"the {self.name} job was cancelled at the service"
                + (f": {status.reason}" if status.reason else "")
            )
        raise ProcessorError(f"the {self.name} job failed: {status.reason or status.raw}")

    def _job(self, request: ProcessingRequest) -> Job:
        saved = request.checkpoint
        if saved.get("backend") == self.name and isinstance(saved.get("job"), dict):
            job: Job = saved["job"]
            log.info("resuming %s job %s", self.name, job.get("id"))
            return job
        try:
            found = self.backend.find(request)
            if found is not None:
                log.info("found %s job %s submitted before a restart", self.name, found.get("id"))
                job = found
            else:
                job = self.backend.submit(request)
                log.info("submitted %s job %s", self.name, job.get("id"))
        except RemoteRefused as exc:
            # Submissions are built from our configuration (paths, ids, profiles); what a
            # customer's media does wrong shows up later as a failed job.
            raise RemoteConfigError(str(exc)) from None
        request.save_checkpoint({"backend": self.name, "job": job, "submitted_at": time.time()})
        return job

    def _wait(self, request: ProcessingRequest, job: Job, resumed: bool) -> RemoteStatus:
        started = time.monotonic()
        unavailable_since: float | None = None
        delay: float | None = None
        last_raw = ""
        if resumed:
            # The last status call before the restart may have been moments ago.
            request.cancel.wait(self.backend.min_poll_interval_s)
        while True:
            request.check_cancelled()
            retry_after: float | None = None
            try:
                status = self.backend.status(job)
            except RemoteUnavailable as exc:
                now = time.monotonic()
                unavailable_since = unavailable_since or now
                if now - unavailable_since > self.policy.unavailable_limit_s:
                    raise
                log.warning("%s status unavailable: %s", self.name, redact(str(exc)))
                retry_after = exc.retry_after_s
            else:
                unavailable_since = None
                if status.raw != last_raw:
                    log.info("%s job %s: %s", self.name, job.get("id"), status.raw)
                    last_raw = status.raw
                if status.state.terminal:
                    return status
                request.progress(0.5 if status.state == RemoteState.RUNNING else 0.1)
            if time.monotonic() - started > self.policy.max_wait_s:
                raise ProcessorError(
                    f"the {self.name} job did not finish within "
                    f"{self.policy.max_wait_s / 3600:.1f} h (last status: {last_raw or 'none'})"
                )
            delay = next_delay(delay, self.policy, self.backend.min_poll_interval_s, retry_after)
            request.cancel.wait(delay)

    def _cancel(self, request: ProcessingRequest, job: Job) -> None:
        try:
            self.backend.cancel(job)
            log.info("cancelled %s job %s", self.name, job.get("id"))
        except Exception as exc:  # the abort stands whatever the service says
            log.warning("could not cancel %s job: %s", self.name, redact(str(exc)))
        self._cleanup(job)
        request.save_checkpoint({})

    def probe(self) -> str:
        return self.backend.probe()

    def abandon(self, checkpoint: dict[str, Any]) -> None:
        """Cancel and clean up the job a checkpoint names: the task ended (aborted) before
        this processor ran again, and nothing else would ever stop or remove it."""
        job = checkpoint.get("job")
        if checkpoint.get("backend") != self.name or not isinstance(job, dict):
            return
        try:
            self.backend.cancel(job)
            log.info("cancelled %s job %s of an ended task", self.name, job.get("id"))
        except Exception as exc:  # the task has ended whatever the service says
            log.warning("could not cancel %s job: %s", self.name, redact(str(exc)))
        self._cleanup(job)

    def _cleanup(self, job: Job) -> None:
        try:
            self.backend.cleanup(job)
        except Exception as exc:  # leftovers cost storage, not correctness
            log.warning("could not clean up after %s job: %s", self.name, redact(str(exc)))
