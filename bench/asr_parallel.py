"""Do more workers recognise more speech? The real daemon (in-process, run once) against
the emulator with a local engine (pocketsphinx, or `--engine faster-whisper`), on tasks of
flite speech, with 1 and 2 workers; then the bare engine on the same audio, as many at once
as there are cores (threads on one model for faster-whisper, processes for pocketsphinx), in
audio minutes per wall minute, and the daemon's share of it. faster-whisper's `parallel`
option is set with `--parallel` (1: one transcription at a time, as before).

pocketsphinx holds the GIL while it decodes, so the daemon runs it in child processes
(`reach_vendor.worker.child_processes`); `--threads` runs it on the worker threads instead, as
the daemon did before, to show what that cost. Prints tasks/minute and the speed-up over
one worker; writes `bench/results/asr_parallel[_threads].json`.

    .venv/bin/python -m bench.asr_parallel [--tasks 4] [--workers 1,2] [--threads]
        [--engine faster-whisper] [--parallel 0]
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


def bare_once(engine: str, options: dict[str, object], pcm: str, duration: float) -> float:
    from reach_vendor.engines import registry
    from reach_vendor.engines.base import ProcessingRequest

    processor = registry.create(engine, options)
    processor.process(ProcessingRequest(Path(pcm), duration, "English", language_code="en"))
    return duration


def bare(engine: str, tasks: int, media: Path, directory: Path, parallel: int) -> float:
    """Audio minutes per wall minute of the bare engine on `tasks` copies of `media`."""
    import concurrent.futures as cf
    import os

    from reach_vendor.engines import registry
    from reach_vendor.engines.base import ProcessingRequest
    from reach_vendor.worker.media import decode_to_pcm

    pcm = directory / "bare.pcm"
    duration = decode_to_pcm(media, pcm)
    cores = len(os.sched_getaffinity(0))
    started = time.perf_counter()
    if engine == "faster-whisper":
        processor = registry.create(engine, {"parallel": parallel or cores})
        with cf.ThreadPoolExecutor(cores) as pool:
            list(pool.map(lambda _: processor.process(
                ProcessingRequest(pcm, duration, "English", language_code="en")
            ), range(tasks)))  # fmt: skip
    else:
        started = time.perf_counter()
        with cf.ProcessPoolExecutor(cores) as ppool:
            list(ppool.map(bare_once, [engine] * tasks, [{}] * tasks, [str(pcm)] * tasks,
                           [duration] * tasks))  # fmt: skip
    wall = time.perf_counter() - started
    return tasks * duration / wall


def run(
    workers: int, tasks: int, media: Path, directory: Path, engine: str = "pocketsphinx",
    parallel: int = 0,
) -> dict[str, float]:
    """Tasks created before the daemon starts, so all of them are there at the first poll."""
    with KalturaEmulator() as emu:
        vendor = add_vendor(emu)
        ids = [add_task(emu, vendor, media) for _ in range(tasks)]
        config = write_config(
            directory,
            emu,
            vendor,
            workers={"concurrency": workers},
            processors={"default": engine, "engines": (
                {engine: {"parallel": parallel}} if engine == "faster-whisper" else {}
            )},
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
    audio_s = tasks * float(probe_duration(media))
    return {"workers": workers, "tasks": tasks, "wall_s": wall, "tasks_per_min": tasks / wall * 60,
            "audio_min_per_min": audio_s / wall}  # fmt: skip


def probe_duration(media: Path) -> str:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         str(media)], capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--threads", action="store_true", help="engine on the worker threads")
    parser.add_argument("--engine", default="pocketsphinx")
    parser.add_argument("--parallel", type=int, default=0, help="faster-whisper's option")
    args = parser.parse_args()
    if args.threads:
        PocketSphinxProcessor.holds_gil = False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        media = speech(Path(tmp))
        for n in (int(w) for w in args.workers.split(",")):
            directory = Path(tmp) / f"w{n}"
            directory.mkdir()
            rows.append(run(n, args.tasks, media, directory, args.engine, args.parallel))
        bare_rate = bare(args.engine, args.tasks, media, Path(tmp), args.parallel)
    where = "worker threads" if args.threads else "child processes"
    if args.engine == "faster-whisper":
        where = f"worker threads, parallel={args.parallel or 'cores'}"
    print(f"{args.engine} in {where}; {args.tasks} tasks of flite speech; {machine_load()}")
    print(f"{'workers':>7} {'wall s':>7} {'tasks/min':>9} {'speed-up':>8} {'audio min/min':>13} "
          f"{'× bare':>7}")  # fmt: skip
    for row in rows:
        speedup = rows[0]["wall_s"] / row["wall_s"]
        row["speedup"] = speedup
        row["share_of_bare"] = row["audio_min_per_min"] / bare_rate
        print(
            f"{row['workers']:7d} {row['wall_s']:7.1f} {row['tasks_per_min']:9.1f} {speedup:8.2f}"
            f" {row['audio_min_per_min']:13.2f} {row['share_of_bare']:7.2f}"
        )
    print(f"bare engine, all cores: {bare_rate:.2f} audio min/min")
    name = "asr_parallel_threads" if args.threads else "asr_parallel"
    if args.engine != "pocketsphinx":
        name = f"asr_parallel_{args.engine.replace('-', '_')}_p{args.parallel}"
    write_result(
        name,
        {"engine": args.engine, "engine_in": where, "runs": rows,
         "bare_audio_min_per_min": bare_rate},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
