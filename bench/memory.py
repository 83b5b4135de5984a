"""Peak memory of the daemon while it processes one very large media file.

Makes a ~2 GB MP4 with ffmpeg (a short clip of incompressible 720p video at a high
bitrate plus an AAC audio track, stream-copied in a loop: encoding is done once), serves
it from the emulator, and runs the real daemon process (no-op processor, or `--engine`, 1
worker) until the task is READY. With a real engine the audio track is flite speech looped,
so that the engine has words to find. The daemon's peak RSS is read from /proc/<pid>/status
(VmHWM) before it is stopped; an idle daemon is measured the same way for comparison. The
process tree's memory is also sampled every 0.5 s as the sum of PSS (/proc/<pid>/smaps_rollup:
shared pages counted once), whose highest sample is reported.

`--audio-minutes N` makes instead a small media of N minutes (cheap 240p video, speech audio),
to show that memory does not grow with the length of the audio. `--baseline K=V` first runs
the same media with these engine options (e.g. `chunk_s=600`, the old default), and
`--baseline-env K=V` with this environment (e.g. `MALLOC_ARENA_MAX=16`, glibc's own limit on
2 cores, which the daemon then leaves alone), for a before/after on one machine in one run.

    .venv/bin/python -m bench.memory [--size-gb 2] [--engine faster-whisper]
        [--audio-minutes N] [--baseline chunk_s=600] [--baseline-env MALLOC_ARENA_MAX=16]
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.harness import (
    READY,
    add_task,
    add_vendor,
    process_tree,
    start_daemon,
    wait_for,
    write_config,
    write_result,
)

SPEECH = (
    "Please send me the report before the meeting on Monday. The weather is nice today and "
    "we are going to the park. My brother bought a new car last week."
)


def make_long_media(out: Path, minutes: float, text: str = SPEECH) -> Path:
    """`minutes` of `text` spoken (flite, looped) under a cheap 240p video: the audio is
    long, the file small."""
    wav = out / "speech.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True)
    media = out / "long.mp4"
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=5",
            "-stream_loop", "-1", "-i", str(wav),
            "-t", str(minutes * 60),
            "-c:v", "mpeg4", "-q:v", "10", "-c:a", "aac", "-b:a", "64k",
            str(media),
        ],
        check=True,
    )  # fmt: skip
    return media


def make_media(out: Path, size_bytes: int, speech: bool = False) -> Path:
    clip = out / "clip.mp4"
    audio = ["-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000"]
    if speech:
        wav = out / "speech.wav"
        subprocess.run(["flite", "-voice", "slt", "-t", SPEECH, "-o", str(wav)], check=True)
        audio = ["-stream_loop", "-1", "-i", str(wav)]
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25",
            *audio,
            "-t",
            "10",
            "-vf",
            "noise=alls=100:allf=t",
            "-c:v",
            "mpeg4",
            "-q:v",
            "1",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            str(clip),
        ],
        check=True,
    )
    loops = max(0, -(-size_bytes // clip.stat().st_size) - 1)  # N loops = N + 1 copies
    big = out / "big.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-stream_loop",
            str(loops),
            "-i",
            str(clip),
            "-c",
            "copy",
            str(big),
        ],
        check=True,
    )
    clip.unlink()
    return big


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def vm_hwm_kb(pid: int) -> int:
    return _status_kb(pid, "VmHWM")


def vm_rss_kb(pid: int) -> int:
    return _status_kb(pid, "VmRSS")


def tree_peak_kb(pid: int) -> int:
    """The daemon's peak RSS plus its child processes' (the decoder and the fork server
    it comes from): an upper bound of what the service held at its peak."""
    total = 0
    for member in process_tree(pid):
        try:
            total += vm_hwm_kb(member)
        except (OSError, RuntimeError):  # exited meanwhile, or a kernel thread
            continue
    return total


def tree_pss_kb(pid: int) -> int:
    """The process tree's memory now, shared pages (the fork server's, libraries) counted
    once: the sum of PSS."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:  # exited meanwhile
            continue
    return total


def daemon_peak(
    tmp: Path,
    media: Path | None,
    engine: str,
    options: dict[str, Any],
    label: str,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Peak RSS of a daemon that processes `media` (or idles), of it with its child
    processes, the highest PSS sum of the tree sampled, and seconds taken."""
    with KalturaEmulator() as emu:
        vendor = add_vendor(emu)
        ids = [add_task(emu, vendor, media)] if media else []
        work = tmp / f"run-{label}-{'media' if media else 'idle'}"
        work.mkdir()
        processors: dict[str, Any] = {"default": engine}
        if options:
            processors["engines"] = {engine: options}
        cfg = write_config(
            work,
            emu,
            vendor,
            workers={"concurrency": 1},
            kaltura={"request_timeout_s": 120},
            processors=processors,
        )
        t0 = time.monotonic()
        proc = start_daemon(cfg, work / "daemon.log", env=env)
        pss_peak = 0

        def sampled(done: Any) -> bool:
            nonlocal pss_peak
            pss_peak = max(pss_peak, tree_pss_kb(proc.pid))
            return bool(done())

        try:
            if ids:
                wait_for(
                    lambda: sampled(lambda: emu.task(ids[0])["status"] in (READY, 6)),
                    3600,
                    "the big task",
                    step=0.5,
                )
                status = emu.task(ids[0])
                if status["status"] != READY:
                    raise RuntimeError(f"task failed: {status.get('errDescription')}")
            else:
                # Idle means started (engines loaded, polling), then 5 s of polls.
                log = work / "daemon.log"
                wait_for(
                    lambda: sampled(lambda: "reach-vendor running" in log.read_text()),
                    600,
                    "the daemon to start",
                    0.5,
                )
                deadline = time.monotonic() + 5
                wait_for(lambda: sampled(lambda: time.monotonic() > deadline), 60, "idle", 0.5)
            elapsed = time.monotonic() - t0
            peak = vm_hwm_kb(proc.pid)
            rss_after = vm_rss_kb(proc.pid)
            with_children = tree_peak_kb(proc.pid)
            pss_peak = max(pss_peak, tree_pss_kb(proc.pid))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return {
        "peak_rss_mib": peak / 1024,
        "peak_rss_with_children_mib": with_children / 1024,
        "peak_pss_tree_mib": pss_peak / 1024,
        "rss_after_mib": rss_after / 1024,
        "task_seconds": elapsed,
    }


def parse_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        options[key] = int(value) if value.isdigit() else value
    return options


def measure(
    tmp: Path,
    media: Path,
    engine: str,
    options: dict[str, Any],
    label: str,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    idle = daemon_peak(tmp, None, engine, options, label, env)
    print(f"[{label}] idle daemon peak RSS: {idle['peak_rss_mib']:.0f} MiB")
    run = daemon_peak(tmp, media, engine, options, label, env)
    print(
        f"[{label}] daemon peak RSS processing it: {run['peak_rss_mib']:.0f} MiB, "
        f"{run['peak_rss_with_children_mib']:.0f} MiB with its child processes (decoder, "
        f"fork server; sum of peaks), highest PSS sum of the tree "
        f"{run['peak_pss_tree_mib']:.0f} MiB; {run['rss_after_mib']:.0f} MiB resident after it "
        f"(download + decode + {engine} engine + upload, {run['task_seconds']:.0f} s)"
    )
    return {
        "engine_options": options,
        "environment": env or {},
        "idle_peak_rss_mib": idle["peak_rss_mib"],
        "idle_peak_pss_tree_mib": idle["peak_pss_tree_mib"],
        **run,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--engine", default="noop", help="e.g. faster-whisper, the default")
    parser.add_argument(
        "--audio-minutes", type=float, default=0, help="a small media with this much speech"
    )
    parser.add_argument(
        "--baseline", action="append", default=[], metavar="K=V",
        help="engine option of a first run to compare with (repeatable), e.g. chunk_s=600",
    )  # fmt: skip
    parser.add_argument(
        "--baseline-env", action="append", default=[], metavar="K=V",
        help="environment of a first run to compare with (repeatable), e.g. MALLOC_ARENA_MAX=16",
    )  # fmt: skip
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is needed (apt-get install ffmpeg)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="reach-mem-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.monotonic()
        if args.audio_minutes:
            media = make_long_media(tmp, args.audio_minutes)
        else:
            free = shutil.disk_usage(tmp).free
            wanted = int(args.size_gb * 2**30)
            # the media, the daemon's downloaded copy and some room to spare
            if free < 2.5 * wanted:
                scaled = int(free / 2.5)
                print(
                    f"NOTE: only {free / 2**30:.1f} GiB free in {tmp}; media scaled down from "
                    f"{wanted / 2**30:.1f} to {scaled / 2**30:.2f} GiB"
                )
                wanted = scaled
            media = make_media(tmp, wanted, speech=args.engine != "noop")
        size = media.stat().st_size
        probe = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
                str(media),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        duration = float(probe.stdout.strip())
        print(
            f"media: {size / 2**30:.2f} GiB, {duration:.0f} s of video + AAC "
            f"(made in {time.monotonic() - t0:.0f} s)"
        )
        baseline = None
        if args.baseline or args.baseline_env:
            env = dict(pair.partition("=")[::2] for pair in args.baseline_env)
            baseline = measure(
                tmp, media, args.engine, parse_options(args.baseline), "baseline", env
            )
        result = measure(tmp, media, args.engine, {}, "defaults")
    name = "memory" if args.engine == "noop" else f"memory_{args.engine.replace('-', '_')}"
    if args.audio_minutes:
        name += f"_audio_{args.audio_minutes:g}min"
    write_result(
        name,
        {
            "engine": args.engine,
            "media_bytes": size,
            "media_duration_s": duration,
            **result,
            **({"baseline": baseline} if baseline else {}),
            "target_mib": 300,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
