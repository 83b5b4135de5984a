"""Where one worker's CPU goes: the real Daemon (store, gateway, pipeline, no-op processor)
against the emulator, with tasks worked one after another on the profiled main thread.

The profiler's clock is the thread's own CPU time (`time.thread_time`), so the emulator's
threads and time spent waiting on sockets are not counted: what is left is what a task
costs this process, i.e. what bounds tasks/s per core.

    .venv/bin/python -m bench.profile_worker [--tasks 200] [--top 25] [--log-level INFO]
        [--no-profile] [--postgres]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.throughput import PG_DSN
from reach_devkit.emulator import KalturaEmulator
from reach_devkit.harness import (
    add_task,
    add_vendor,
    machine_load,
    pg_database,
    register_noop,
    write_config,
)
from reach_vendor.ops.logs import setup_logging
from reach_vendor.worker.config import load_settings
from reach_vendor.worker.daemon import Daemon


def _package(filename: str) -> str:
    """Which library a profiled function belongs to (site-packages top level, the
    standard library module, or our own package)."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    for ours in ("reach_vendor", "processors", "bench"):
        if f"/{ours}/" in filename:
            return ours
    if filename.startswith("<") or filename == "~":
        return "builtins"
    return "stdlib:" + Path(filename).stem


def print_by_package(stats: pstats.Stats, tasks: int) -> None:
    """Own time per library, per task: which layer to attack first."""
    totals: dict[str, float] = {}
    for (filename, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
        totals[_package(filename)] = totals.get(_package(filename), 0.0) + row[2]
    grand = sum(totals.values())
    print("own CPU time by package (profiler overhead included):")
    for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {name:28s} {seconds / tasks * 1000:6.2f} ms/task {seconds / grand:6.1%}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--no-profile", action="store_true", help="only time the tasks (no profiler overhead)"
    )
    parser.add_argument(
        "--postgres", action="store_true", help="store on a throw-away PostgreSQL database"
    )
    parser.add_argument("--log-level", default="INFO", help="the daemon's logging.level")
    args = parser.parse_args()
    register_noop()
    with ExitStack() as stack:
        db_url = stack.enter_context(pg_database(PG_DSN)) if args.postgres else None
        return _profile(args, db_url)


def _profile(args: argparse.Namespace, db_url: str | None) -> int:
    with tempfile.TemporaryDirectory() as tmp, KalturaEmulator() as emu:
        vendor = add_vendor(emu)
        for _ in range(args.tasks):
            add_task(emu, vendor)
        sections: dict[str, dict[str, Any]] = {"logging": {"level": args.log_level}}
        if db_url:
            sections["database"] = {"url": db_url}
        cfg = write_config(Path(tmp), emu, vendor, **sections)
        settings = load_settings(cfg)
        # Log lines go to a null sink but are still formatted, as they would be for journald.
        setup_logging(settings.logging.format, settings.logging.level, io.StringIO())
        daemon = Daemon(settings)
        daemon.poll()
        # One warm-up task (imports, session, first connections) outside the profile.
        daemon._work_one("w0")
        prof = cProfile.Profile(time.thread_time)
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        done = 0
        if not args.no_profile:
            prof.enable()
        while daemon._work_one("w0"):
            done += 1
        prof.disable()
        cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        daemon.store.close()
        logging.shutdown()
    print(
        f"{done} tasks: {cpu / done * 1000:.1f} ms CPU/task on the worker thread, "
        f"{wall / done * 1000:.1f} ms wall/task; load average {machine_load()['loadavg'][0]:.2f}"
    )
    if args.no_profile:
        return 0
    stats = pstats.Stats(prof, stream=sys.stdout)
    print_by_package(stats, done)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
