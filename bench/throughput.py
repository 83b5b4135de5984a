"""Orchestration throughput: the real daemon process with a no-op processor (registered
through `processors.register`, selected with `processors.default: noop`) against the
emulator; the media (a bundled 2 s mp3) is still downloaded and decoded for every task.

For each worker count:
  * burst: N tasks are created at once on a running daemon; tasks/s = N / (first
    PROCESSING -> last READY); the CPU the daemon(s) (child processes included) and the
    bench process used for the burst is reported per task, the bench's split into the
    emulator (its threads, serving Kaltura and the media) and the driver (the main thread
    creating tasks and watching them);
  * trickle: tasks are created at a steady rate below capacity; pick-up latency is
    task created -> PROCESSING (p50/p99), which polling bounds by about one interval.

Two more shapes of the same run:
  * `--replicas N`: N daemon processes sharing one PostgreSQL database (a throw-away
    `reach_bench_<random>` database created on `--pg-dsn` and dropped after), the
    documented way to use more than one core; `--workers` is per replica (`--postgres`
    runs one replica on PostgreSQL too, the baseline to compare with); results go to
    `throughput_pg<N>.json`;
  * `--push`: the status API is on and the bench calls `POST /v1/notify` right after
    creating each trickle task, with a long polling interval (30 s unless `--poll-s`),
    so pick-up latency measures the push path rather than polling;
  * `--naive W`: after the daemon's rows, the same burst and trickle through
    `bench.naive_vendor` (the published sample's loop: list every 30 s, a new connection
    per call, ~10 requests a task) on W threads, so one run gives the ratios.

Every row counts the HTTP requests the emulator served during the burst, per task.

    .venv/bin/python -m bench.throughput [--workers 1,4,16] [--tasks 100] [--rate 4]
        [--trickle-s 10] [--poll-s 1] [--replicas 2] [--postgres] [--pg-dsn DSN] [--push]
        [--latency-ms 50] [--naive 4]
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_devkit.harness import (
    PROCESSING,
    READY,
    REPO,
    add_task,
    add_vendor,
    machine_load,
    percentile,
    pg_database,
    proc_stat,
    process_tree,
    start_daemon,
    wait_for,
    write_config,
    write_result,
)

PG_DSN = os.environ.get("REACH_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _notify(port: int, token: str) -> None:
    """POST /v1/notify, as a Kaltura HTTP event notification (through a proxy) would."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/notify", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 202:
            raise RuntimeError(f"POST /v1/notify answered {resp.status}")
    finally:
        conn.close()


GET_JOBS = ("reach_entryvendortask", "getJobs")


def _all_ready(emu: KalturaEmulator, tasks: list[int]) -> Callable[[], bool]:
    """A cheap "every task READY?" for `wait_for`: tasks finish roughly in order, so it
    checks from the first one not yet seen READY instead of copying every task at every
    step (which cost the bench process, and so the machine, CPU the daemon needed)."""
    left = deque(tasks)

    def check() -> bool:
        while left and emu.task(left[0])["status"] == READY:
            left.popleft()
        return not left

    return check


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process and its descendants (the child processes that
    decode media, and the fork server they come from) have used so far.

    A child that has exited counts through its parent's cutime/cstime (it was reaped):
    the pool replaces a child after 500 jobs, and a run of 500 tasks on one worker used
    to lose its whole decoding CPU that way.
    """
    ticks = 0
    for member in process_tree(pid):
        fields = proc_stat(member)
        if fields is not None:  # None: exited meanwhile
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _own_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process alone (its threads), without its children."""
    fields = proc_stat(pid)
    return 0.0 if fields is None else sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def _start_naive(
    tmp: Path, emu: KalturaEmulator, vendor: Vendor, workers: int
) -> subprocess.Popen[bytes]:
    """`bench.naive_vendor` on `workers` threads, logging to daemon0.log."""
    token_file = tmp / "app_token"
    token_file.write_text(vendor.app_token)
    with (tmp / "daemon0.log").open("ab") as log_file:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.naive_vendor",
                "--service-url",
                emu.url,
                "--partner-id",
                str(vendor.partner_id),
                "--token-id",
                vendor.app_token_id,
                "--token-file",
                str(token_file),
                "--workers",
                str(workers),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )


def _first(task: dict[str, Any], status: int) -> float | None:
    return next((t for s, t in task["_statusLog"] if s == status), None)


def run(
    workers: int,
    tasks: int,
    rate: float,
    trickle_s: float,
    poll_s: float,
    *,
    replicas: int = 1,
    db_url: str | None = None,
    push: bool = False,
    latency_ms: float = 0.0,
    naive: bool = False,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, KalturaEmulator() as emu:
        emu.latency_s = latency_ms / 1000  # network delay per request, downloads included
        vendor = add_vendor(emu)
        sections: dict[str, dict[str, Any]] = {
            "workers": {"concurrency": workers},
            "polling": {"interval_s": poll_s},
            "logging": {"level": "WARNING"},
        }
        if db_url:
            sections["database"] = {"url": db_url}
        token = secrets.token_hex(16)
        port = _free_port()
        if push:
            (Path(tmp) / "status_token").write_text(token)
            sections["status_api"] = {
                "enabled": True,
                "port": port,
                "bearer": {"token_file": str(Path(tmp) / "status_token")},
            }
        cfg = write_config(Path(tmp), emu, vendor, **sections)
        load_before = machine_load()["loadavg"][0]
        if naive:
            procs = [_start_naive(Path(tmp), emu, vendor, workers)]
        else:
            procs = [start_daemon(cfg, Path(tmp) / f"daemon{n}.log") for n in range(replicas)]
        try:
            # Daemons up (start-up CPU is not the task's) before the burst is created.
            wait_for(lambda: GET_JOBS in emu.calls, timeout=60, what="first getJobs")
            time.sleep(2.0 if replicas > 1 else 0.5)
            burst = [add_task(emu, vendor) for _ in range(tasks)]
            # The emulator runs on this process's threads; the main thread is the driver.
            cpu0 = [_cpu_s(p.pid) for p in procs], time.process_time(), time.thread_time()
            own0 = [_own_cpu_s(p.pid) for p in procs]
            requests0 = len(emu.http_requests)
            if push:
                _notify(port, token)
            wait_for(
                _all_ready(emu, burst),
                timeout=600,
                what="burst tasks READY",
                step=0.2,
            )
            cpu1 = [_cpu_s(p.pid) for p in procs], time.process_time(), time.thread_time()
            own1 = [_own_cpu_s(p.pid) for p in procs]
            burst_requests = len(emu.http_requests) - requests0
            snaps = [emu.task(t) for t in burst]
            started = [t for s in snaps if (t := _first(s, PROCESSING)) is not None]
            ready = [t for s in snaps if (t := _first(s, READY)) is not None]
            span = max(ready) - min(started)
            # trickle: one task every 1/rate s
            trickle: list[int] = []
            t0 = time.monotonic()
            while time.monotonic() - t0 < trickle_s:
                trickle.append(add_task(emu, vendor))
                if push:
                    _notify(port, token)
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
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(timeout=60)
        log_tail = "".join(
            (Path(tmp) / f"daemon{n}.log").read_text()[-2000:] for n in range(replicas)
        )
    return {
        "vendor": "naive" if naive else "daemon",
        "latency_ms": latency_ms,
        "requests_per_task": burst_requests / tasks,
        "replicas": replicas,
        "database": "postgresql" if db_url else "sqlite",
        "push_notify": push,
        "workers": workers,
        "burst_tasks": tasks,
        "burst_seconds": span,
        "tasks_per_s": tasks / span,
        "daemon_cpu_ms_per_task": sum(b - a for a, b in zip(cpu0[0], cpu1[0], strict=True))
        / tasks
        * 1000,
        # The daemon's own threads; the rest of daemon_cpu is its children (media decoding).
        "daemon_process_cpu_ms_per_task": sum(b - a for a, b in zip(own0, own1, strict=True))
        / tasks
        * 1000,
        "emulator_cpu_ms_per_task": (cpu1[1] - cpu0[1] - (cpu1[2] - cpu0[2])) / tasks * 1000,
        "bench_driver_cpu_ms_per_task": (cpu1[2] - cpu0[2]) / tasks * 1000,
        "trickle_tasks": len(trickle),
        "trickle_rate_per_s": rate,
        "pickup_p50_s": percentile(latencies, 50),
        "pickup_p99_s": percentile(latencies, 99),
        "pickup_max_s": max(latencies),
        "loadavg1_before": load_before,
        "daemon_log_tail": log_tail if "ERROR" in log_tail or "failed" in log_tail else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,4,16", help="per replica")
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--rate", type=float, default=4.0, help="trickle tasks per second")
    parser.add_argument("--trickle-s", type=float, default=10.0)
    parser.add_argument("--poll-s", type=float, default=None, help="1, or 30 with --push")
    parser.add_argument("--replicas", type=int, default=1, help=">1: share one PostgreSQL db")
    parser.add_argument(
        "--postgres", action="store_true", help="PostgreSQL even for one replica (baseline)"
    )
    parser.add_argument("--pg-dsn", default=PG_DSN, help="admin DSN to create the bench db")
    parser.add_argument("--push", action="store_true", help="POST /v1/notify per trickle task")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="network delay the emulator adds per request"
    )
    parser.add_argument(
        "--naive", type=int, default=0, help="also run the naive vendor loop on this many threads"
    )
    args = parser.parse_args()
    poll_s = args.poll_s if args.poll_s is not None else (30.0 if args.push else 1.0)
    postgres = args.postgres or args.replicas > 1
    name = "throughput" + (f"_pg{args.replicas}" if postgres else "")
    name += "_push" if args.push else ""
    name += f"_{args.latency_ms:g}ms" if args.latency_ms else ""
    name += "_naive" if args.naive else ""
    rows = []
    print(
        f"{args.replicas} replica(s) on {'PostgreSQL' if postgres else 'SQLite'}; "
        f"poll interval {poll_s:g}s; push {'on' if args.push else 'off'}; "
        f"load average {machine_load()['loadavg'][0]:.2f}"
    )
    print(
        f"{'workers':>7} {'tasks/s':>8} {'pickup p50':>11} {'p99':>6} {'max':>6} {'load':>5} "
        f"{'daemon ms CPU/task':>18} {'(threads)':>9} {'emulator':>8} {'driver':>6} "
        f"{'req/task':>8}"
    )
    shapes = [(int(x), False) for x in args.workers.split(",")]
    shapes += [(args.naive, True)] if args.naive else []
    for w, naive in shapes:
        if postgres:
            with pg_database(args.pg_dsn) as url:
                row = run(
                    w,
                    args.tasks,
                    args.rate,
                    args.trickle_s,
                    poll_s,
                    replicas=args.replicas,
                    db_url=url,
                    push=args.push,
                    latency_ms=args.latency_ms,
                )
        else:
            row = run(
                w,
                args.tasks,
                args.rate,
                args.trickle_s,
                poll_s,
                push=args.push and not naive,
                latency_ms=args.latency_ms,
                naive=naive,
            )
        rows.append(row)
        print(
            f"{w:7d}{'n' if naive else ' '}{row['tasks_per_s']:8.1f} {row['pickup_p50_s']:10.2f}s "
            f"{row['pickup_p99_s']:5.2f}s {row['pickup_max_s']:5.2f}s "
            f"{row['loadavg1_before']:5.2f} {row['daemon_cpu_ms_per_task']:18.1f} "
            f"{row['daemon_process_cpu_ms_per_task']:9.1f} "
            f"{row['emulator_cpu_ms_per_task']:8.1f} {row['bench_driver_cpu_ms_per_task']:6.1f} "
            f"{row['requests_per_task']:8.2f}",
            flush=True,
        )
    write_result(
        name,
        {
            "poll_interval_s": poll_s,
            "replicas": args.replicas,
            "push_notify": args.push,
            "command": " ".join(["python -m bench.throughput", *sys.argv[1:]]),
            "runs": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
