"""A transcription's progress, passed on while it runs: to the store (status API, ops page,
`reach-vendor tasks`), to a metric, and to a periodic log line, so long work is never silent.

Engines report progress per block of audio, from inside their work: `report` only keeps
the figure, and a thread of the task's own writes and logs it on its own schedule, so
neither the database nor the log slows recognition down.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from types import TracebackType
from typing import Any

from reach_vendor.common import metrics
from reach_vendor.common.redact import redact
from reach_vendor.store.tasks import TaskStore

log = logging.getLogger(__name__)

WRITE_INTERVAL_S = 3.0
"""At most one progress write per task this often: a bar needs no more, the database
serves every task."""


class TranscriptionProgress:
    """Used as `with progress: ...` around one transcription; `report` is the request's
    progress callback (any thread)."""

    def __init__(
        self,
        store: TaskStore,
        task_id: int,
        owner: str,
        duration_s: float,
        *,
        log_extra: dict[str, Any],
        log_interval_s: float,
        write_interval_s: float = WRITE_INTERVAL_S,
    ) -> None:
        self.store = store
        self.task_id = task_id
        self.owner = owner
        self.duration_s = max(0.0, duration_s)
        self.log_extra = {**log_extra, "stage": "transcribe", "media_s": round(duration_s, 1)}
        self.log_interval_s = log_interval_s
        self.write_interval_s = write_interval_s
        self.fraction = 0.0
        self._written: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()

    def report(self, fraction: float) -> None:
        """The engine got through `fraction` (0..1) of the audio. Only forward: an engine
        that goes over the audio twice (alignment, then a check) does not move the bar back."""
        if not math.isfinite(fraction):
            return
        fraction = min(1.0, max(0.0, fraction))
        with self._lock:
            gained = fraction - self.fraction
            if gained <= 0:
                return
            self.fraction = fraction
        metrics.MEDIA_TRANSCRIBED.inc(gained * self.duration_s)

    def __enter__(self) -> TranscriptionProgress:
        self._started = time.monotonic()
        self._thread = threading.Thread(
            target=self._tick, name=f"progress-{self.task_id}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _tick(self) -> None:
        next_write = self._started + self.write_interval_s
        next_log = self._started + self.log_interval_s
        while not self._stop.wait(max(0.0, min(next_write, next_log) - time.monotonic())):
            now = time.monotonic()
            if now >= next_write:
                self._write()
                next_write = now + self.write_interval_s
            if now >= next_log:
                self._log(now)
                next_log = now + self.log_interval_s

    def _write(self) -> None:
        fraction = self.fraction
        if fraction == (self._written or 0.0):
            return  # nothing new (NULL stands for nothing reported yet)
        try:
            if not self.store.set_progress(self.task_id, self.owner, fraction):
                self._stop.set()  # no longer ours: the keeper stops the run
                return
        except Exception as exc:  # a bar not updated must not cost the task
            log.warning("could not record progress: %s", redact(str(exc)), extra=self.log_extra)
            return
        self._written = fraction

    def _log(self, now: float) -> None:
        fraction = self.fraction
        log.info(
            "transcribing: %d%% done, %.0f of %.0f s of media, for %.0f s",
            int(fraction * 100),
            fraction * self.duration_s,
            self.duration_s,
            now - self._started,
            extra=self.log_extra,
        )
