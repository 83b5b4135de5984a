"""The contract between the daemon and a speech processor.

A processor turns 16 kHz mono audio into word-timed text. It knows nothing about Kaltura,
the database or captions: the daemon decodes the media, hands over a `ProcessingRequest`
and formats whatever `Transcript` comes back. Keeping the contract this small is what lets
local engines and remote job APIs be swapped per task.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict

from reach_vendor.domain.states import ServiceFeature
from reach_vendor.domain.transcript import Transcript, Word

__all__ = [
    "DetachedRequest",
    "SAMPLE_RATE",
    "ProcessingCancelled",
    "ProcessingRequest",
    "Processor",
    "ProcessorError",
    "ProcessorUnavailable",
    "Transcript",
    "UnsupportedTaskError",
    "Word",
    "process_detached",
]

SAMPLE_RATE = 16_000
"""Every processor receives signed 16-bit little-endian mono PCM at this rate."""


class ProcessorError(Exception):
    """A failure that belongs to this task (bad audio, unsupported language...).

    Its message is shown to the customer as the task's errDescription, so it must be
    readable and must not contain secrets.
    """


class UnsupportedTaskError(ProcessorError):
    """The processor cannot serve this task's feature or language."""


class ProcessorUnavailable(Exception):
    """The processor's service cannot serve now (unreachable, rate-limited, credentials
    refused): nobody's fault in the task, so the daemon retries the task later instead of
    failing it. Its message must not contain secrets either."""

    alarm: str | None = None
    """Set where the cause is the vendor's own setup (credentials, configuration), which
    waiting alone will not fix: the daemon then alerts ops as well."""


class ProcessingCancelled(Exception):
    """Raised when `ProcessingRequest.cancel` was set while the processor ran."""


@dataclass
class ProcessingRequest:
    audio_path: Path
    """Raw s16le mono PCM at SAMPLE_RATE (no header)."""
    duration_s: float
    language: str
    """Source language as Kaltura spells it in the catalog item (e.g. "English")."""
    language_code: str = ""
    """The same language as an ISO 639-1 code ("en"), for engines that take codes."""
    service_feature: int = ServiceFeature.CAPTIONS
    """A `ServiceFeature` (Kaltura's number, which may be one this daemon does not know)."""
    dictionary: str = ""
    """Customer vocabulary, one term per line (REACH `dictionary`)."""
    transcript_text: str | None = None
    """For ALIGNMENT tasks: the customer's text to align to the audio."""
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[float], None] = lambda fraction: None
    """Called with 0..1 as audio is consumed, for status pages and metrics."""
    reference: str = ""
    """Stable name of this piece of work (e.g. "reach-<partner>-<task>-v<version>"): remote
    services get it as their job name or external id, so a submission whose answer was lost
    can be found again instead of being made twice."""
    checkpoint: dict[str, Any] = field(default_factory=dict)
    """What the processor saved for this task before a restart (e.g. a remote job id)."""
    save_checkpoint: Callable[[dict[str, Any]], None] = lambda state: None
    """Persists the processor's state with the task before it returns; a remote processor
    calls it right after submitting, so a restarted daemon polls the same job again."""
    shutdown: threading.Event = field(default_factory=threading.Event)
    """Set when `cancel` is set because the daemon stops rather than the customer aborted:
    remote jobs are then left running, to be resumed after the restart."""
    run_engine: Callable[[Processor, ProcessingRequest], Transcript] = field(
        default=lambda engine, request: engine.process(request), repr=False
    )
    """How a processor runs another engine as a helper (a remote service's plain text
    aligned by pocketsphinx): the daemon runs engines that hold the GIL in a child process,
    so that helper does not stall every other task; the default runs it here."""

    def check_cancelled(self) -> None:
        if self.cancel.is_set():
            raise ProcessingCancelled()

    def detached(self) -> DetachedRequest:
        """The request's data without its callbacks and events, which cannot cross to
        another process; `process_detached` rebuilds the request from it."""
        return {
            "audio_path": self.audio_path,
            "duration_s": self.duration_s,
            "language": self.language,
            "language_code": self.language_code,
            "service_feature": self.service_feature,
            "dictionary": self.dictionary,
            "transcript_text": self.transcript_text,
            "reference": self.reference,
            "checkpoint": self.checkpoint,
        }


class DetachedRequest(TypedDict):
    audio_path: Path
    duration_s: float
    language: str
    language_code: str
    service_feature: int
    dictionary: str
    transcript_text: str | None
    reference: str
    checkpoint: dict[str, Any]


def process_detached(
    processor: Processor,
    request: DetachedRequest,
    progress: Callable[[float], None] | None = None,
) -> Transcript:
    """Run `processor` in a child process on `ProcessingRequest.detached()` data; the
    parent watches for cancellation and kills the child. `progress` is the child's end of
    the request's progress callback (it sends the fraction to the parent)."""
    rebuilt = ProcessingRequest(**request)
    if progress is not None:
        rebuilt.progress = progress
    return processor.process(rebuilt)


class Processor(Protocol):
    """A speech engine. Instances are reused across tasks and may be called from
    several worker threads; an engine that is not thread-safe must lock internally.

    An engine whose work holds Python's GIL (pure Python, or a C extension that never
    releases it) sets a class attribute `holds_gil = True` and must be picklable: the
    daemon then runs it in a child process (`reach_vendor.worker.child_processes`), so that
    several tasks use several cores instead of taking turns on one. Its progress reaches
    the daemon from there (throttled); its checkpoint callback is not called.
    """

    name: str

    def process(self, request: ProcessingRequest) -> Transcript: ...
