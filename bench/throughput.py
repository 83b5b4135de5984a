"""Orchestration throughput: the real daemon process with a no-op processor (registered
through `processors.register`, selected with `processors.default: noop`) against the
emulator; the media (a bundled 2 s mp3) is still downloaded and decoded for every task.

For each worker count:
  * burst: N tasks are waiting when the daemon starts; tasks/s = N / (first PROCESSING
    -> last READY);
  * trickle: tasks are created at a steady rate below capacity; pick-up latency is
    task created -> PROCESSING (p50/p99), which polling bounds by about one interval.

    .venv/bin/python -m bench.throughput [--workers 1,4,16] [--tasks 100] [--rate 4]
        [--trickle-s 10] [--poll-s 1]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    PROCESSING,
    READY,
    add_task,
    add_vendor,
    machine_load,
    percentile,
    start_daemon,
    wait_for,
    write_config,
    write_result,
)
from reach_vendor.emulator import KalturaEmulator


def _first(task: dict[str, Any], status: int) -> float | None:
    return next((t for s, t in task["_statusLog"] if s == status), None)


def run(workers: int, tasks: int, rate: float, trickle_s: float, poll_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, KalturaEmulator() as emu:
        vendor = add_vendor(emu)
        burst = [add_task(emu, vendor) for _ in range(tasks)]
        cfg = write_config(
            Path(tmp),
            emu,
            vendor,
            workers={"concurrency": workers},
            polling={"interval_s": poll_s},
            logging={"level": "WARNING"},
        )
        load_before = machine_load()["loadavg"][0]
        proc = start_daemon(cfg, Path(tmp) / "daemon.log")
        try:
            wait_for(
                lambda: all(emu.task(t)["status"] == READY for t in burst),
                timeout=600,
                what="burst tasks READY",
                step=0.2,
            )
            snaps = [emu.task(t) for t in burst]
            started = [t for s in snaps if (t := _first(s, PROCESSING)) is not None]
            ready = [t for s in snaps if (t := _first(s, READY)) is not None]
            span = max(ready) - min(started)
            # trickle: one task every 1/rate s
            trickle: list[int] = []
            t0 = time.monotonic()
            while time.monotonic() - t0 < trickle_s:
                trickle.append(add_task(emu, vendor))
                time.sleep(1.0 / rate)
            wait_for(
                lambda: all(emu.task(t)["status"] == READY for t in trickle),
                timeout=120,
                what="trickle tasks READY",
                step=0.2,
            )
            latencies = []
            for t in trickle:
                snap = emu.task(t)
                picked = _first(snap, PROCESSING)
                assert picked is not None
                latencies.append(picked - snap["_addedAt"])
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        log_tail = (Path(tmp) / "daemon.log").read_text()[-2000:]
    return {
        "workers": workers,
        "burst_tasks": tasks,
        "burst_seconds": span,
        "tasks_per_s": tasks / span,
        "trickle_tasks": len(trickle),
        "trickle_rate_per_s": rate,
        "pickup_p50_s": percentile(latencies, 50),
        "pickup_p99_s": percentile(latencies, 99),
        "pickup_max_s": max(latencies),
        "loadavg1_before": load_before,
        "daemon_log_tail": log_tail if "ERROR" in log_tail else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,4,16")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--rate", type=float, default=4.0, help="trickle tasks per second")
    parser.add_argument("--trickle-s", type=float, default=10.0)
    parser.add_argument("--poll-s", type=float, default=1.0)
    args = parser.parse_args()
    rows = []
    print(f"poll interval {args.poll_s:g}s; load average {machine_load()['loadavg'][0]:.2f}")
    print(f"{'workers':>7} {'tasks/s':>8} {'pickup p50':>11} {'p99':>6} {'max':>6}")
    for w in (int(x) for x in args.workers.split(",")):
        row = run(w, args.tasks, args.rate, args.trickle_s, args.poll_s)
        rows.append(row)
        print(
            f"{w:7d} {row['tasks_per_s']:8.1f} {row['pickup_p50_s']:10.2f}s "
            f"{row['pickup_p99_s']:5.2f}s {row['pickup_max_s']:5.2f}s",
            flush=True,
        )
    write_result("throughput", {"poll_interval_s": args.poll_s, "runs": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
