"""Prometheus metrics: event counters fed by one-line hooks, queue gauges read from the store.

Counters and histograms (Kaltura calls, stage durations, finished tasks, access-key
extensions, polls) count what *this process* did; Prometheus sums them over replicas.
Gauges that describe the queue (tasks by state, queue depth, oldest open task, deadline
slack) are computed from the database at scrape time by `StoreCollector`, so they are right
after a restart and identical whichever replica is scraped. Label values are fixed sets
(action names, stages, states, features) plus the partner id; never task ids or secrets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from reach_vendor import __version__, ops_queries
from reach_vendor.config import MetricsConfig
from reach_vendor.states import ServiceFeature, TaskState
from reach_vendor.store import TaskRecord, TaskStore

# `_created` series double the exposition for no alerting value.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY = CollectorRegistry()

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
    "Tasks that reached a final state in this process.",
    ["state", "feature", "partner"],
    registry=REGISTRY,
)
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
LAST_POLL_OK = Gauge(
    "reach_vendor_last_successful_poll_timestamp_seconds",
    "Unix time of the last getJobs sweep that succeeded in this process.",
    registry=REGISTRY,
)
BUILD = Info("reach_vendor_build", "Version of the running daemon.", registry=REGISTRY)
BUILD.info({"version": __version__})

_stage_lock = threading.Lock()
_stage_open: dict[int, tuple[str, float]] = {}


def kaltura_request(action: str) -> None:
    KALTURA_REQUESTS.labels(action=action).inc()


def kaltura_error(action: str, kind: str) -> None:
    KALTURA_ERRORS.labels(action=action, kind=kind).inc()


def local_fault(kind: str) -> None:
    LOCAL_FAULTS.labels(kind=kind).inc()


def offer_skipped(reason: str) -> None:
    OFFERS_SKIPPED.labels(reason=reason).inc()


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


def task_finished(rec: TaskRecord) -> None:
    """Count a task that reached a final state and close its last stage."""
    assert rec.id is not None
    with _stage_lock:
        previous = _stage_open.pop(rec.id, None)
    if previous is not None:
        STAGE_SECONDS.labels(stage=previous[0]).observe(time.monotonic() - previous[1])
    TASKS_FINISHED.labels(
        state=rec.state, feature=feature_name(rec.service_feature), partner=str(rec.partner_id)
    ).inc()
    if rec.state == TaskState.DELIVERED and rec.expected_finish_time and rec.finished_at:
        DELIVERY_SLACK_SECONDS.observe(rec.expected_finish_time - rec.finished_at)


def feature_name(value: int | None) -> str:
    if value is None:
        return "unknown"
    try:
        return ServiceFeature(value).name.lower()
    except ValueError:
        return str(value)


class StoreCollector(Collector):
    """Queue gauges computed from the store on every scrape."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store

    def describe(self) -> Iterable[Metric]:
        return []  # series depend on the data; do not collect at registration time

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "reach_vendor_store_up", "1 if the task store answered the scrape's queries."
        )
        try:
            snap = ops_queries.snapshot(self.store)
        except Exception:  # a scrape must not fail because the database is down
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        tasks = GaugeMetricFamily(
            "reach_vendor_tasks",
            "Tasks in the store by local state, service feature and customer partner.",
            labels=["state", "feature", "partner"],
        )
        for row in snap.by_labels:
            tasks.add_metric(
                [row.state, feature_name(row.service_feature), str(row.partner_id)], row.count
            )
        yield tasks
        yield _gauge(
            "reach_vendor_queue_depth", "Open tasks a worker could claim now.", snap.queue_depth
        )
        yield _gauge(
            "reach_vendor_tasks_in_flight", "Open tasks leased to a worker.", snap.in_flight
        )
        yield _gauge(
            "reach_vendor_tasks_retry_wait", "Open tasks waiting for a retry time.", snap.retry_wait
        )
        yield _gauge(
            "reach_vendor_oldest_open_task_age_seconds",
            "Age of the oldest task not yet delivered, failed or aborted (0 when none).",
            snap.oldest_open_age_s or 0.0,
        )
        if snap.min_deadline_slack_s is not None:
            yield _gauge(
                "reach_vendor_deadline_slack_seconds",
                "Smallest expectedFinishTime minus now over open tasks (negative: overdue).",
                snap.min_deadline_slack_s,
            )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


@contextmanager
def serve(cfg: MetricsConfig, store: TaskStore) -> Iterator[int | None]:
    """Serve /metrics while the block runs; yields the bound port (None when disabled)."""
    if not cfg.enabled:
        yield None
        return
    collector = StoreCollector(store)
    REGISTRY.register(collector)
    try:
        server, thread = start_http_server(cfg.port, addr=cfg.host, registry=REGISTRY)
    except BaseException:
        REGISTRY.unregister(collector)
        raise
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        REGISTRY.unregister(collector)
