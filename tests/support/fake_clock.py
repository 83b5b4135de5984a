"""A clock that moves only when a test (or a sleeping pipeline) moves it."""

from __future__ import annotations

import threading
import time


class FakeClock:
    """Starts at the real wall time, so times it computes compare sensibly with the
    store's own. `wait` blocks for real but only briefly (a spurious wake-up, which
    callers re-check), so a keeper thread acts once its interval has been `advance`d."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = time.time()
        self._monotonic = 1000.0
        self.slept: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self._monotonic += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(min(timeout, 0.01))
