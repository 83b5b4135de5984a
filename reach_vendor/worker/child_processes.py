"""CPU-heavy work on a task (media decoding, speech engines that hold the GIL) in
long-lived child processes, one job at a time per child.

Children isolate the daemon from C code crashing on a customer's file, use more than one
core (pocketsphinx never releases the GIL), and spare decoders the GIL hand-offs between
worker threads. They are forked from a fork server with PyAV and the engines preloaded,
kept for the next job, and exit when their pipe closes, so a killed daemon leaves none.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from types import ModuleType
from typing import Any, TypeVar

from reach_vendor.common import metrics
from reach_vendor.engines.base import ProcessingCancelled, ProcessorUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

_POLL_S = 0.25
"""How often a waiting worker checks its stop event and whether the child is alive."""
_PROGRESS_EVERY_S = 1.0
_PROGRESS_STEP = 0.01
"""A child sends its job's progress when it moved by this much, or else after this long:
engines report per block of audio, at most ~100 + 1/s messages reach the parent, and a
burst of blocks followed by a long decode is not held back at its first block."""
_PRELOAD = ["av", "numpy", "reach_vendor.worker.media", "reach_vendor.engines.local.pocketsphinx"]
"""Imported once by the fork server, so no child imports them per job (the decoder's PyAV
and numpy are imported where they are used: the daemon itself never decodes)."""


class ChildDied(ProcessorUnavailable):
    """The child died while working on this task (a crash, or killed for memory): the
    task is retried later and, if it keeps happening, fails with this reason."""


def _context() -> ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    # Effective only before the fork server starts, which the first child does.
    ctx.set_forkserver_preload([*_PRELOAD, *_main_imports()])
    return ctx


def _main_imports() -> list[str]:
    """The modules the parent's main module took its names from: multiprocessing runs
    that module again in every child it starts (as `__mp_main__`), and what it imports,
    imported once by the fork server, is then already there. A package's `__main__` is
    not run again; the module itself is not imported here (runpy would warn in each child)."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if main is None or (name is None and not getattr(main, "__file__", None)):
        return []  # -c or an interactive session: nothing is run again
    if isinstance(name, str) and (name == "__main__" or name.endswith(".__main__")):
        return []
    modules = set()
    for value in vars(main).values():
        module = (
            value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        )
        if isinstance(module, str) and module in sys.modules and module not in _NOT_PRELOADED:
            modules.add(module)
    return sorted(modules)


_NOT_PRELOADED = frozenset({"__main__", "__mp_main__", "builtins", "__future__"})


def _serve(conn: Connection) -> None:
    """A child's loop: run what the parent sends until the parent goes away."""
    # Ctrl-C reaches the whole process group; it is for the daemon, which decides what to
    # stop. (SIGTERM is left alone: it is how the daemon's exit stops an idle child, and
    # systemd's KillMode=mixed sends it to the daemon only.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            fn, args, with_progress = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if with_progress:
                reply: tuple[str, Any] = ("ok", fn(*args, progress=_ProgressSender(conn)))
            else:
                reply = ("ok", fn(*args))
        except Exception as exc:
            reply = ("raised", exc)
        try:
            try:
                conn.send(reply)
            except (pickle.PicklingError, TypeError, AttributeError):
                conn.send(("raised", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}")))
        except OSError:
            # The daemon went away (SIGKILLed) while we worked: nobody is left to tell, and
            # a traceback from every orphaned child would only bury the daemon's own lines.
            return


class _ProgressSender:
    """The child's end of a job's progress callback: ("progress", fraction) messages on the
    job's pipe (throttled, see `_PROGRESS_STEP`), ahead of the job's reply."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sent_at = float("-inf")
        self.last = 0.0

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        moved = abs(fraction - self.last)
        if not (moved >= _PROGRESS_STEP or (moved > 0 and now - self.sent_at >= _PROGRESS_EVERY_S)):
            return  # also NaN, which compares false
        self.sent_at, self.last = now, fraction
        # The parent went away (its job is then killed), or not a number: no bar, same job.
        with contextlib.suppress(OSError, TypeError, ValueError):
            self.conn.send(("progress", float(fraction)))


class _Child:
    def __init__(self, ctx: ForkServerContext) -> None:
        self.conn, child_end = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(
            target=_serve, args=(child_end,), name="reach-vendor-child", daemon=True
        )
        self.process.start()
        child_end.close()
        self.jobs = 0

    def run(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        stop: threading.Event,
        progress: Callable[[float], None] | None = None,
    ) -> tuple[str, Any]:
        """("ok", result) or ("raised", the job's exception); progress messages on the way
        go to `progress`."""
        try:
            self.conn.send((fn, args, progress is not None))
        except OSError:
            raise ChildDied("a child process had stopped before the job started") from None
        while True:
            if stop.is_set():
                raise ProcessingCancelled()
            if not self.conn.poll(_POLL_S) and self.process.is_alive():
                continue
            try:
                reply: tuple[str, Any] = self.conn.recv()
            except (EOFError, OSError):
                self.process.join(1)
                raise ChildDied(_exit_reason(self.process.exitcode)) from None
            if reply[0] != "progress":
                return reply
            if progress is not None:
                progress(reply[1])

    def kill(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class ChildPool:
    """Runs picklable functions in child processes; at most `size` at once. A child is
    replaced after `max_jobs` jobs: engines leak a little per task, which adds up."""

    def __init__(self, size: int, *, max_jobs: int = 500) -> None:
        self.size = max(1, size)
        self.max_jobs = max_jobs
        self._ctx = _context()
        self._slots = threading.BoundedSemaphore(self.size)
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._lock = threading.Lock()
        self._warming: threading.Thread | None = None

    def warm(self, *, wait: bool = False) -> None:
        """Start the fork server and `size` idle children now, in the background (or
        before returning, with `wait`): otherwise the first jobs after a start wait for
        the fork server's imports, ~2 s (README, Performance). Once per pool."""
        with self._lock:
            if self._warming is None:
                self._warming = threading.Thread(
                    target=self._start_idle, name="children-warm-up", daemon=True
                )
                self._warming.start()
            warming = self._warming
        if wait:
            warming.join()

    def _start_idle(self) -> None:
        try:
            for _ in range(self.size):
                child = _Child(self._ctx)
                with self._lock:
                    self._idle.append(child)
        except Exception as exc:  # no children yet costs time, not work: jobs start them
            log.warning("could not start the child processes ahead of work: %s", exc)

    def _warmed(self) -> None:
        """Wait for a warm-up under way: its children come sooner than new ones would."""
        warming = self._warming
        if warming is not None and warming is not threading.current_thread():
            warming.join()

    def run(
        self,
        what: str,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        stop: threading.Event,
        *,
        waiting: Callable[[bool], None] | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> T:
        """`fn(*args)` in a child: its result, or the exception it raised (`what` names
        the work in errors). `ChildDied` if the child died; `ProcessingCancelled` as soon
        as `stop` is set, and the child is killed rather than left to finish.

        `waiting(True)` when no child is free and the job has to wait for one,
        `waiting(False)` once it has one (not called when one is free at once).
        `progress`: `fn` takes a `progress` keyword, a callable it may call with 0..1 in
        the child; `progress` is called with that here, on this thread (throttled: a
        percent's move, or a second)."""
        waited = not self._slots.acquire(blocking=False)
        if waited:
            self._wait_for_slot(stop, waiting)
        try:
            if waited and waiting is not None:
                waiting(False)
            if stop.is_set():
                raise ProcessingCancelled()
            child = self._take()
            try:
                kind, value = child.run(fn, args, stop, progress)
            except ChildDied as exc:
                self._drop(child)
                raise ChildDied(f"the {what} process stopped ({exc}) on this task") from None
            except BaseException:  # cancelled, or interrupted: the job may still be running
                self._drop(child)
                raise
            self._give_back(child)
        finally:
            self._slots.release()
        if kind == "raised":
            raise value
        result: T = value
        return result

    def _wait_for_slot(self, stop: threading.Event, waiting: Callable[[bool], None] | None) -> None:
        """Take a slot once a child is free (more workers than cores), giving way to
        `stop`; counted in a gauge meanwhile."""
        metrics.TASKS_WAITING_FOR_CHILD.inc()
        try:
            if waiting is not None:
                waiting(True)
            while not self._slots.acquire(timeout=_POLL_S):
                if stop.is_set():
                    raise ProcessingCancelled()
        finally:
            metrics.TASKS_WAITING_FOR_CHILD.dec()

    def close(self) -> None:
        """Stop the idle children; the pool starts new ones if it is used again."""
        self._warmed()
        with self._lock:
            idle, self._idle = self._idle, []
        for child in idle:
            child.kill()

    def pids(self, *, busy: bool = False) -> list[int]:
        """Process ids of the idle children, or of those working (`busy`)."""
        with self._lock:
            children = self._busy if busy else self._idle
            return [c.process.pid for c in children if c.process.pid is not None]

    def _take(self) -> _Child:
        self._warmed()
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.process.is_alive():
                    self._busy.add(child)
                    return child
                child.kill()
        child = _Child(self._ctx)
        with self._lock:
            self._busy.add(child)
        return child

    def _drop(self, child: _Child) -> None:
        with self._lock:
            self._busy.discard(child)
        child.kill()

    def _give_back(self, child: _Child) -> None:
        child.jobs += 1
        if child.jobs >= self.max_jobs:
            self._drop(child)
            return
        with self._lock:
            self._busy.discard(child)
            self._idle.append(child)
