"""Issue 15, item 2: the progress bar follows the engine inside the long transcribe stage,
shows waiting for a decoder process as a stage of its own, and never goes back in a run."""

from __future__ import annotations

from typing import Any

from reach_vendor.domain.states import Stage, TaskState
from reach_vendor.store.models import TaskRecord
from reach_vendor.store.queries import progress_percent


def _rec(state: TaskState = TaskState.RUNNING, **fields: Any) -> TaskRecord:
    return TaskRecord(
        kaltura_task_id=1, partner_id=2, entry_id="0_x", access_key="k", state=state, **fields
    )


def _at(stage: Stage | None, progress: float | None = None) -> int:
    return progress_percent(_rec(stage=stage.value if stage else None, progress=progress))


def test_transcribe_follows_the_engine_between_decode_and_upload() -> None:
    start, middle, late = (
        _at(Stage.TRANSCRIBE),
        _at(Stage.TRANSCRIBE, 0.5),
        _at(Stage.TRANSCRIBE, 0.99),
    )
    assert _at(Stage.DECODE) <= start < middle < late < _at(Stage.UPLOAD)
    # Transcription is most of a task's time: most of the bar.
    assert _at(Stage.UPLOAD) - start >= 60


def test_waiting_for_a_decoder_keeps_the_place_the_task_reached() -> None:
    # Before decoding or transcribing (nothing transcribed yet) ...
    assert _at(Stage.DOWNLOAD) <= _at(Stage.WAITING_FOR_DECODER) <= _at(Stage.DECODE)
    # ... or part-way through a transcription (a remote service's text aligned locally).
    assert _at(Stage.WAITING_FOR_DECODER, 0.4) == _at(Stage.TRANSCRIBE, 0.4)


def test_a_run_only_moves_forward() -> None:
    run = [
        (Stage.CLAIM, None),
        (Stage.DOWNLOAD, None),
        (Stage.WAITING_FOR_DECODER, None),
        (Stage.DECODE, None),
        (Stage.WAITING_FOR_DECODER, None),
        (Stage.TRANSCRIBE, None),
        (Stage.TRANSCRIBE, 0.3),
        (Stage.WAITING_FOR_DECODER, 0.5),
        (Stage.TRANSCRIBE, 0.5),
        (Stage.TRANSCRIBE, 1.0),
        (Stage.UPLOAD, 1.0),
        (Stage.FINISH, 1.0),
    ]
    percents = [_at(stage, p) for stage, p in run]
    assert percents == sorted(percents)
    assert percents[0] >= 0 and percents[-1] < 100
    assert progress_percent(_rec(TaskState.DELIVERED, progress=0.7)) == 100


def test_odd_values_stay_in_range() -> None:
    for value in (-1.0, 7.0, float("nan"), float("inf")):
        assert _at(Stage.TRANSCRIBE) <= _at(Stage.TRANSCRIBE, value) <= _at(Stage.UPLOAD)
    for state in (TaskState.QUEUED, TaskState.FAILED, TaskState.ABORTED):
        assert progress_percent(_rec(state, stage="transcribe", progress=0.5)) == 0
    assert _at(None) == 0
    assert progress_percent(_rec(stage="a stage from a newer version")) == 0
