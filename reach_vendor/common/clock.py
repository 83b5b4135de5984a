"""Time as the worker reads it, injected so that tests can run hours of leases and
backoffs without sleeping."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (what the store and Kaltura compare)."""
        ...

    def monotonic(self) -> float:
        """Seconds for measuring intervals; unaffected by clock changes."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait for `event` at most `timeout` seconds; True if it is set. May return
        early, so callers re-check their own deadlines."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(timeout)


SYSTEM_CLOCK: Clock = SystemClock()
