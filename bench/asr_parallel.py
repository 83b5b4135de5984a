"""Does the daemon recognise speech as fast as the bare engine can on this machine?

N tasks of recorded human speech (Asterisk's studio prompts from `asterisk-core-sounds-en`,
the corpus of `bench/asr_wer.py`; each task a different WAV of `--audio-s` seconds) go
through the real daemon (in-process, run once) against the emulator with a local engine
(pocketsphinx, or `--engine faster-whisper` / `whisper-cpp`), with 1 and 2 workers, against
the bare engine on the same files with its best settings here (for whisper-cpp the better of
one model on every core, one file at a time, and one process per core with a model each;
for faster-whisper the better of one model
serving one transcription per core (threads), the same model given one file more than
that at once, and one transcription at a time on every core; for pocketsphinx one process
per core). Compared in audio minutes per wall minute;
issue 17's goal is a daemon share of at least 0.95. The daemon runs once from its start,
then `--rounds` times started (child processes and session up before the tasks arrive, as
the bare engine's model is loaded before it is timed), each started run followed by a run
of the bare engine; the share is the median of those pairs, since one run of a few tasks
is decided by which worker gets the slow file last. `--speech flite` uses the older
synthetic speech instead.

pocketsphinx holds the GIL while it decodes, so the daemon runs it in child processes
(`reach_vendor.worker.child_processes`); `--threads` runs it on the worker threads instead, as
the daemon did before, to show what that cost. faster-whisper's `parallel` option for the
daemon is set with `--parallel` (0: one per core, the default). Writes
`bench/results/asr_parallel[_threads|_faster_whisper_p<N>].json`.

    .venv/bin/python -m bench.asr_parallel [--tasks 6] [--workers 1,2] [--threads]
        [--engine faster-whisper] [--parallel 0] [--audio-s 60] [--speech real|flite]
        [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

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
from reach_vendor.common import native_memory
from reach_vendor.common.cores import usable_cores
from reach_vendor.engines.local.pocketsphinx import PocketSphinxProcessor
from reach_vendor.worker.config import load_settings
from reach_vendor.worker.daemon import Daemon


def flite_speech(directory: Path, tasks: int) -> list[Path]:
    script = directory / "speech.txt"
    script.write_text("\n".join(SENTENCES[:10]) + "\n")
    wav = directory / "speech.wav"
    subprocess.run(["flite", "-voice", "slt", "-f", str(script), "-o", str(wav)], check=True)
    return [wav] * tasks


def real_speech(directory: Path, tasks: int, audio_s: float) -> list[Path]:
    """`tasks` WAV files of about `audio_s` seconds each, made of consecutive Asterisk
    prompts with a second of silence between them; no prompt is used twice while the
    corpus lasts."""
    from bench.asr_wer import asterisk
    from reach_vendor.engines.base import SAMPLE_RATE
    from reach_vendor.worker.media import decode_to_pcm

    prompts = asterisk("g722") or asterisk("gsm")
    if not prompts:
        raise SystemExit("no recorded speech: apt-get install asterisk-core-sounds-en-g722")
    silence = bytes(SAMPLE_RATE * 2)
    part = directory / "part.pcm"
    files: list[Path] = []
    cursor = 0
    for i in range(tasks):
        pcm = directory / f"real{i}.pcm"
        seconds = 0.0
        with pcm.open("wb") as out:
            while seconds < audio_s:
                seconds += decode_to_pcm(prompts[cursor % len(prompts)][0], part) + 1
                cursor += 1
                out.write(part.read_bytes() + silence)
        wav = directory / f"real{i}.wav"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1",
             "-i", str(pcm), str(wav)], check=True,
        )  # fmt: skip
        pcm.unlink()
        files.append(wav)
    part.unlink(missing_ok=True)
    return files


_ENGINES: dict[str, Any] = {}


_ARENAS = "MALLOC_ARENA_MAX"


def bare_once(engine: str, options: dict[str, int], pcm: str, duration: float) -> float:
    """One file in a pool process; the engine is loaded once per process."""
    from reach_vendor.engines import registry
    from reach_vendor.engines.base import ProcessingRequest

    if engine not in _ENGINES:
        _ENGINES[engine] = registry.create(engine, options)
    processor = _ENGINES[engine]
    processor.process(ProcessingRequest(Path(pcm), duration, "English", language_code="en"))
    return duration


def transcribe(processor: Any, item: tuple[Path, float]) -> None:
    from reach_vendor.engines.base import ProcessingRequest

    processor.process(ProcessingRequest(item[0], item[1], "English", language_code="en"))


def bare_inputs(media: list[Path], directory: Path) -> list[tuple[Path, float]]:
    """The media decoded once for the bare engine (decoding is not counted for it)."""
    from reach_vendor.worker.media import decode_to_pcm

    inputs: list[tuple[Path, float]] = []
    for i, source in enumerate(media):
        pcm = directory / f"bare{i}.pcm"
        inputs.append((pcm, decode_to_pcm(source, pcm)))
    return inputs


class Bare:
    """The bare engine on the decoded media, in each setting tried: for faster-whisper
    one model per setting, loaded once (as a vendor's would be), then timed per run."""

    def __init__(self, engine: str, inputs: list[tuple[Path, float]]) -> None:
        self.engine = engine
        self.inputs = inputs
        self.audio_s = sum(duration for _, duration in inputs)
        self.cores = usable_cores()
        self._processors: dict[str, Any] = {}

    def settings(self) -> dict[str, tuple[dict[str, int], int, bool]]:
        """Each setting tried: the engine's options, how many files go to it at once, and
        whether each of those is a process of its own (with its own model) rather than a
        thread on one model. One file more than faster-whisper's `parallel` keeps its
        CTranslate2 workers busy while a file's own Python-side work (VAD, features, word
        timings) runs."""
        cores = self.cores
        if self.engine == "faster-whisper":
            return {
                f"parallel={cores}, threads": ({"parallel": cores}, cores, False),
                f"parallel={cores}, {cores + 1} files at once": (
                    {"parallel": cores}, cores + 1, False
                ),
                f"parallel=1, cpu_threads={cores}": (
                    {"parallel": 1, "cpu_threads": cores}, 1, False
                ),
            }
        if self.engine == "whisper-cpp":
            return {
                f"one model, threads={cores}": ({"threads": cores}, 1, False),
                f"{cores} processes, threads=1": ({"threads": 1}, cores, True),
            }
        return {f"{cores} processes": ({}, cores, True)}

    def rate(self, label: str) -> float:
        """Audio minutes per wall minute of one run in setting `label`."""
        import concurrent.futures as cf

        from reach_vendor.engines import registry

        options, at_once, processes = self.settings()[label]
        if processes:
            started = time.perf_counter()
            with cf.ProcessPoolExecutor(at_once) as ppool:
                list(ppool.map(bare_once, [self.engine] * len(self.inputs),
                               [options] * len(self.inputs),
                               [str(p) for p, _ in self.inputs],
                               [d for _, d in self.inputs]))  # fmt: skip
            return self.audio_s / (time.perf_counter() - started)
        key = repr(sorted(options.items()))  # one model per set of options, as a vendor's
        if key not in self._processors:
            self._processors[key] = registry.create(self.engine, options)
        started = time.perf_counter()
        with cf.ThreadPoolExecutor(at_once) as pool:
            list(pool.map(partial(transcribe, self._processors[key]), self.inputs))
        rate = self.audio_s / (time.perf_counter() - started)
        if hasattr(self._processors[key], "close"):
            # whisper-cpp's thread keeps an OpenMP team; a second team in the process
            # (the daemon's) makes libgomp stop spinning, which slows both by a quarter.
            self._processors.pop(key).close()
        return rate


def run(
    workers: int,
    media: list[Path],
    directory: Path,
    engine: str = "pocketsphinx",
    parallel: int = 0,
    started: bool = False,
) -> dict[str, Any]:
    """The tasks through the daemon, timed from its first poll (`started=False`: children
    and the session start inside the timed run, as after a restart) or as a running daemon
    gets them (`started`: child processes and app-token session up before the tasks are
    added, as the bare engine's model is loaded before it is timed)."""
    with KalturaEmulator() as emu:
        vendor = add_vendor(emu)
        config = write_config(
            directory,
            emu,
            vendor,
            workers={"concurrency": workers},
            processors={
                "default": engine,
                "engines": ({engine: {"parallel": parallel}} if engine == "faster-whisper" else {}),
            },
            logging={"level": "WARNING"},
        )
        daemon = Daemon(load_settings(config))
        if started:
            daemon.pipeline.warm_up(wait=True)
            daemon.poll()  # nothing to get yet: opens the session
        ids = [add_task(emu, vendor, path) for path in media]
        began = time.perf_counter()
        daemon.run_once()
        wall = time.perf_counter() - began
        daemon.store.close()
        ready = sum(emu.task(i)["status"] == READY for i in ids)
    if ready != len(media):
        raise SystemExit(f"only {ready} of {len(media)} tasks READY")
    audio_s = sum(float(probe_duration(path)) for path in media)
    return {"workers": workers, "daemon": "started" if started else "starting",
            "tasks": len(media), "wall_s": wall, "tasks_per_min": len(media) / wall * 60,
            "audio_min_per_min": audio_s / wall}  # fmt: skip


def probe_duration(media: Path) -> str:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
         str(media)], capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--threads", action="store_true", help="engine on the worker threads")
    parser.add_argument("--engine", default="pocketsphinx")
    parser.add_argument("--parallel", type=int, default=0, help="faster-whisper's option")
    parser.add_argument("--audio-s", type=float, default=60.0, help="speech per task")
    parser.add_argument("--speech", choices=("real", "flite"), default="real")
    parser.add_argument("--rounds", type=int, default=5,
                        help="started daemon and bare engine runs, in turns")  # fmt: skip
    args = parser.parse_args()
    # The daemon's allocator settings, as `reach-vendor run` makes them (for the bare engine
    # too); `MALLOC_ARENA_MAX=16` in the environment gives glibc's own limit on 2 cores.
    one_arena = native_memory.share_one_arena()
    allocator = "one arena" if one_arena else f"MALLOC_ARENA_MAX={os.environ.get(_ARENAS)}"
    if args.threads:
        PocketSphinxProcessor.holds_gil = False
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.speech == "real":
            media = real_speech(Path(tmp), args.tasks, args.audio_s)
        else:
            media = flite_speech(Path(tmp), args.tasks)
        bare = Bare(args.engine, bare_inputs(media, Path(tmp)))
        bare_rates = {label: bare.rate(label) for label in bare.settings()}
        bare_label = max(bare_rates, key=lambda label: bare_rates[label])
        bare_runs = [bare_rates[bare_label]]
        for n in (int(w) for w in args.workers.split(",")):
            directory = Path(tmp) / f"w{n}"
            directory.mkdir()
            rows.append(run(n, media, directory, args.engine, args.parallel))
            # A started daemon and the bare engine in turns: one run of a few tasks is
            # decided by which worker gets the slow file last, so the median of the pairs.
            pairs = []
            for k in range(args.rounds):
                directory = Path(tmp) / f"w{n}-started-{k}"
                directory.mkdir()
                daemon_row = run(n, media, directory, args.engine, args.parallel, started=True)
                bare_runs.append(bare.rate(bare_label))
                pairs.append({"daemon": daemon_row["audio_min_per_min"], "bare": bare_runs[-1],
                              "share": daemon_row["audio_min_per_min"] / bare_runs[-1],
                              "wall_s": daemon_row["wall_s"]})  # fmt: skip
            row = {**daemon_row, "rounds": pairs}
            row["wall_s"] = statistics.median(p["wall_s"] for p in pairs)
            row["audio_min_per_min"] = statistics.median(p["daemon"] for p in pairs)
            row["tasks_per_min"] = len(media) / row["wall_s"] * 60
            row["share_of_bare"] = statistics.median(p["share"] for p in pairs)
            rows.append(row)
    bare_rate = statistics.median(bare_runs)
    where = "worker threads" if args.threads else "child processes"
    if args.engine == "faster-whisper":
        where = f"worker threads, parallel={args.parallel or 'cores'}"
    elif args.engine == "whisper-cpp":
        where = "worker threads, one transcription at a time on every core"
    audio = f"{args.speech} speech, {len(media)} tasks"
    print(f"{args.engine} in {where}; {audio}; allocator: {allocator}; {machine_load()}")
    print(
        f"started: median of {args.rounds} rounds, each a daemon run then a bare run; "
        f"from its start: one run against the bare engine's median"
    )
    print(f"{'workers':>7} {'daemon':>8} {'wall s':>7} {'tasks/min':>9} {'speed-up':>8} "
          f"{'audio min/min':>13} {'× bare':>7}")  # fmt: skip
    for row in rows:
        first = next(r for r in rows if r["daemon"] == row["daemon"])
        speedup = first["wall_s"] / row["wall_s"]
        row["speedup"] = speedup
        row.setdefault("share_of_bare", row["audio_min_per_min"] / bare_rate)
        shares = " ".join(f"{p['share']:.2f}" for p in row.get("rounds", []))
        print(
            f"{row['workers']:7d} {row['daemon']:>8} {row['wall_s']:7.1f} "
            f"{row['tasks_per_min']:9.1f} {speedup:8.2f} {row['audio_min_per_min']:13.2f} "
            f"{row['share_of_bare']:7.2f}" + (f"  (rounds: {shares})" if shares else "")
        )
    for label, rate in bare_rates.items():
        print(f"bare engine, {label}: {rate:.2f} audio min/min (first run)")
    print(f"bare engine, {bare_label}: median {bare_rate:.2f} of {len(bare_runs)} runs")
    name = "asr_parallel_threads" if args.threads else "asr_parallel"
    if args.engine != "pocketsphinx":
        name = f"asr_parallel_{args.engine.replace('-', '_')}_p{args.parallel}"
    write_result(
        name,
        {"engine": args.engine, "engine_in": where, "speech": args.speech, "allocator": allocator,
         "audio_s_per_task": args.audio_s, "runs": rows,
         "bare_audio_min_per_min": bare_rate, "bare_best_setting": bare_label,
         "bare_settings": bare_rates, "bare_runs": bare_runs, "rounds": args.rounds},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
