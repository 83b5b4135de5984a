"""The running service: a poller that records what Kaltura offers, and workers that
claim recorded tasks from the store and run them through the pipeline.

The poller never hands tasks to workers directly; everything goes through the store, so
a task seen once is never lost, whatever happens to this process afterwards.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from processors.base import Processor
from processors.routing import ProcessorPool
from reach_vendor.config import ConfigError, Settings
from reach_vendor.kaltura.gateway import KalturaApiError, KalturaGateway, KalturaTransientError
from reach_vendor.pipeline import Pipeline
from reach_vendor.store import TaskStore
from reach_vendor.systemd import Notifier

log = logging.getLogger(__name__)


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        store: TaskStore | None = None,
        gateway: KalturaGateway | None = None,
        processor: Processor | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or TaskStore(settings.database.url)
        self.gateway = gateway or KalturaGateway(
            settings.kaltura, settings.kaltura.app_token.resolve_token()
        )
        self.processors = (
            load_processors(settings) if processor is None else ProcessorPool.fixed(processor)
        )
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.pipeline = Pipeline(settings, self.store, self.gateway, self.processors, self.owner)
        self.shutdown = threading.Event()
        self._wake = threading.Condition()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self.last_poll_error: str | None = None

    # -- polling --------------------------------------------------------------------

    def poll(self) -> int:
        """One getJobs sweep; returns how many new tasks were recorded."""
        try:
            offered = self.gateway.fetch_jobs()
        except (KalturaApiError, KalturaTransientError) as exc:
            self.last_poll_error = str(exc)
            log.error("getJobs failed: %s", exc)
            return 0
        self.last_poll_error = None
        new = self.store.record_offered(offered)
        if offered:
            log.info("getJobs offered %d tasks, %d new", len(offered), new)
        with self._wake:
            self._wake.notify_all()
        return new

    # -- workers --------------------------------------------------------------------

    def _work_one(self, name: str) -> bool:
        rec = self.store.claim_next(self.owner, self.settings.workers.lease_s)
        if rec is None:
            return False
        with self._busy_lock:
            self._busy += 1
        try:
            self.pipeline.run(rec, self.shutdown)
        finally:
            with self._busy_lock:
                self._busy -= 1
        return True

    def _worker_loop(self, name: str) -> None:
        while not self.shutdown.is_set():
            try:
                worked = self._work_one(name)
            except Exception:
                log.exception("worker %s: unexpected error", name)
                worked = False
            if not worked:
                with self._wake:
                    self._wake.wait(timeout=1.0)

    def _start_workers(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self._worker_loop, args=(f"w{i}",), name=f"worker-{i}")
            for i in range(self.settings.workers.concurrency)
        ]
        for t in threads:
            t.start()
        return threads

    # -- modes ----------------------------------------------------------------------

    def run_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Poll on schedule and work until `stop()`; in-flight tasks are released."""
        scheduler = BackgroundScheduler(timezone="UTC")
        scheduler.add_job(
            self.poll,
            "interval",
            seconds=self.settings.polling.interval_s,
            max_instances=1,
            coalesce=True,
            id="getJobs",
            next_run_time=_now_utc(),
        )
        notifier = Notifier()
        watchdog_s = notifier.watchdog_interval_s()
        if watchdog_s:
            scheduler.add_job(notifier.watchdog, "interval", seconds=watchdog_s, id="watchdog")
        threads = self._start_workers()
        scheduler.start()
        log.info(
            "reach-vendor running: polling every %ss, %d workers",
            self.settings.polling.interval_s,
            self.settings.workers.concurrency,
        )
        notifier.ready(f"polling every {self.settings.polling.interval_s}s")
        if on_ready:
            on_ready()
        try:
            self.shutdown.wait()
        finally:
            notifier.stopping()
            scheduler.shutdown(wait=False)
            self._stop_workers(threads)

    def run_once(self) -> None:
        """One poll, then work until nothing runnable is left (tasks waiting for a retry
        time in the future stay for the next run)."""
        self.poll()
        threads = self._start_workers()
        try:
            while not self.shutdown.is_set():
                with self._busy_lock:
                    busy = self._busy
                if busy == 0 and self.store.runnable_count() == 0:
                    break
                time.sleep(0.2)
        finally:
            self.shutdown.set()
            self._stop_workers(threads)

    def stop(self) -> None:
        self.shutdown.set()
        with self._wake:
            self._wake.notify_all()

    def _stop_workers(self, threads: list[threading.Thread]) -> None:
        with self._wake:
            self._wake.notify_all()
        for t in threads:
            t.join(timeout=60)
        log.info("reach-vendor stopped")


def _now_utc() -> datetime:
    return datetime.now(UTC)


def load_processors(settings: Settings) -> ProcessorPool:
    """Every engine a task can be routed to, created now: a bad engine option (a model
    directory that is not there) is a config error at start-up, not a failed task later."""
    pool = settings.processors.pool()
    for name in pool.referenced():
        try:
            pool.get(name)
        except ValueError as exc:
            raise ConfigError(f"processors.engines.{name}: {exc}") from None
    return pool
