"""What a task's run has made so far, kept in its work directory across a restart: the
decoded audio and the finished transcript. A run released at shutdown (or retried later)
resumes from them instead of downloading, decoding and transcribing again.

Each note is written whole (temporary file, then rename) after the work it describes, and
names the task version it belongs to: a re-submission never reuses an older version's work,
and a run killed half-way leaves no note, so its partial files are not trusted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from reach_vendor.domain.transcript import Transcript, Word

log = logging.getLogger(__name__)

AUDIO_FILE = "audio.pcm"
_AUDIO_NOTE = "audio.json"
_TRANSCRIPT_NOTE = "transcript.json"


def save_audio(task_dir: Path, version: int, duration_s: float) -> None:
    """The decoded audio in `task_dir` is complete (`duration_s` long)."""
    _write(task_dir / _AUDIO_NOTE, {"version": version, "duration_s": duration_s})


def saved_audio(task_dir: Path, version: int) -> float | None:
    """The duration of the complete decoded audio of this version, if there is one."""
    note = _read(task_dir / _AUDIO_NOTE, version)
    if note is None or not (task_dir / AUDIO_FILE).is_file():
        return None
    duration = note.get("duration_s")
    return float(duration) if isinstance(duration, int | float) else None


def save_transcript(
    task_dir: Path, version: int, duration_s: float, transcript: Transcript
) -> None:
    """The engine's finished transcript (and the media length the delivery needs)."""
    _write(
        task_dir / _TRANSCRIPT_NOTE,
        {"version": version, "duration_s": duration_s, "transcript": asdict(transcript)},
    )


def saved_transcript(task_dir: Path, version: int) -> tuple[Transcript, float] | None:
    """The finished transcript of this version and the media length, if there is one."""
    note = _read(task_dir / _TRANSCRIPT_NOTE, version)
    if note is None:
        return None
    try:
        t = note["transcript"]
        words = tuple(Word(**w) for w in t["words"])
        transcript = Transcript(words, str(t["language"]), str(t["engine"]), float(t["accuracy"]))
        return transcript, float(note["duration_s"])
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring an unreadable saved transcript in %s: %s", task_dir, exc)
        return None


def prune(tasks_dir: Path, is_open: Callable[[int], bool]) -> int:
    """Remove the work directories (named by Kaltura task id) of tasks that are no longer
    open: kept for a next run that never came (aborted meanwhile, finished by another
    replica). Returns how many went."""
    try:
        dirs = [p for p in tasks_dir.iterdir() if p.is_dir()]
    except FileNotFoundError:
        return 0
    removed = 0
    for path in dirs:
        if not path.name.isdigit() or is_open(int(path.name)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _write(path: Path, note: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(note), encoding="utf-8")
    os.replace(tmp, path)


def _read(path: Path, version: int) -> dict[str, Any] | None:
    try:
        note = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring an unreadable note of saved work %s: %s", path, exc)
        return None
    if not isinstance(note, dict) or note.get("version") != version:
        return None
    return note
