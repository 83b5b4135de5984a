"""The real daemon process against the Kaltura emulator: from PENDING tasks to
delivered captions, with real speech, real SQLite and the real KalturaApiClient."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import srt

from reach_vendor.demo import caption_text, word_error_rate
from reach_vendor.emulator import KalturaEmulator
from tests.conftest import (
    REPO,
    Clip,
    Vendor,
    add_speech_task,
    daemon_command,
    run_daemon_once,
    secrets_seen,
    write_config,
)

READY, ERROR = 2, 6


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_daemon_delivers_every_task(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_ids = [add_speech_task(emulator, vendor, clip) for clip in clips]
    cfg = write_config(tmp_path, emulator, vendor)
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            daemon_command(cfg),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_for(
                lambda: all(emulator.task(t)["status"] in (READY, ERROR) for t in task_ids),
                timeout=180,
                what="all tasks READY",
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    output = log_path.read_text()
    assert code == 0, output[-3000:]

    for task_id, clip in zip(task_ids, clips, strict=True):
        task = emulator.task(task_id)
        assert task["status"] == READY, (task.get("errDescription"), output[-3000:])
        assets = emulator.caption_assets(task["entryId"])
        assert len(assets) == 1
        asset = assets[0]
        assert str(task["outputObjectId"]) == str(asset["id"])
        assert asset["status"] == 2 and str(asset["format"]) == "1"
        assert asset["label"] == "English (Auto Generated)"
        assert asset["language"] == "English"
        subtitles = list(srt.parse(bytes(asset["content"]).decode()))
        assert subtitles and all(
            len(line) <= 26 for s in subtitles for line in s.content.splitlines()
        )
        assert word_error_rate(clip.text, caption_text(bytes(asset["content"]).decode())) < 0.35
        assert 0 < int(task["accuracy"]) <= 100
        transcripts = {
            a["filename"].rsplit(".", 1)[-1]: a for a in emulator.attachment_assets(task["entryId"])
        }
        assert sorted(transcripts) == ["json", "txt"]
        assert bytes(transcripts["txt"]["content"]).strip()
        assert (
            str(transcripts["txt"]["format"]) == "1" and str(transcripts["json"]["format"]) == "4"
        )
        timed = json.loads(bytes(transcripts["json"]["content"]))["words"]
        assert timed and all(w["start"] <= w["end"] for w in timed)

    for secret in secrets_seen(emulator, vendor):
        assert secret not in output
    db = tmp_path / "reach.sqlite3"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_restart_does_not_process_a_ready_task_again(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0])
    cfg = write_config(tmp_path, emulator, vendor)
    first = run_daemon_once(cfg)
    assert first.returncode == 0, first.stderr[-3000:]
    assert emulator.task(task_id)["status"] == READY
    updates_before = sum(1 for c in emulator.calls if c[1] in ("update", "updateJob"))

    second = run_daemon_once(cfg)
    assert second.returncode == 0, second.stderr[-3000:]
    updates_after = sum(1 for c in emulator.calls if c[1] in ("update", "updateJob"))
    assert updates_after == updates_before
    assert len(emulator.caption_assets(emulator.task(task_id)["entryId"])) == 1


def test_media_404_gives_error_with_reason_and_others_go_on(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    broken = add_speech_task(emulator, vendor, None)
    good = add_speech_task(emulator, vendor, clips[1])
    cfg = write_config(tmp_path, emulator, vendor)
    proc = run_daemon_once(cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    task = emulator.task(broken)
    assert task["status"] == ERROR
    assert "404" in task["errDescription"] and "download" in task["errDescription"]
    for secret in secrets_seen(emulator, vendor):
        assert secret not in task["errDescription"]
    assert emulator.task(good)["status"] == READY
