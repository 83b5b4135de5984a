"""Issue 15, item 2 ("silence during long work"): while a task transcribes, its progress
reaches the store and the status API (also from an engine in a child process), a line is
logged every `workers.progress_log_interval_s`, and a task waiting for a free decoder
process shows that stage instead of "decode"."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.common import metrics
from reach_vendor.engines.base import ProcessingRequest, Transcript, Word
from reach_vendor.worker.config import load_settings
from reach_vendor.worker.daemon import Daemon
from tests.support.daemon import (
    ERROR,
    READY,
    Clip,
    add_speech_task,
    long_clip,
    make_daemon,
    running,
    wait_for,
    write_config,
)
from tests.support.ops import get_json, serving_status_api


class GateProcessor:
    """An engine that holds the GIL (so it runs in a child) and works until a file exists."""

    name = "gate"
    holds_gil = True

    def __init__(self, gate: Path) -> None:
        self.gate = gate

    def process(self, request: ProcessingRequest) -> Transcript:
        deadline = time.monotonic() + 120
        while not self.gate.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return Transcript(
            words=(Word("hello", 0.0, 0.5, 1.0),),
            language="English",
            engine=self.name,
            accuracy=0.9,
        )


def _done(emulator: KalturaEmulator, *task_ids: int) -> bool:
    return all(emulator.task(t)["status"] in (READY, ERROR) for t in task_ids)


def test_progress_of_an_engine_in_a_child_reaches_the_store_and_the_status_api(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    # pocketsphinx holds the GIL: it runs in a child process.
    task = add_speech_task(emulator, vendor, long_clip(clips, tmp_path, repeat=4))
    daemon = make_daemon(tmp_path, emulator, vendor, workers={"concurrency": 1})
    daemon.pipeline.progress_write_interval_s = 0.5  # more samples of a short transcription
    fractions: list[float] = []
    shown: list[tuple[str | None, int]] = []
    with serving_status_api(daemon.store) as (base, token), running(daemon):

        def sample() -> bool:
            status, body = get_json(f"{base}/v1/tasks?kalturaTaskId={task}", token)
            assert status == 200
            if body["tasks"]:
                t = body["tasks"][0]
                shown.append((t["stage"], t["progressPercent"]))
                rec = daemon.store.by_kaltura_id(task)
                if rec is not None and rec.stage == "transcribe" and rec.progress is not None:
                    fractions.append(rec.progress)
            return _done(emulator, task)

        wait_for(sample, 180, "the task READY")
    assert emulator.task(task)["status"] == READY
    assert any(0 < f < 1 for f in fractions), fractions
    percents = [p for _stage, p in shown]
    assert percents == sorted(percents), shown
    transcribing = {p for stage, p in shown if stage == "transcribe"}
    assert len(transcribing) >= 2, f"the bar moved while transcribing: {shown}"


def test_a_line_is_logged_periodically_while_a_task_transcribes(
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    clips: list[Clip],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="reach_vendor")
    task = add_speech_task(emulator, vendor, clips[0])
    daemon = make_daemon(
        tmp_path,
        emulator,
        vendor,
        workers={"concurrency": 1, "progress_log_interval_s": 0.5},
        # An engine that says nothing until it is done: the line comes all the same.
        processors={"default": "scripted", "options": {"scripted": {"delay_s": 3}}},
    )
    with running(daemon):
        wait_for(lambda: _done(emulator, task), 120, "the task READY")
    assert emulator.task(task)["status"] == READY
    lines = [r for r in caplog.records if r.getMessage().startswith("transcribing: ")]
    assert len(lines) >= 2, [r.getMessage() for r in caplog.records]
    for r in lines:
        assert r.levelno == logging.INFO
        assert (r.task_id, r.partner_id, r.entry_id, r.stage) == (  # type: ignore[attr-defined]
            task,
            emulator.task(task)["partnerId"],
            emulator.task(task)["entryId"],
            "transcribe",
        )
        assert r.media_s > 0  # type: ignore[attr-defined]
        assert "% done" in r.getMessage() and " s of media" in r.getMessage()
    access_key = str(emulator.task(task)["accessKey"])
    assert not any(access_key in r.getMessage() for r in caplog.records)


def test_a_task_waiting_for_a_free_decoder_process_shows_that_stage(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    gate = tmp_path / "gate"
    tasks = [add_speech_task(emulator, vendor, clip) for clip in clips[:2]]
    settings = load_settings(
        write_config(tmp_path, emulator, vendor, workers={"concurrency": 2, "child_processes": 1})
    )
    daemon = Daemon(settings, processor=GateProcessor(gate))
    waiting = "reach_vendor_tasks_waiting_for_child"
    try:
        with serving_status_api(daemon.store) as (base, token), running(daemon):

            def stages() -> list[str | None]:
                status, body = get_json(f"{base}/v1/tasks", token)
                return [t["stage"] for t in body["tasks"]]

            # One task holds the only child (the gate is shut); the other waits for it.
            wait_for(lambda: "wait_decoder" in stages(), 60, "a task waiting for a decoder")
            assert metrics.REGISTRY.get_sample_value(waiting) == 1
            gate.touch()
            wait_for(lambda: _done(emulator, *tasks), 120, "both tasks READY")
        assert [emulator.task(t)["status"] for t in tasks] == [READY, READY]
        assert metrics.REGISTRY.get_sample_value(waiting) == 0
        histories = []
        for t in tasks:
            rec = daemon.store.by_kaltura_id(t)
            assert rec is not None and rec.id is not None
            histories.append([(e.stage, e.message) for e in daemon.store.events(rec.id)])
        waited = [
            h for h in histories if ("wait_decoder", "waiting for a free decoder process") in h
        ]
        assert waited, histories
        for history in waited:
            # The stage it waited for is taken up again once a child is free.
            at = history.index(("wait_decoder", "waiting for a free decoder process"))
            assert history[at + 1][0] in ("decode", "transcribe"), history
    finally:
        gate.touch()
