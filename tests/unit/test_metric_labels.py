"""Metric labels stay bounded: a failure's free-text reason becomes one of a fixed set of
kinds, and a finished task is counted with the engine that ran it."""

from __future__ import annotations

from dataclasses import dataclass

from reach_vendor.common import metrics


@dataclass
class Finished:
    id: int | None
    state: str
    service_feature: int | None
    partner_id: int
    expected_finish_time: float | None
    finished_at: float | None
    processor: str | None
    error: str | None


def test_failure_reasons_map_to_a_fixed_set() -> None:
    cases = {
        "media download failed: HTTP 404": "media_download",
        "cannot decode media: no audio could be decoded": "media_decode",
        "media has no audio stream": "media_decode",
        "the task's access key expired at 2026-11-28 10:00:00 UTC and could not be renewed": (
            "access_key"
        ),
        "Kaltura rejected a request: KALTURA_X: nope": "kaltura_rejected",
        "the Vault job failed: FAILURE": "engine",
        "the remote transcription transcript has no download link": "engine",
        "": "other",
        "something nobody foresaw \u00e9\U0001f600 " * 50: "other",
    }
    for text, kind in cases.items():
        assert metrics.failure_reason(text) == kind, text
    assert set(cases.values()) <= set(metrics.FAILURE_REASONS)


def test_a_failed_task_is_counted_by_kind_and_engine() -> None:
    def value(name: str, labels: dict[str, str]) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    failures = {"reason": "media_download"}
    finished = {"state": "failed", "feature": "captions", "partner": "77", "engine": "whisper-a"}
    before = value("reach_vendor_task_failures_total", failures)
    before_finished = value("reach_vendor_tasks_finished_total", finished)
    metrics.task_finished(
        Finished(424242, "failed", 1, 77, None, None, "whisper-a", "media download failed: 404")
    )
    assert value("reach_vendor_task_failures_total", failures) == before + 1
    assert value("reach_vendor_tasks_finished_total", finished) == before_finished + 1
