"""The notes a run leaves in its work directory for the next run of the same task."""

from __future__ import annotations

from pathlib import Path

from reach_vendor.domain.transcript import Transcript, Word
from reach_vendor.worker import saved_work

TRANSCRIPT = Transcript(
    words=(Word("hello", 0.0, 0.4, 0.9), Word("there", 0.5, 0.9, None, "S1")),
    language="English",
    engine="scripted",
    accuracy=0.8,
)


def test_a_transcript_comes_back_as_it_was_saved_for_its_version_only(tmp_path: Path) -> None:
    saved_work.save_transcript(tmp_path, 3, 12.5, TRANSCRIPT)
    assert saved_work.saved_transcript(tmp_path, 3) == (TRANSCRIPT, 12.5)
    assert saved_work.saved_transcript(tmp_path, 4) is None, "a re-submission starts afresh"


def test_decoded_audio_counts_only_with_its_note_and_its_file(tmp_path: Path) -> None:
    (tmp_path / saved_work.AUDIO_FILE).write_bytes(b"\0\0" * 100)
    assert saved_work.saved_audio(tmp_path, 1) is None, "a decode cut short leaves no note"
    saved_work.save_audio(tmp_path, 1, 7.25)
    assert saved_work.saved_audio(tmp_path, 1) == 7.25
    assert saved_work.saved_audio(tmp_path, 2) is None
    (tmp_path / saved_work.AUDIO_FILE).unlink()
    assert saved_work.saved_audio(tmp_path, 1) is None


def test_a_damaged_note_is_ignored_not_fatal(tmp_path: Path) -> None:
    saved_work.save_transcript(tmp_path, 1, 1.0, TRANSCRIPT)
    (tmp_path / "transcript.json").write_text('{"version": 1, "transcript": {"words": [1]}}')
    assert saved_work.saved_transcript(tmp_path, 1) is None
    (tmp_path / "transcript.json").write_text("{not json")
    assert saved_work.saved_transcript(tmp_path, 1) is None


def test_prune_removes_only_the_work_of_tasks_no_longer_open(tmp_path: Path) -> None:
    for name in ("11", "12", "notes"):
        (tmp_path / name).mkdir()
        (tmp_path / name / saved_work.AUDIO_FILE).write_bytes(b"\0\0")
    assert saved_work.prune(tmp_path, lambda task_id: task_id == 11) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["11", "notes"]
    assert saved_work.prune(tmp_path / "missing", lambda task_id: False) == 0
