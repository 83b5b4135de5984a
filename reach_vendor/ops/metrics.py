"""Serving /metrics: the process's instruments (`common.metrics`) and queue gauges computed
from the store on every scrape, so they are right after a restart and the same whichever
replica is scraped."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from reach_vendor.common.metrics import REGISTRY, feature_name
from reach_vendor.store import queries as ops_queries
from reach_vendor.store.tasks import TaskStore
from reach_vendor.worker.config import MetricsConfig


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
            window = ops_queries.FINISHED_WINDOW_S
            snap = ops_queries.snapshot(self.store, finished_window_s=window)
        except Exception:  # a scrape must not fail because the database is down
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        tasks = GaugeMetricFamily(
            "reach_vendor_tasks",
            "Open tasks by local state, service feature and customer partner; delivered, "
            "failed and aborted ones only if they finished in the last 24 hours.",
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
