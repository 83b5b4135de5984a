"""The whole vendor flow on one machine, nothing to configure (`scripts/demo.sh` runs
`python -m reach_devkit.demo`).

Starts the bundled Kaltura emulator with REACH caption tasks for the sample speech that
ships with the package, runs the real daemon (app-token session, getJobs, SQLite store,
and the default engine, whisper-cpp with the packaged tiny.en model) until every task is
READY, and writes out what Kaltura received.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from reach_devkit.emulator import KalturaEmulator
from reach_vendor.worker.config import parse_settings
from reach_vendor.worker.daemon import Daemon

VENDOR_PARTNER_ID = 9001
CUSTOMER_PARTNER_ID = 4124832
APP_TOKEN_ID = "1_demo0001"


@dataclass(frozen=True)
class Sample:
    path: Path
    text: str


def bundled_samples() -> list[Sample]:
    root = resources.files("reach_devkit") / "samples"
    listing = json.loads((root / "samples.json").read_text())
    return [Sample(Path(str(root / item["file"])), item["text"]) for item in listing]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over words, divided by the reference length."""

    def words(text: str) -> list[str]:
        return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()

    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(1, len(ref))


def caption_text(content: str) -> str:
    """The spoken words of an SRT/VTT file: drop indices, timings and headers."""
    lines = []
    for line in content.splitlines():
        line = line.strip()
        if not line or line.isdigit() or "-->" in line or line == "WEBVTT":
            continue
        lines.append(line)
    return " ".join(lines)


def run_demo(out_dir: Path, verbose: bool = False, timeout_s: float = 600) -> int:
    out_dir = out_dir.resolve()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    samples = bundled_samples()
    app_token = secrets.token_hex(16)

    with KalturaEmulator() as emu:
        emu.add_vendor_partner(
            partner_id=VENDOR_PARTNER_ID,
            app_token_id=APP_TOKEN_ID,
            app_token=app_token,
            hash_type="SHA256",
        )
        task_ids = [
            emu.add_task(
                vendor_partner_id=VENDOR_PARTNER_ID,
                partner_id=CUSTOMER_PARTNER_ID,
                media_path=sample.path,
                media_ext=sample.path.suffix.lstrip("."),
            )
            for sample in samples
        ]
        print(f"Kaltura emulator at {emu.url} with {len(task_ids)} pending REACH caption tasks")
        settings = parse_settings(
            {
                "kaltura": {
                    "service_url": emu.url,
                    "partner_id": VENDOR_PARTNER_ID,
                    "app_token": {"id": APP_TOKEN_ID, "token": app_token, "hash_type": "SHA256"},
                },
                "database": {"url": f"sqlite:///{out_dir / 'reach-vendor.sqlite3'}"},
                "polling": {"interval_s": 2},
                "storage": {"work_dir": str(out_dir / "work")},
                "logging": {"format": "text", "level": "INFO" if verbose else "WARNING"},
            }
        )
        # No `processors` or `workers` section above: the engine and concurrency a vendor
        # gets by default.
        print(f"Engine: {settings.processors.default} (the default)")
        daemon = Daemon(settings)
        started = time.monotonic()
        daemon.run_once()
        elapsed = time.monotonic() - started

        captions_dir = out_dir / "captions"
        captions_dir.mkdir()
        failures = 0
        print(f"\nDaemon finished in {elapsed:.1f}s:\n")
        for task_id, sample in zip(task_ids, samples, strict=True):
            task = emu.task(task_id)
            status = {2: "READY", 6: "ERROR", 3: "PROCESSING", 1: "PENDING", 7: "ABORTED"}.get(
                int(task["status"]), str(task["status"])
            )
            assets = [a for a in emu.caption_assets(task["entryId"]) if a.get("status") == 2]
            if status != "READY" or len(assets) != 1:
                failures += 1
                print(f"  task {task_id}: {status} {task.get('errDescription') or ''}")
                continue
            asset = assets[0]
            content = bytes(asset["content"]).decode("utf-8")
            ext = {"1": "srt", "2": "dfxp", "3": "vtt"}.get(str(asset.get("format")), "srt")
            path = captions_dir / f"{task['entryId']}.{ext}"
            path.write_text(content)
            wer = word_error_rate(sample.text, caption_text(content))
            print(
                f"  task {task_id}: READY  accuracy {task.get('accuracy')}%  "
                f"label {asset.get('label')!r}  WER {wer:.1%}\n    {path}"
            )
        daemon.store.close()

    print(
        f"\nCaptions are in {captions_dir}; the daemon's database is {out_dir}/reach-vendor.sqlite3"
    )
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    from reach_vendor.ops.logs import setup_logging

    parser = argparse.ArgumentParser(
        prog="python -m reach_devkit.demo",
        description="the full vendor flow against the bundled Kaltura emulator",
    )
    parser.add_argument("--out", type=Path, default=Path("reach-vendor-demo"))
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    setup_logging("text", "INFO" if args.verbose else "WARNING")
    return run_demo(out_dir=args.out, verbose=args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())
