"""Kaltura HTTP requests per delivered task, counted at the emulator.

Runs the real daemon process (no-op processor, so no ASR time) with `run --once` against
the emulator for N tasks, then breaks the requests down by what they carried (a
multirequest counts once; "serveFlavor" is the media download).

    .venv/bin/python -m bench.round_trips [--tasks 20] [--workers 4] [--latency-ms 50]

With --latency-ms every HTTP request (API calls and downloads) waits that long at the
emulator, as a network to Kaltura would; the wall time of the run is printed too.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.harness import (
    READY,
    add_task,
    add_vendor,
    daemon_command,
    machine_load,
    write_config,
    write_result,
)

SESSION_AND_POLL = ("session.", "apptoken.", "reach_entryvendortask.getJobs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, KalturaEmulator() as emu:
        vendor = add_vendor(emu)
        ids = [add_task(emu, vendor) for _ in range(args.tasks)]
        cfg = write_config(Path(tmp), emu, vendor, workers={"concurrency": args.workers})
        emu.latency_s = args.latency_ms / 1000
        started = time.monotonic()
        proc = subprocess.run(
            daemon_command(cfg, "--once"), capture_output=True, text=True, timeout=600
        )
        wall_s = time.monotonic() - started
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            return 1
        delivered = sum(1 for t in ids if emu.task(t)["status"] == READY)
        by_actions = Counter(r["actions"] for r in emu.http_requests)
    total = sum(by_actions.values())
    overhead = sum(n for a, n in by_actions.items() if a.startswith(SESSION_AND_POLL))
    per_task = {a: n / max(delivered, 1) for a, n in by_actions.items()}
    api_per_task = (total - by_actions.get("serveFlavor", 0)) / max(delivered, 1)
    print(f"{delivered}/{args.tasks} tasks delivered, {total} HTTP requests in all")
    print(f"{'requests/task':>14}  what the request carried")
    for actions, n in sorted(per_task.items(), key=lambda kv: -kv[1]):
        print(f"{n:14.2f}  {actions}")
    print(f"{total / max(delivered, 1):14.2f}  = HTTP requests per delivered task")
    print(f"{api_per_task:14.2f}  = api_v3 requests per task (without the media download)")
    print(f"{overhead / max(delivered, 1):14.2f}  of them session + getJobs, shared by all tasks")
    print(f"{wall_s:14.2f}  s for the run ({args.latency_ms:g} ms per request)")
    write_result(
        "round_trips" if not args.latency_ms else f"round_trips_{args.latency_ms:g}ms",
        {
            "tasks": args.tasks,
            "workers": args.workers,
            "latency_ms": args.latency_ms,
            "wall_s": round(wall_s, 2),
            "delivered": delivered,
            "http_requests": total,
            "http_requests_per_task": total / max(delivered, 1),
            "api_requests_per_task": api_per_task,
            "session_and_poll_per_task": overhead / max(delivered, 1),
            "per_task_by_actions": per_task,
            "load_at_start": machine_load()["loadavg"],
        },
    )
    return 0 if delivered == args.tasks else 1


if __name__ == "__main__":
    sys.exit(main())
