"""Chaos run: the real daemon process against an emulator that misbehaves at random.

The emulator answers with 5xx, drops connections before or after doing the work, delays
answers past the client's timeout and fails requests with Kaltura errors (all drawn from
one seed); app-token sessions expire under the daemon, customers abort tasks at random
and short-lived access keys must be extended. Meanwhile the daemon process is SIGKILLed
at random times and started again. Then chaos stops, the daemon gets time to settle,
and every task is checked:

  delivered   READY in Kaltura, with exactly the caption the task points at
  duplicates  tasks whose entry has more than one caption asset, or the same transcript
              file attached twice (must be 0)
  lost        tasks not READY, ERROR or ABORTED at the end (must be 0)

    .venv/bin/python -m bench.chaos [--tasks 200] [--seed 1] [--kill-every-s 5] ...
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.harness import (
    ABORTED,
    ERROR,
    FINAL,
    PENDING,
    PROCESSING,
    READY,
    add_task,
    add_vendor,
    machine_load,
    start_daemon,
    write_config,
    write_result,
)

_CALLS_BEFORE_KILL = 5
"""Kaltura calls a restarted daemon makes before the next kill may come."""

@dataclass
class ChaosParams:
    tasks: int = 200
    seed: int = 1
    workers: int = 4
    kill_every_s: float = 5.0
    """The daemon is SIGKILLed (and started again) every 0.5x..1.5x this many seconds
    while the chaos lasts; 0: never."""
    chaos_s: float = 90.0
    """How long faults, kills and aborts go on (it ends earlier once every task is final)."""
    settle_s: float = 120.0
    """After the chaos: time the daemon gets, unharmed, to finish what is left."""
    http500: float = 0.04
    drop: float = 0.03
    drop_after: float = 0.03
    delay: float = 0.02
    error: float = 0.005
    delay_s: float = 3.0
    """Delayed answers come after this long; the daemon's request timeout is 2 s."""
    abort_share: float = 0.05
    """Share of tasks that their customer aborts at a random time."""
    expire_sessions: int = 3
    """Times the app-token sessions are expired under the daemon."""
    short_key_share: float = 0.2
    """Share of tasks whose access key lives only 5 minutes; the daemon is told to extend
    keys with less than `key_margin_s` left, so each of them is extended while it runs."""
    key_margin_s: float = 290.0
    processor_delay_s: float = 0.3
    """No-op processor time per task, so kills land mid-processing too."""


@dataclass
class ChaosReport:
    params: dict[str, Any]
    tasks: int = 0
    delivered: int = 0
    errored: int = 0
    aborted: int = 0
    lost: int = 0
    duplicates: int = 0
    duplicate_attachments: int = 0
    wrong_output: int = 0
    kills: int = 0
    restarts: int = 0
    aborts_sent: int = 0
    sessions_expired: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    lost_tasks: list[dict[str, Any]] = field(default_factory=list)
    error_reasons: dict[str, int] = field(default_factory=dict)
    daemon_exit_codes: list[int] = field(default_factory=list)


def run_chaos(params: ChaosParams, work_dir: Path, *, echo: bool = False) -> ChaosReport:
    rng = random.Random(params.seed)
    report = ChaosReport(params=asdict(params))
    started = time.monotonic()

    def say(msg: str) -> None:
        if echo:
            print(f"[{time.monotonic() - started:6.1f}s] {msg}", flush=True)

    with KalturaEmulator() as emu:
        vendor = add_vendor(emu)
        ids = [
            add_task(
                emu,
                vendor,
                access_key_ttl_s=300 if rng.random() < params.short_key_share else 3 * 86400,
            )
            for _ in range(params.tasks)
        ]
        report.tasks = len(ids)
        cfg = write_config(
            work_dir,
            emu,
            vendor,
            kaltura={"request_timeout_s": 2, "retries": 2},
            workers={
                "concurrency": params.workers,
                "lease_s": 6,
                "retry_base_s": 0.5,
                "max_attempts": 8,
                "access_key_margin_s": params.key_margin_s,
            },
            processors={"options": {"noop": {"delay_s": params.processor_delay_s}}},
            logging={"level": "INFO"},
        )
        log_path = work_dir / "daemon.log"

        def all_final() -> bool:
            return all(emu.task(t)["status"] in FINAL for t in ids)

        emu.set_chaos(
            params.seed,
            http500=params.http500,
            drop=params.drop,
            drop_after=params.drop_after,
            delay=params.delay,
            error=params.error,
            delay_s=params.delay_s,
        )
        # When each disturbance happens, as offsets into the chaos phase.
        kill_at: list[float] = []
        while params.kill_every_s > 0:
            last = kill_at[-1] if kill_at else 0.0
            nxt = last + rng.uniform(0.5, 1.5) * params.kill_every_s
            if nxt >= params.chaos_s:
                break
            kill_at.append(nxt)
        expire_at = sorted(rng.uniform(1, params.chaos_s) for _ in range(params.expire_sessions))
        to_abort = rng.sample(ids, round(len(ids) * params.abort_share))
        abort_at = {t: rng.uniform(0, params.chaos_s * 0.8) for t in to_abort}

        proc = start_daemon(cfg, log_path)
        calls_at_start = len(emu.calls)
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < params.chaos_s and not all_final():
                now = time.monotonic() - t0
                # A kill waits until the daemon has worked since it started (its session,
                # getJobs and a task's first calls): on a slow machine a start can outlast
                # the gap between kills, and a daemon killed before it works exercises
                # nothing (in CI no request was made, so no fault was injected).
                while (
                    kill_at
                    and kill_at[0] <= now
                    and len(emu.calls) - calls_at_start >= _CALLS_BEFORE_KILL
                ):
                    kill_at.pop(0)
                    proc.send_signal(signal.SIGKILL)
                    report.daemon_exit_codes.append(proc.wait(timeout=30))
                    report.kills += 1
                    proc = start_daemon(cfg, log_path)
                    calls_at_start = len(emu.calls)
                    report.restarts += 1
                    say(f"SIGKILLed the daemon and started it again ({report.kills})")
                while expire_at and expire_at[0] <= now:
                    expire_at.pop(0)
                    report.sessions_expired += emu.expire_vendor_sessions()
                    say("expired the app-token sessions")
                for t, at in list(abort_at.items()):
                    if at <= now:
                        del abort_at[t]
                        if emu.abort_task(t):
                            report.aborts_sent += 1
                time.sleep(0.05)
            report.faults = emu.chaos_counts()
            emu.clear_chaos()
            say(f"chaos over: {report.faults}; settling")
            deadline = time.monotonic() + params.settle_s
            while time.monotonic() < deadline and not all_final():
                if proc.poll() is not None:  # it must not die on its own; restart and count
                    report.daemon_exit_codes.append(proc.returncode)
                    proc = start_daemon(cfg, log_path)
                    report.restarts += 1
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                report.daemon_exit_codes.append(proc.wait(timeout=60))
            except subprocess.TimeoutExpired:
                proc.kill()
                report.daemon_exit_codes.append(proc.wait())

        for t in ids:
            task = emu.task(t)
            captions = emu.caption_assets(task["entryId"])
            if len(captions) > 1:
                report.duplicates += 1
            # Transcripts come as several attachments (text, JSON): each file once.
            names = [str(a.get("filename")) for a in emu.attachment_assets(task["entryId"])]
            if len(names) != len(set(names)):
                report.duplicate_attachments += 1
            status = task["status"]
            if status == READY:
                report.delivered += 1
                ok = [c for c in captions if c["id"] == str(task.get("outputObjectId"))]
                if not ok or not ok[0]["content"]:
                    report.wrong_output += 1
            elif status == ERROR:
                report.errored += 1
                reason = str(task.get("errDescription", ""))[:60]
                report.error_reasons[reason] = report.error_reasons.get(reason, 0) + 1
            elif status == ABORTED:
                report.aborted += 1
            else:
                report.lost += 1
                report.lost_tasks.append(
                    {
                        "id": t,
                        "status": {PENDING: "PENDING", PROCESSING: "PROCESSING"}.get(
                            status, str(status)
                        ),
                        "statusLog": task["_statusLog"],
                    }
                )
    report.seconds = time.monotonic() - started
    return report


def main() -> int:
    defaults = ChaosParams()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, db)")
    args = vars(parser.parse_args())
    keep = args.pop("keep")
    params = ChaosParams(**args)
    tmp = tempfile.mkdtemp(prefix="reach-chaos-")
    print(f"work dir {tmp}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    report = run_chaos(params, Path(tmp), echo=True)
    summary = {k: v for k, v in asdict(report).items() if k != "params"}
    for key in (
        "tasks",
        "delivered",
        "errored",
        "aborted",
        "lost",
        "duplicates",
        "duplicate_attachments",
        "wrong_output",
        "kills",
        "restarts",
        "aborts_sent",
        "sessions_expired",
        "faults",
        "error_reasons",
        "seconds",
    ):
        print(f"{key:>22}: {summary[key]}")
    write_result("chaos", {"params": asdict(params), **summary, "load_after": machine_load()})
    if not keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    ok = report.lost == 0 and report.duplicates == 0 and report.wrong_output == 0
    print("OK" if ok else "FAILED: lost, duplicated or wrong deliveries")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
