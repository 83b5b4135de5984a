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
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from reach_vendor.common import metrics
from reach_vendor.common.clock import SYSTEM_CLOCK, Clock
from reach_vendor.common.config_base import ConfigError
from reach_vendor.engines.base import Processor
from reach_vendor.engines.routing import ProcessorPool
from reach_vendor.kaltura.gateway import KalturaApiError, KalturaGateway, KalturaTransientError
from reach_vendor.store.leases import PURGE_ROW
from reach_vendor.store.models import OPEN_STATES
from reach_vendor.store.tasks import TaskStore
from reach_vendor.worker import saved_work
from reach_vendor.worker.config import Settings
from reach_vendor.worker.pipeline import Pipeline
from reach_vendor.worker.systemd import Notifier

log = logging.getLogger(__name__)

_HEARTBEAT = "lease-heartbeat"
PURGE_INTERVAL_S = 86400.0
PURGE_CHECK_S = 3600.0
"""How often a replica asks whether the day's purge is still to do (one gets it)."""
PURGE_BATCH = 500
STOP_NOTICE_S = 10.0
"""At most this long between systemd notices while a stop drains."""
STOP_SLACK_S = 30.0
"""Asked of systemd beyond the grace period: releasing, closing engines, exiting."""


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        store: TaskStore | None = None,
        gateway: KalturaGateway | None = None,
        processor: Processor | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store or TaskStore(
            settings.database.url,
            key_file=settings.database.key_file,
            # workers + poller + lease heartbeat + status API / metrics scrapes
            threads=settings.workers.concurrency + 3,
            migrate=True,
        )
        self.gateway = gateway or KalturaGateway(
            settings.kaltura, settings.kaltura.app_token.resolve_token()
        )
        self.processors = (
            load_processors(settings) if processor is None else ProcessorPool.fixed(processor)
        )
        metrics.engines_configured(self.processors.referenced())
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.pipeline = Pipeline(
            settings, self.store, self.gateway, self.processors, self.owner, clock=clock
        )
        self.pipeline.on_local_fault = self._pause_intake
        self._intake_paused_until = 0.0
        self.local_fault: str | None = None
        """The last fault of this machine that paused intake (for the status API)."""
        self.stopping = threading.Event()
        """Set by `stop`: no more polls or claims; running tasks go on (the drain)."""
        self.shutdown = threading.Event()
        """Set when running tasks must stop now and be released (drain time over)."""
        self.draining = threading.Event()
        """Set by `drain`: no more claims, though the daemon keeps running."""
        self._wake = threading.Condition()
        self._work_generation = 0
        """Bumped (under `_wake`) whenever new work may be in the store; an idle worker
        sleeps only if it has not changed since before its empty claim."""
        self._idle = 0
        """Workers asleep in `_idle_wait` (under `_wake`)."""
        self.idle_check_s = 1.0
        """How often an idle worker looks for work nobody woke it for (retry times come,
        leases of a dead replica run out, another replica recorded tasks)."""
        self._poll_requested = threading.Event()
        self._busy = 0
        """Tasks claimed and running (the drain API's `running`)."""
        self._claiming = 0
        """Workers asking the store for a task: `run_once` must not take one of those for
        no work left, though none of them runs a task yet."""
        self._busy_lock = threading.Lock()
        self._task_ended = threading.Event()
        """Set when a worker is done with a claim (its task's run, or nothing claimed) and at
        a stop: `run_once` looks at once whether anything is left, not at a timed check."""
        self.last_poll_error: str | None = None
        self._scheduler: BackgroundScheduler | None = None
        # Read at each scrape: the gauge cannot disagree with the status API.
        metrics.DRAINING.set_function(lambda: float(self.is_draining()))

    # -- polling --------------------------------------------------------------------

    def poll(self) -> int:
        """One getJobs sweep; returns how many new tasks were recorded. Replicas sharing
        a store take turns through its poll lock; the others skip the round."""
        while True:
            pushed = self._poll_requested.is_set()
            self._poll_requested.clear()
            new = self._poll_once(pushed)
            # A notification that arrived while getJobs was in flight may be about a task
            # that sweep did not see, and its own run was skipped (max_instances=1).
            if not self._poll_requested.is_set() or self.stopping.is_set():
                return new

    def _poll_once(self, pushed: bool) -> int:
        # A little under the interval, so scheduling jitter does not skip a round; a pushed
        # poll (POST /v1/notify) is about a task the last round cannot have seen.
        min_interval_s = 0.0 if pushed else self.settings.polling.interval_s * 0.8
        with self.store.poll_lock(min_interval_s) as ours:
            if not ours:
                log.debug("another replica is polling getJobs; skipping this round")
                return 0
            try:
                offered = self.gateway.fetch_jobs()
            except (KalturaApiError, KalturaTransientError) as exc:
                self.last_poll_error = str(exc)
                metrics.poll_done(ok=False)
                log.error("getJobs failed: %s", exc)
                self._record_poll("refused" if isinstance(exc, KalturaApiError) else "unreachable")
                return 0
            self.last_poll_error = None
            metrics.poll_done(ok=True)
            intake = self.store.intake(offered)
            new = intake.new
            self._record_poll(None)
        for skipped in intake.skipped:
            metrics.offer_skipped("unstorable")
            log.warning(
                "getJobs entry skipped (task %s): %s", skipped.kaltura_task_id, skipped.reason
            )
        if offered:
            # Kaltura offers every unfinished task again each round: only news is INFO.
            level = logging.INFO if new else logging.DEBUG
            log.log(level, "getJobs offered %d tasks, %d new", len(offered), new)
        # At least one: a re-offered task that starts over is runnable but not counted new.
        self._work_arrived(max(new, 1))
        return new

    def _record_poll(self, failure: str | None) -> None:
        """What `health` and the status API read of the polls (every replica's, in the
        store): the bookkeeping failing must not fail the sweep."""
        try:
            self.store.record_poll(self.clock.now(), failure)
        except Exception:
            log.exception("could not record the getJobs outcome in the store")

    # -- retention ------------------------------------------------------------------

    def purge_expired(self, batch: int = PURGE_BATCH) -> int:
        """Delete delivered and failed tasks older than `database.retention_days`, at most
        once a day across replicas (`claim_daily`), in batches of `batch` tasks, each its
        own short transaction, so a large first purge never holds the workers' claims
        back for long. Returns how many tasks went."""
        days = self.settings.database.retention_days
        now = self.clock.now()
        if days <= 0 or not self.store.claim_daily(PURGE_ROW, now, PURGE_INTERVAL_S):
            return 0
        cutoff = now - days * 86400.0
        total = 0
        while not self.stopping.is_set():
            deleted = self.store.purge_finished(cutoff, limit=batch)
            total += deleted
            if deleted < batch:
                break
        log.info(
            "retention: deleted %d delivered or failed tasks (and their history) finished "
            "more than %d days ago",
            total,
            days,
        )
        return total

    def _purge_job(self) -> None:
        try:
            self.purge_expired()
        except Exception:  # the next day's turn tries again
            log.exception("retention purge failed")

    def _work_arrived(self, tasks: int = 1) -> None:
        """Wake up to `tasks` idle workers now rather than at their next timed check: one
        per task, not all of them, or every idle worker claims and all but one find nothing."""
        with self._wake:
            self._work_generation += 1
            self._wake.notify(tasks)

    def poll_now(self) -> None:
        """Poll now rather than at the next interval (POST /v1/notify); a sweep already
        running goes round once more instead of being doubled."""
        self._poll_requested.set()
        scheduler = self._scheduler
        if scheduler is not None and scheduler.running:
            scheduler.modify_job("getJobs", next_run_time=_now_utc())

    # -- workers --------------------------------------------------------------------

    def _pause_intake(self, fault: str, pause_s: float) -> None:
        self.local_fault = fault
        self._intake_paused_until = max(self._intake_paused_until, self.clock.monotonic() + pause_s)
        metrics.INTAKE_PAUSED.set(1)

    def intake_paused(self) -> bool:
        if self.clock.monotonic() < self._intake_paused_until:
            return True
        metrics.INTAKE_PAUSED.set(0)
        return False

    def _work_one(self, name: str) -> bool:
        if self.intake_paused() or self.stopping.is_set() or self.draining.is_set():
            return False
        owner = f"{self.owner}/{name}"  # the heartbeat renews every `self.owner/...` lease
        # Counted from before the claim: a task claimed but not yet counted looked to
        # `run_once` like no work left at all.
        with self._busy_lock:
            self._claiming += 1
        rec = None
        try:
            rec = self.pipeline.claim(owner)
        finally:
            with self._busy_lock:
                self._claiming -= 1
                if rec is not None:
                    self._busy += 1
            if rec is None:
                self._task_ended.set()
        if rec is None:
            return False
        try:
            # Pass the wake-up on: more may be waiting than this worker was woken for.
            self._work_arrived(1)
            self.pipeline.run(rec, self.shutdown, owner)
        finally:
            with self._busy_lock:
                self._busy -= 1
            self._task_ended.set()
        return True

    def _worker_loop(self, name: str) -> None:
        while not self.stopping.is_set():
            with self._wake:
                seen = self._work_generation
            try:
                worked = self._work_one(name)
            except Exception:
                log.exception("worker %s: unexpected error", name)
                worked = False
            if not worked:
                self._idle_wait(seen, self.idle_check_s)

    def _idle_wait(self, seen: int, timeout_s: float = 1.0) -> bool:
        """Sleep until new work may be there or `timeout_s` passes; True if woken by new
        work. `seen` is the work generation read before the empty claim, so a poll that
        recorded tasks during that claim is not slept through."""
        with self._wake:
            self._idle += 1
            try:
                return (
                    self._wake.wait_for(
                        lambda: self._work_generation != seen or self.stopping.is_set(),
                        timeout=timeout_s,
                    )
                    and not self.stopping.is_set()
                )
            finally:
                self._idle -= 1

    def idle_workers(self) -> int:
        """Workers waiting for work right now."""
        with self._wake:
            return self._idle

    def _heartbeat_loop(self) -> None:
        """Keep every lease of this process alive; if the process dies they run out
        within `workers.lease_s` and other replicas take the tasks over."""
        interval = max(0.2, self.settings.workers.lease_s / 3)
        due = self.clock.monotonic() + interval
        while not self.clock.wait(self.shutdown, max(0.0, due - self.clock.monotonic())):
            if self.clock.monotonic() < due:
                continue
            due = self.clock.monotonic() + interval
            try:
                self.store.heartbeat(self.owner, self.settings.workers.lease_s)
            except Exception:
                log.exception("lease heartbeat failed")

    def _prune_work_dirs(self) -> None:
        """Work files kept for the next run of a task that has ended since go at start."""
        if self.settings.storage.keep_media:
            return

        def is_open(kaltura_task_id: int) -> bool:
            rec = self.store.by_kaltura_id(kaltura_task_id)
            return rec is not None and rec.state in OPEN_STATES

        try:
            removed = saved_work.prune(Path(self.settings.storage.work_dir) / "tasks", is_open)
        except Exception:  # leftovers cost disk space, not work
            log.exception("could not clear the work files of ended tasks")
            return
        if removed:
            log.info("removed the work files of %d ended tasks", removed)

    def _start_workers(self) -> list[threading.Thread]:
        self._prune_work_dirs()
        threads = [
            threading.Thread(target=self._worker_loop, args=(f"w{i}",), name=f"worker-{i}")
            for i in range(self.settings.workers.concurrency)
        ]
        threads.append(threading.Thread(target=self._heartbeat_loop, name=_HEARTBEAT))
        for t in threads:
            t.start()
        return threads

    # -- modes ----------------------------------------------------------------------

    def run_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Poll on schedule and work until `stop()`, then drain (`_stop_workers`)."""
        scheduler = BackgroundScheduler(timezone="UTC")
        self._scheduler = scheduler
        scheduler.add_job(
            self.poll,
            "interval",
            seconds=self.settings.polling.interval_s,
            max_instances=1,
            coalesce=True,
            id="getJobs",
            next_run_time=_now_utc(),
        )
        scheduler.add_job(
            self._purge_job,
            "interval",
            seconds=PURGE_CHECK_S,
            max_instances=1,
            coalesce=True,
            id="retention",
            next_run_time=_now_utc(),
        )
        notifier = Notifier()
        watchdog_s = notifier.watchdog_interval_s()
        if watchdog_s:
            scheduler.add_job(notifier.watchdog, "interval", seconds=watchdog_s, id="watchdog")
        self.pipeline.warm_up()
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
            self.stopping.wait()
        finally:
            notifier.stopping()
            scheduler.shutdown(wait=False)
            with self._stop_notices(notifier, watchdog_s):
                self._stop_workers(threads)
            self.pipeline.children.close()
            self.pipeline.processors.close()

    @contextmanager
    def _stop_notices(self, notifier: Notifier, watchdog_s: float | None) -> Iterator[None]:
        """Tell systemd, while the drain runs, that the stop takes the grace period.

        systemd src/core/service.c: service_set_state() stops the watchdog in any state
        outside SERVICE_STATE_WITH_WATCHDOG, so not while stopping (the pings go on anyway:
        they cost nothing); service_extend_timeout() only ever moves the stop timer later,
        so EXTEND_TIMEOUT_USEC lets a grace longer than TimeoutStopSec finish and changes
        nothing otherwise.
        """
        if not notifier.enabled:
            yield
            return
        end = self.clock.monotonic() + self.settings.workers.shutdown_grace_s
        period = min(watchdog_s or STOP_NOTICE_S, STOP_NOTICE_S)
        done = threading.Event()

        def notices() -> None:
            while True:
                left = max(0.0, end - self.clock.monotonic())
                notifier.extend_timeout(left + STOP_SLACK_S, watchdog=True)
                if self.clock.wait(done, period):
                    return

        thread = threading.Thread(target=notices, name="stop-notices", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)

    def run_once(self) -> None:
        """One poll, then work until nothing runnable is left (tasks waiting for a retry
        time in the future stay for the next run)."""
        self.pipeline.warm_up()
        self.poll()
        threads = self._start_workers()
        try:
            while not self.stopping.is_set():
                self._task_ended.clear()
                with self._busy_lock:
                    busy = self._busy + self._claiming
                if busy == 0 and self.store.runnable_count() == 0:
                    break
                # Every task's end sets the event; the timeout is only a safety net.
                self.clock.wait(self._task_ended, 1.0)
        finally:
            self.stopping.set()
            self._stop_workers(threads)
            self.pipeline.children.close()
            self.pipeline.processors.close()

    def drain(self, start: bool = True) -> dict[str, int | bool]:
        """Take no more tasks until restarted, and say how many still run (status API
        /v1/drain): a deploy that waits for none restarts without cutting work short."""
        if start and not self.draining.is_set():
            self.draining.set()
            log.warning("draining on request: no new tasks until the next start")
        with self._busy_lock:
            running = self._busy
        return {"draining": self.is_draining(), "running": running}

    def is_draining(self) -> bool:
        """Taking no new tasks until the next start: a drain asked for, or a stop."""
        return self.draining.is_set() or self.stopping.is_set()

    def stop(self) -> None:
        """Drain: take no more tasks and let running ones finish (SIGTERM). A second call
        (a second signal) releases running tasks at once."""
        if self.stopping.is_set():
            self.shutdown.set()
        self.stopping.set()
        self._task_ended.set()
        with self._wake:
            self._wake.notify_all()

    def _stop_workers(self, threads: list[threading.Thread]) -> None:
        """Let running tasks finish for the grace period less `release_s`, then stop and
        release what is left (keeping its work files for the next start) in `release_s`.
        One grace period for all workers, kept below systemd's TimeoutStopSec."""
        with self._wake:
            self._wake.notify_all()
        workers = self.settings.workers
        start = self.clock.monotonic()
        end = start + workers.shutdown_grace_s
        drain_end = end - min(workers.release_s, workers.shutdown_grace_s)
        with self._busy_lock:
            busy_count = self._busy
        if busy_count and not self.shutdown.is_set():
            log.info(
                "draining: no new tasks; %d running get %.0fs to finish",
                busy_count,
                drain_end - start,
            )
        for t in threads:
            if t.name != _HEARTBEAT:  # it keeps the running tasks' leases meanwhile
                t.join(timeout=max(0.0, drain_end - self.clock.monotonic()))
        with self._busy_lock:
            busy_count = self._busy
        if busy_count and not self.shutdown.is_set():
            log.warning("drain time over: stopping and releasing %d running tasks", busy_count)
        self.shutdown.set()
        for t in threads:
            t.join(timeout=max(0.0, end - self.clock.monotonic()))
        busy = [t.name for t in threads if t.is_alive()]
        if busy:
            log.warning("grace period over, still busy: %s; leases will expire", ", ".join(busy))
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
