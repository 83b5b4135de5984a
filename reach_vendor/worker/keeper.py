"""One thread per task run that keeps the task ours: it renews the lease, extends the
access key ahead of its known life and watches Kaltura's status, and on a lost lease, an
abort or shutdown sets the run's `cancel` event with its verdict."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from reach_vendor.common.clock import Clock
from reach_vendor.common.redact import redact
from reach_vendor.domain.states import KalturaStatus, status_name
from reach_vendor.engines.base import ProcessingCancelled
from reach_vendor.kaltura.gateway import TaskKey
from reach_vendor.store.tasks import TaskRecord, TaskStore
from reach_vendor.worker.outcomes import LEASE_LOST, Ending, Outcome, watch_verdict
from reach_vendor.worker.ports import TaskGateway

log = logging.getLogger(__name__)

_SHUTDOWN_CHECK_S = 0.2


class TaskKeeper(threading.Thread):
    def __init__(
        self,
        *,
        store: TaskStore,
        gateway: TaskGateway,
        clock: Clock,
        record: Callable[[], TaskRecord],
        key: Callable[[], TaskKey],
        owner: str,
        lease_s: float,
        key_margin_s: float,
        interval_s: float,
        shutdown: threading.Event,
        log_extra: dict[str, Any],
    ) -> None:
        rec = record()
        super().__init__(name=f"keeper-{rec.kaltura_task_id}", daemon=True)
        self.store, self.gateway, self.clock = store, gateway, clock
        self._record, self._key = record, key
        self.owner, self.lease_s = owner, lease_s
        self.key_margin_s, self.interval_s = key_margin_s, interval_s
        self.shutdown = shutdown
        self.log_extra = log_extra
        self.cancel = threading.Event()
        """Set when the work must stop: every step of the run watches it."""
        self.verdict: Outcome | None = None
        """Why the keeper stopped the work (shutdown is the run's to tell)."""
        self._stopped = threading.Event()
        self._watching = True
        self._watch_lock = threading.Lock()
        """Held by a check while it calls Kaltura, so `stop_watching` waits it out."""

    def begin(self) -> None:
        """Extend a key that is due now (an abort is raised here, before any work), then
        watch in the background until `stop`."""
        self.extend_key_if_due()
        self.start()

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join(timeout=5)

    def stop_watching(self) -> None:
        """From here on only the lease is renewed: READY kills the access key
        (kReachManager::invalidateAccessKey), and a check with it would meet INVALID_KS and
        try to extend a finished task's key. Returns once no check is calling Kaltura."""
        with self._watch_lock:
            self._watching = False

    def raise_verdict(self) -> None:
        """Stop the run between steps as a cancelled step would (the run's outcome is
        then the verdict); shutdown does not stop a run whose transcript is made."""
        if self.verdict is not None:
            raise ProcessingCancelled()

    def run(self) -> None:
        last = self.clock.monotonic()
        while not self.clock.wait(self._stopped, _SHUTDOWN_CHECK_S):
            if self.shutdown.is_set():
                self.cancel.set()
                return
            if self.clock.monotonic() - last < self.interval_s:
                continue
            last = self.clock.monotonic()
            try:
                verdict = self._check()
            except Exception as exc:  # the keeper must never end the task on its own
                verdict = watch_verdict(exc)
                if verdict is None:
                    log.warning("keeper check failed: %s", redact(str(exc)), extra=self.log_extra)
            if verdict is not None:
                self.verdict = verdict
                self.cancel.set()
                return

    def extend_key_if_due(self) -> None:
        """Extend the access key (vendor session) when its known life ends within the
        margin. Real keys are KS v2, whose expiry the vendor cannot read: the run's key
        keeps it from Kaltura's rule (creation or last extension plus the catalog item's
        life). A worker that replaced it meanwhile makes this a no-op."""
        key = self._key()
        seen, expires = key.current()
        if expires is not None and expires - self.clock.now() >= self.key_margin_s:
            return
        if self.gateway.renew_access_key(key, seen):
            log.info("access key extended", extra=self.log_extra)

    def _check(self) -> Outcome | None:
        if not self.store.renew_lease(self._record().id or 0, self.owner, self.lease_s):
            return LEASE_LOST
        with self._watch_lock:
            if not self._watching:
                return None
            self.extend_key_if_due()
            status, version = self.gateway.task_status_and_version(self._key())
        reason = unwanted_reason(self._record(), status, version)
        if reason is None:
            return None
        return Outcome(Ending.ABORTED, f"aborted: {reason} while processing")


def unwanted_reason(rec: TaskRecord, status: int, version: int) -> str | None:
    """Why Kaltura's status and version say this run is no longer wanted, or None."""
    if status != KalturaStatus.PROCESSING:
        return f"Kaltura reports {status_name(status)}"
    if version != rec.version:
        return resubmitted(rec.version, version)
    return None


def resubmitted(old: int, new: int) -> str:
    return f"re-submitted by the customer (version {old} -> {new})"
