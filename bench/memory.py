"""Peak memory of the daemon while it processes one very large media file.

Makes a ~2 GB MP4 with ffmpeg (a short clip of incompressible 720p video at a high
bitrate plus an AAC audio track, stream-copied in a loop: encoding is done once), serves
it from the emulator, and runs the real daemon process (no-op processor, or `--engine`, 1
worker) until the task is READY. With a real engine the audio track is flite speech looped,
so that the engine has words to find. The daemon's peak RSS is read from /proc/<pid>/status
(VmHWM) before it is stopped; an idle daemon is measured the same way for comparison.

    .venv/bin/python -m bench.memory [--size-gb 2] [--engine faster-whisper]
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


def make_media(out: Path, size_bytes: int, speech: bool = False) -> Path:
    clip = out / "clip.mp4"
    audio = ["-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000"]
    if speech:
        wav = out / "speech.wav"
        text = "Please send me the report before the meeting on Monday."
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(wav)], check=True)
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


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


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


def daemon_peak(tmp: Path, media: Path | None, engine: str) -> tuple[int, int, float]:
    """Peak RSS (KB) of a daemon that processes `media` (or idles), of it with its child
    processes, and seconds taken."""
    with KalturaEmulator() as emu:
        vendor = add_vendor(emu)
        ids = [add_task(emu, vendor, media)] if media else []
        work = tmp / ("run-media" if media else "run-idle")
        work.mkdir()
        cfg = write_config(
            work,
            emu,
            vendor,
            workers={"concurrency": 1},
            kaltura={"request_timeout_s": 120},
            processors={"default": engine},
        )
        t0 = time.monotonic()
        proc = start_daemon(cfg, work / "daemon.log")
        try:
            if ids:
                wait_for(
                    lambda: emu.task(ids[0])["status"] in (READY, 6), 1800, "the big task", step=0.5
                )
                status = emu.task(ids[0])
                if status["status"] != READY:
                    raise RuntimeError(f"task failed: {status.get('errDescription')}")
            else:
                time.sleep(5)
            elapsed = time.monotonic() - t0
            peak = vm_hwm_kb(proc.pid)
            with_children = tree_peak_kb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return peak, with_children, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--engine", default="noop", help="e.g. faster-whisper, the default")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        print("ffmpeg is needed (apt-get install ffmpeg)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="reach-mem-") as tmp_name:
        tmp = Path(tmp_name)
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
        t0 = time.monotonic()
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
            f"media: {size / 2**30:.2f} GiB, {duration:.0f} s of 720p video + AAC "
            f"(made in {time.monotonic() - t0:.0f} s)"
        )
        idle_kb, _, _ = daemon_peak(tmp, None, args.engine)
        print(f"idle daemon peak RSS: {idle_kb / 1024:.0f} MiB")
        peak_kb, total_kb, seconds = daemon_peak(tmp, media, args.engine)
        print(
            f"daemon peak RSS processing it: {peak_kb / 1024:.0f} MiB, "
            f"{total_kb / 1024:.0f} MiB with its child processes (decoder, fork server) "
            f"(download + decode + {args.engine} engine + upload, {seconds:.0f} s)"
        )
    write_result(
        "memory" if args.engine == "noop" else f"memory_{args.engine.replace('-', '_')}",
        {
            "engine": args.engine,
            "media_bytes": size,
            "media_duration_s": duration,
            "idle_peak_rss_mib": idle_kb / 1024,
            "peak_rss_mib": peak_kb / 1024,
            "peak_rss_with_children_mib": total_kb / 1024,
            "task_seconds": seconds,
            "target_mib": 300,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
