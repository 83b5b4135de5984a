"""Do more workers recognise more speech? The real daemon (in-process, run once) against
the emulator with the pocketsphinx engine, on tasks of flite speech, with 1 and 2 workers.

pocketsphinx holds the GIL while it decodes, so the daemon runs it in child processes
(`reach_vendor.worker.child_processes`); `--threads` runs it on the worker threads instead, as
the daemon did before, to show what that cost. Prints tasks/minute and the speed-up over
one worker; writes `bench/results/asr_parallel[_threads].json`.

    .venv/bin/python -m bench.asr_parallel [--tasks 4] [--workers 1,2] [--threads]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.asr_speed import SENTENCES
from reach_devkit.emulator import KalturaEmulator
from reach_devkit.harness import (
    READY,
    add_task,
    add_vendor,
    machine_load,
    write_config,
    write_result,
)
from reach_vendor.engines.local.pocketsphinx import PocketSphinxProcessor
from reach_vendor.worker.config import load_settings
from reach_vendor.worker.daemon import Daemon


def speech(directory: Path) -> Path:
    script = directory / "speech.txt"
    script.write_text("\n".join(SENTENCES[:10]) + "\n")
    wav = directory / "speech.wav"
    subprocess.run(["flite", "-voice", "slt", "-f", str(script), "-o", str(wav)], check=True)
    return wav


def run(workers: int, tasks: int, media: Path, directory: Path) -> dict[str, float]:
    """Tasks created before the daemon starts, so all of them are there at the first poll."""
    with KalturaEmulator() as emu:
        vendor = add_vendor(emu)
        ids = [add_task(emu, vendor, media) for _ in range(tasks)]
        config = write_config(
            directory,
            emu,
            vendor,
            workers={"concurrency": workers},
            processors={"default": "pocketsphinx"},
            logging={"level": "WARNING"},
        )
        daemon = Daemon(load_settings(config))
        started = time.perf_counter()
        daemon.run_once()
        wall = time.perf_counter() - started
        daemon.store.close()
        ready = sum(emu.task(i)["status"] == READY for i in ids)
    if ready != tasks:
        raise SystemExit(f"only {ready} of {tasks} tasks READY")
    return {"workers": workers, "tasks": tasks, "wall_s": wall, "tasks_per_min": tasks / wall * 60}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--threads", action="store_true", help="engine on the worker threads")
    args = parser.parse_args()
    if args.threads:
        PocketSphinxProcessor.holds_gil = False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        media = speech(Path(tmp))
        for n in (int(w) for w in args.workers.split(",")):
            directory = Path(tmp) / f"w{n}"
            directory.mkdir()
            rows.append(run(n, args.tasks, media, directory))
    where = "worker threads" if args.threads else "child processes"
    print(f"pocketsphinx in {where}; {args.tasks} tasks of flite speech; {machine_load()}")
    print(f"{'workers':>7} {'wall s':>7} {'tasks/min':>9} {'speed-up':>8}")
    for row in rows:
        speedup = rows[0]["wall_s"] / row["wall_s"]
        row["speedup"] = speedup
        print(
            f"{row['workers']:7d} {row['wall_s']:7.1f} {row['tasks_per_min']:9.1f} {speedup:8.2f}"
        )
    write_result(
        "asr_parallel_threads" if args.threads else "asr_parallel",
        {"engine_in": where, "runs": rows},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
