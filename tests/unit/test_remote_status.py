"""Status mappings of every remote backend (pure functions, every documented status), the
poll schedule, and the transcript formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reach_vendor.engines.base import ProcessingRequest, ProcessorError
from reach_vendor.engines.remote import (
    alteryx,
    amazon_transcribe,
    smartdocumentor,
    transcripts,
    veeva,
)
from reach_vendor.engines.remote.driver import PollPolicy, RemoteState, next_delay
from reach_vendor.engines.remote.remote_transcription import map_details

Q, R, S, F, C = (
    RemoteState.QUEUED,
    RemoteState.RUNNING,
    RemoteState.SUCCEEDED,
    RemoteState.FAILED,
    RemoteState.CANCELLED,
)


@pytest.mark.parametrize(
    ("status", "state"),
    [("QUEUED", Q), ("IN_PROGRESS", R), ("COMPLETED", S), ("FAILED", F), ("NEW_THING", R)],
)
def test_transcribe_statuses(status: str, state: RemoteState) -> None:
    assert amazon_transcribe.map_status(status, "bad media").state == state


def test_transcribe_failure_reason_is_kept() -> None:
    assert amazon_transcribe.map_status("FAILED", "Invalid file size").reason == "Invalid file size"


def _details(
    success: bool, msg: str, outputs: object, error: str | None = None
) -> dict[str, object]:
    # job_info.status says "completed" in every documented example, whatever the state.
    return {
        "success": success,
        "msg": msg,
        "job_data": {
            "job_info": {"status": "completed", "error_message": error},
            "job_files": {"input_files": [], "output_files": outputs},
        },
    }


def test_remote_transcription_ignores_the_unreliable_status_field() -> None:
    done = {"transcripts": [{"filename": "a.txt", "download_url": "http://x"}]}
    assert map_details(_details(True, "SUCCESS: Job completed successfully.", done)).state == S
    assert map_details(_details(True, "NOTICE: Job is currently being processed.", None)).state == R
    failed = map_details(_details(False, "ERROR: Job processing failed.", None, "corrupt audio"))
    assert failed.state == F and failed.reason == "corrupt audio"
    assert map_details(_details(False, "ERROR: Job processing failed.", None)).reason == (
        "ERROR: Job processing failed."
    )
    assert map_details(None).state == R


@pytest.mark.parametrize(
    ("number", "text", "state"),
    [
        (19, "Deleting", C),
        (20, "Deleted", C),
        (30, "QueuedForPreProcessing", Q),
        (31, "PreProcessingInProgress", R),
        (32, "PreProcessingFailed", F),
        (33, "PreProcessingDownloadFailed", F),
        (34, "PreProcessingSuccessful", R),
        (35, "PreProcessingGetPagesFailed", F),
        (4, "InReview", R),
        (None, "To Review", R),
        (6, "Processed", S),
        (7, "ExportCompleted", S),
        (32, None, F),
        (99, "SomethingNew", R),
    ],
)
def test_smartdocumentor_statuses(number: int | None, text: str | None, state: RemoteState) -> None:
    status = smartdocumentor.map_status({"taskStatus": number, "taskStatusText": text})
    assert status.state == state
    if state == F:
        assert status.reason


def test_smartdocumentor_raw_status_shows_restarts_and_integration() -> None:
    raw = smartdocumentor.map_status(
        {
            "taskStatus": 4,
            "taskStatusText": "InReview",
            "integrationStatusText": "Failed",
            "restartCount": 2,
        }
    ).raw
    assert "restarted 2x" in raw and "integration Failed" in raw


@pytest.mark.parametrize(
    ("status", "disposition", "state"),
    [
        ("Queued", "None", Q),
        ("Initializing", None, Q),
        ("Running", "None", R),
        ("Completed", "Success", S),
        ("Complete", "Warning", S),
        ("Completed", "Error", F),
        ("Completed", "Cancelled", C),
        ("Cancelled", None, C),
        ("Completed", "Mystery", F),
    ],
)
def test_alteryx_statuses(status: str, disposition: str | None, state: RemoteState) -> None:
    assert alteryx.map_status(status, disposition).state == state


def test_alteryx_failure_reason_is_the_last_error_message() -> None:
    messages = [
        {"status": 3, "text": "first"},
        {"status": 1, "text": "info"},
        {"status": 3, "text": "Tool #4: no speech"},
    ]
    assert alteryx.map_status("Completed", "Error", messages).reason == "Tool #4: no speech"


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("SCHEDULED", Q), ("QUEUEING", Q), ("QUEUED", Q), ("RUNNING", R), ("SUCCESS", S),
        ("ERRORS_ENCOUNTERED", F), ("TIMEOUT", F), ("COMPLETED_DUE_TO_INACTIVITY", F),
        ("MISSED_SCHEDULE", F), ("FAILED_TO_RUN", F), ("CANCELLED", C), ("NEW", R),
    ],
)  # fmt: skip
def test_veeva_statuses(status: str, state: RemoteState) -> None:
    mapped = veeva.map_status(status)
    assert mapped.state == state
    assert bool(mapped.reason) == (state in (F, C))


def test_poll_delay_backs_off_and_respects_the_service_limit() -> None:
    policy = PollPolicy(initial_s=2, max_s=30, factor=2)
    delays: list[float] = []
    delay = None
    for _ in range(6):
        delay = next_delay(delay, policy, min_interval_s=0)
        delays.append(delay)
    assert delays == [2, 4, 8, 16, 30, 30]
    # Veeva: once per 10 s per job, whatever the configuration says.
    assert next_delay(None, policy, min_interval_s=veeva.POLL_LIMIT_S) == 10
    assert next_delay(None, policy, min_interval_s=0, retry_after_s=12) == 12


def _request(tmp_path: Path) -> ProcessingRequest:
    audio = tmp_path / "a.pcm"
    audio.write_bytes(b"\0\0" * 16000)
    return ProcessingRequest(audio_path=audio, duration_s=1.0, language="English")


def test_transcribe_json_attaches_punctuation_and_averages_confidence(tmp_path: Path) -> None:
    data = {"results": {"items": [
        {"type": "pronunciation", "start_time": "0.1", "end_time": "0.4",
         "alternatives": [{"confidence": "0.8", "content": "Hello"}]},
        {"type": "punctuation", "alternatives": [{"confidence": "0.0", "content": ","}]},
        {"type": "pronunciation", "start_time": "0.5", "end_time": "0.9",
         "alternatives": [{"confidence": "1.0", "content": "world"}]},
    ]}}  # fmt: skip
    t = transcripts.parse("transcribe_json", json.dumps(data).encode(), _request(tmp_path), "x")
    assert [(w.text, w.start, w.end) for w in t.words] == [
        ("Hello,", 0.1, 0.4),
        ("world", 0.5, 0.9),
    ]
    assert t.accuracy == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        ("words_json", b"not json", "not valid JSON"),
        ("words_json", b'{"words": []}', "no timed words"),
        ("transcribe_json", b"{}", "results.items"),
        ("text", b"%PDF-1.4 deleted", "no longer available"),
        ("text", b"  ", "empty"),
    ],
)
def test_bad_transcripts_fail_with_a_reason(
    tmp_path: Path, fmt: str, content: bytes, message: str
) -> None:
    with pytest.raises(ProcessorError, match=message):
        transcripts.parse(fmt, content, _request(tmp_path), "engine")
