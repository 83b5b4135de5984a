"""Prometheus instruments: event counters fed by one-line hooks from every layer.

Counters and histograms (Kaltura calls, stage durations, finished tasks, access-key
extensions, polls) count what *this process* did; Prometheus sums them over replicas.
Gauges that describe the queue (tasks by state, queue depth, oldest open task, deadline
slack) are computed from the database at scrape time (`ops.metrics`). Label values are fixed sets
(action names, stages, states, features) plus the partner id; never task ids or secrets.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from reach_vendor import __version__
from reach_vendor.domain.states import ServiceFeature, TaskState

# `_created` series double the exposition for no alerting value.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry()

# CPU, memory, open fds and start time of the daemon (process_*), and the Python version.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

KALTURA_SECONDS = Histogram(
    "reach_vendor_kaltura_request_duration_seconds",
    "Time one Kaltura API request took (each retry counts), by service.action.",
    ["action"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
KALTURA_REQUESTS = Counter(
    "reach_vendor_kaltura_requests",
    "Kaltura API requests sent (each retry counts), by service.action.",
    ["action"],
    registry=REGISTRY,
)
KALTURA_ERRORS = Counter(
    "reach_vendor_kaltura_errors",
    "Kaltura API requests that failed: kind=api (Kaltura said no) or transport (unreachable).",
    ["action", "kind"],
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "reach_vendor_stage_duration_seconds",
    "Time a task spent in one pipeline stage.",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
    registry=REGISTRY,
)
TASKS_FINISHED = Counter(
    "reach_vendor_tasks_finished",
    "Tasks that reached a final state in this process, by the engine that ran them.",
    ["state", "feature", "partner", "engine"],
    registry=REGISTRY,
)
TASK_FAILURES = Counter(
    "reach_vendor_task_failures",
    "Tasks that ended in ERROR at Kaltura, by kind of reason (a fixed set; the full reason "
    "is in the task's history).",
    ["reason"],
    registry=REGISTRY,
)
# First match wins; the messages come from worker.media, the engines and worker.outcomes.
_FAILURE_KINDS = (
    ("media_download", ("media download failed",)),
    ("media_decode", ("decode", "audio stream", "no audio", "media")),
    ("access_key", ("access key", "invalid_ks")),
    ("kaltura_rejected", ("kaltura rejected", "kaltura refused")),
    ("unsupported", ("unsupported", "not supported", "does not support", "language")),
    ("engine", ("transcript", "job", "engine", "vault", "alteryx", "amazon", "smartdocumentor")),
)
FAILURE_REASONS = (*(kind for kind, _ in _FAILURE_KINDS), "other")
DELIVERY_SLACK_SECONDS = Histogram(
    "reach_vendor_delivery_deadline_slack_seconds",
    "expectedFinishTime minus delivery time for delivered tasks (negative: late).",
    buckets=(-86400, -3600, -600, 0, 600, 3600, 4 * 3600, 24 * 3600, 7 * 86400),
    registry=REGISTRY,
)
ACCESS_KEY_EXTENSIONS = Counter(
    "reach_vendor_access_key_extensions",
    "Task access keys extended before they expired.",
    registry=REGISTRY,
)
POLLS = Counter(
    "reach_vendor_polls",
    "getJobs sweeps, by outcome (ok or error).",
    ["outcome"],
    registry=REGISTRY,
)
OFFERS_SKIPPED = Counter(
    "reach_vendor_offers_skipped",
    "getJobs entries that could not be read or stored (skipped; the others were recorded).",
    ["reason"],
    registry=REGISTRY,
)
LOCAL_FAULTS = Counter(
    "reach_vendor_local_faults",
    "Faults of this machine (disk full, out of file descriptors...) that paused intake; "
    "the tasks they hit were released, not failed.",
    ["kind"],
    registry=REGISTRY,
)
INTAKE_PAUSED = Gauge(
    "reach_vendor_intake_paused",
    "1 while this process takes no new work after a fault of its machine.",
    registry=REGISTRY,
)
DRAINING = Gauge(
    "reach_vendor_draining",
    "1 while this process takes no new tasks and lets running ones finish: a drain asked "
    "through the status API, or a stop (SIGTERM) in progress.",
    registry=REGISTRY,
)
ENGINE_FAULTS = Counter(
    "reach_vendor_engine_faults",
    "Task runs an engine's service could not serve, retried later, by configured engine "
    "name and kind: credentials (the vendor's refused) and config (a request built from "
    "the engine's configuration refused) wait for ops; unavailable passes by itself.",
    ["engine", "kind"],
    registry=REGISTRY,
)
ENGINE_FAULT_KINDS = ("credentials", "config", "unavailable")
LAST_POLL_OK = Gauge(
    "reach_vendor_last_successful_poll_timestamp_seconds",
    "Unix time of the last getJobs sweep that succeeded in this process.",
    registry=REGISTRY,
)
TASKS_WAITING_FOR_CHILD = Gauge(
    "reach_vendor_tasks_waiting_for_child",
    "Tasks in this process waiting for a free child process to decode media or run an "
    "engine in (more tasks than child processes).",
    registry=REGISTRY,
)
MEDIA_TRANSCRIBED = Counter(
    "reach_vendor_media_transcribed_seconds",
    "Seconds of media the engines got through, as they report progress; rate() gives "
    "seconds of media transcribed per second.",
    registry=REGISTRY,
)
BUILD = Info("reach_vendor_build", "Version of the running daemon.", registry=REGISTRY)
BUILD.info({"version": __version__})

_stage_lock = threading.Lock()
_stage_open: dict[int, tuple[str, float]] = {}


def kaltura_request(action: str) -> None:
    KALTURA_REQUESTS.labels(action=action).inc()


def kaltura_request_seconds(action: str, seconds: float) -> None:
    KALTURA_SECONDS.labels(action=action).observe(seconds)


def kaltura_error(action: str, kind: str) -> None:
    KALTURA_ERRORS.labels(action=action, kind=kind).inc()


def local_fault(kind: str) -> None:
    LOCAL_FAULTS.labels(kind=kind).inc()


def offer_skipped(reason: str) -> None:
    OFFERS_SKIPPED.labels(reason=reason).inc()


def engines_configured(engines: list[str]) -> None:
    """Every series of `ENGINE_FAULTS` at 0 from the start: Prometheus' increase() misses
    the first fault of a series that appears with it."""
    for engine in engines:
        for kind in ENGINE_FAULT_KINDS:
            ENGINE_FAULTS.labels(engine=engine, kind=kind)


def engine_fault(engine: str, kind: str) -> None:
    """`engine`: a configured engine name (a bounded set); `kind`: one of
    `ENGINE_FAULT_KINDS`."""
    ENGINE_FAULTS.labels(engine=engine, kind=kind).inc()


def poll_done(ok: bool) -> None:
    POLLS.labels(outcome="ok" if ok else "error").inc()
    if ok:
        LAST_POLL_OK.set(time.time())


def stage_started(task_id: int, stage: str) -> None:
    """Close the task's previous stage (observing its duration) and open `stage`.

    A new run of a task starts at the claim stage; whatever a previous, interrupted run
    left open is dropped rather than counted as one very long stage.
    """
    now = time.monotonic()
    with _stage_lock:
        previous = _stage_open.get(task_id)
        _stage_open[task_id] = (stage, now)
    if previous is not None and stage != "claim":
        STAGE_SECONDS.labels(stage=previous[0]).observe(now - previous[1])


class FinishedTask(Protocol):
    """What `task_finished` reads of a task record."""

    @property
    def id(self) -> int | None: ...
    @property
    def state(self) -> str: ...
    @property
    def service_feature(self) -> int | None: ...
    @property
    def partner_id(self) -> int: ...
    @property
    def expected_finish_time(self) -> float | None: ...
    @property
    def finished_at(self) -> float | None: ...
    @property
    def processor(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...


def task_finished(rec: FinishedTask) -> None:
    """Count a task that reached a final state and close its last stage."""
    assert rec.id is not None
    with _stage_lock:
        previous = _stage_open.pop(rec.id, None)
    if previous is not None:
        STAGE_SECONDS.labels(stage=previous[0]).observe(time.monotonic() - previous[1])
    TASKS_FINISHED.labels(
        state=rec.state,
        feature=feature_name(rec.service_feature),
        partner=str(rec.partner_id),
        engine=rec.processor or "none",  # a configured engine name: a bounded set
    ).inc()
    if rec.state == TaskState.FAILED:
        TASK_FAILURES.labels(reason=failure_reason(rec.error)).inc()
    if rec.state == TaskState.DELIVERED and rec.expected_finish_time and rec.finished_at:
        DELIVERY_SLACK_SECONDS.observe(rec.expected_finish_time - rec.finished_at)


def failure_reason(error: str | None) -> str:
    """The kind of a failure's reason, one of `FAILURE_REASONS` whatever the text."""
    text = (error or "").lower()
    for kind, words in _FAILURE_KINDS:
        if any(w in text for w in words):
            return kind
    return "other"


def feature_name(value: int | None) -> str:
    if value is None:
        return "unknown"
    try:
        return ServiceFeature(value).name.lower()
    except ValueError:
        return str(value)
