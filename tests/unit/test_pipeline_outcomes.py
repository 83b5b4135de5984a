"""Every way a task's run ends, against a scripted Kaltura (tests/support/fake_gateway.py),
media tools that need no media, the scripted engine, a real TaskStore on in-memory
SQLite (a file where a whole daemon runs) and a fake clock: no network, no sleeping,
whole file in seconds."""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reach_vendor.domain.states import KalturaStatus, Stage, TaskState
from reach_vendor.engines.base import (
    ProcessingCancelled,
    ProcessingRequest,
    Processor,
    ProcessorError,
    ProcessorUnavailable,
    Transcript,
)
from reach_vendor.engines.local.scripted import ScriptedProcessor
from reach_vendor.engines.routing import ProcessorPool
from reach_vendor.kaltura.gateway import KalturaApiError, KalturaTransientError
from reach_vendor.store.tasks import TaskRecord, TaskStore
from reach_vendor.worker.daemon import Daemon
from reach_vendor.worker.outcomes import Ending, LeaseLost, Outcome, TaskAborted, classify
from reach_vendor.worker.pipeline import Pipeline
from tests.support.fake_clock import FakeClock
from tests.support.fake_gateway import FakeGateway, FakeMedia
from tests.support.settings import offline_settings

OWNER = "host:1:abc/w0"
LEASE_S = 30.0
KEEPER_INTERVAL_S = LEASE_S / 3
PAUSE_S = 60.0


class Watched:
    """The scripted engine, telling the test when it has started working."""

    def __init__(self, engine: Processor) -> None:
        self.engine = engine
        self.name = engine.name
        self.started = threading.Event()
        self.calls = 0

    def process(self, request: ProcessingRequest) -> Transcript:
        self.calls += 1
        self.started.set()
        return self.engine.process(request)


class World:
    def __init__(
        self,
        tmp_path: Path,
        engine_delay_s: float,
        workers: dict[str, Any] | None = None,
        store_url: str = "sqlite://",
    ) -> None:
        self.settings = offline_settings(
            tmp_path,
            workers={
                "lease_s": LEASE_S,
                "retry_base_s": 10,
                "max_attempts": 3,
                **(workers or {}),
            },
            storage={"local_fault_pause_s": PAUSE_S},
            processors={
                "default": "scripted",
                "options": {"scripted": {"delay_s": engine_delay_s}},
            },
        )
        self.clock = FakeClock()
        self.gateway = FakeGateway(now=self.clock.now())
        self.media = FakeMedia()
        self.store = TaskStore(store_url, migrate=True)
        self.engine = Watched(self.settings.processors.pool().get("scripted"))
        self.pipeline = Pipeline(
            self.settings,
            self.store,
            self.gateway,
            ProcessorPool.fixed(self.engine),
            "host:1:abc",
            clock=self.clock,
            media_tools=self.media,
        )
        self.local_faults: list[tuple[str, float]] = []
        self.pipeline.on_local_fault = lambda fault, s: self.local_faults.append((fault, s))
        self.shutdown = threading.Event()
        self.work_dir = tmp_path / "work"

    def offer(self, task_id: int, **kw: Any) -> int:
        self.store.record_offered([self.gateway.offer(task_id, **kw)])
        return task_id

    def run(self) -> TaskRecord:
        """Claim the next task and run it to whatever end it comes."""
        rec = self.pipeline.claim(OWNER)
        assert rec is not None, "nothing to claim"
        self.pipeline.run(rec, self.shutdown, OWNER)
        return self.record(rec.kaltura_task_id)

    def run_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="pipeline-under-test")
        thread.start()
        assert self.engine.started.wait(10), "the engine never started"
        return thread

    def record(self, task_id: int) -> TaskRecord:
        rec = self.store.by_kaltura_id(task_id)
        assert rec is not None
        return rec

    def events(self, task_id: int) -> list[str]:
        return [e.message for e in self.store.events(self.record(task_id).id or 0)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path, engine_delay_s=0.0)
    yield w
    w.store.close()


@pytest.fixture
def slow_world(tmp_path: Path) -> Iterator[World]:
    """The engine works for 20 s unless stopped: the keeper has to stop it."""
    w = World(tmp_path, engine_delay_s=20.0)
    yield w
    w.store.close()


_RUN_STAGES = (
    Stage.CLAIM,
    Stage.DOWNLOAD,
    Stage.DECODE,
    Stage.TRANSCRIBE,
    Stage.UPLOAD,
    Stage.FINISH,
)


def _join(thread: threading.Thread) -> None:
    thread.join(timeout=10)
    assert not thread.is_alive(), "the run did not stop"


# -- ends -------------------------------------------------------------------------------


def test_a_task_is_delivered_and_set_ready(world: World) -> None:
    task_id = world.offer(1)
    rec = world.run()
    task = world.gateway.tasks[task_id]
    assert task.status == KalturaStatus.READY and task.ready is not None
    assert sorted(task.assets) == ["caption", "json", "text"]
    assert b"scripted transcript" in task.content["text"]
    caption_id, accuracy, units = task.ready
    assert caption_id == task.assets["caption"] and accuracy == 90 and units is None
    assert rec.state == TaskState.DELIVERED and rec.lease_owner is None
    assert rec.caption_asset_id == caption_id and rec.transcript_asset_id == task.assets["text"]
    stages = [e.stage for e in world.store.events(rec.id or 0) if e.stage]
    assert list(dict.fromkeys(stages)) == [s.value for s in _RUN_STAGES]


def test_a_processor_error_is_an_error_with_its_text_for_the_customer(world: World) -> None:
    task_id = world.offer(2, source_language="French")
    rec = world.run()
    task = world.gateway.tasks[task_id]
    assert task.status == KalturaStatus.ERROR
    assert task.error is not None and "French" in task.error
    assert rec.state == TaskState.FAILED and rec.attempts == 0 and rec.error == task.error
    assert task.assets == {} and task.ready is None


def test_kaltura_unreachable_is_retried_later_not_failed(world: World) -> None:
    task_id = world.offer(3)
    world.gateway.fail("start_task", KalturaTransientError("Kaltura unreachable after retries"))
    rec = world.run()
    assert rec.state == TaskState.QUEUED and rec.attempts == 1 and rec.lease_owner is None
    # retry_base_s with +-25 % jitter, counted on the injected clock
    assert world.clock.now() + 7.5 <= rec.next_attempt_at <= world.clock.now() + 12.5
    assert world.gateway.tasks[task_id].error is None

    world.store.update(rec.id or 0, next_attempt_at=0.0)
    assert world.run().state == TaskState.DELIVERED
    assert world.gateway.tasks[task_id].status == KalturaStatus.READY


def test_a_transient_failure_of_the_upload_is_retried_within_the_run_without_sleeping(
    world: World,
) -> None:
    task_id = world.offer(4)
    world.gateway.fail("upload_deliverables", KalturaTransientError("connection reset"))
    rec = world.run()
    assert rec.state == TaskState.DELIVERED and rec.attempts == 0
    assert world.gateway.count("upload_deliverables") == 2
    assert world.clock.slept, "the backoff between rounds goes through the clock"
    assert world.gateway.tasks[task_id].status == KalturaStatus.READY


def test_giving_up_after_max_attempts_is_an_error_saying_why(world: World) -> None:
    task_id = world.offer(5)
    world.store.update(world.record(task_id).id or 0, attempts=2)
    world.gateway.fail("start_task", KalturaTransientError("Kaltura unreachable"))
    rec = world.run()
    assert rec.state == TaskState.FAILED
    error = world.gateway.tasks[task_id].error or ""
    assert "gave up after 3 attempts" in error and "Kaltura unreachable" in error


def test_an_error_kaltura_cannot_take_yet_is_reported_by_the_next_run(world: World) -> None:
    task_id = world.offer(6, source_language="French")
    world.gateway.fail("set_error", KalturaTransientError("Kaltura unreachable"))
    rec = world.run()
    assert rec.state == TaskState.RUNNING and rec.stage == Stage.REPORT_ERROR
    assert world.gateway.tasks[task_id].status == KalturaStatus.PROCESSING

    world.store.update(rec.id or 0, next_attempt_at=0.0)
    rec = world.run()
    assert rec.state == TaskState.FAILED
    assert "French" in (world.gateway.tasks[task_id].error or "")
    assert world.gateway.count("start_task") == 1  # only the report was left


def test_a_task_aborted_before_it_starts_is_aborted_and_nothing_delivered(world: World) -> None:
    task_id = world.offer(7)
    world.gateway.abort(task_id)
    rec = world.run()
    assert rec.state == TaskState.ABORTED
    assert any("ENTRY_VENDOR_TASK_NOT_FOUND" in e for e in world.events(task_id))
    assert world.media.downloads == [] and world.gateway.count("set_ready") == 0


def test_kaltura_taking_the_task_back_mid_processing_stops_it(slow_world: World) -> None:
    world = slow_world
    task_id = world.offer(8)
    thread = world.run_in_background()
    world.gateway.reset(task_id)
    world.clock.advance(KEEPER_INTERVAL_S)  # the keeper's next look at Kaltura
    _join(thread)
    rec = world.record(task_id)
    assert rec.state == TaskState.ABORTED
    assert any(e.startswith("aborted: Kaltura reports PENDING") for e in world.events(task_id))
    assert world.gateway.tasks[task_id].assets == {}
    assert world.gateway.count("upload_deliverables") == 0


def test_a_re_submission_seen_by_the_keeper_stops_the_run(slow_world: World) -> None:
    world = slow_world
    task_id = world.offer(9)
    thread = world.run_in_background()
    world.gateway.tasks[task_id].version = 2
    world.clock.advance(KEEPER_INTERVAL_S)
    _join(thread)
    assert world.record(task_id).state == TaskState.ABORTED
    assert any("re-submitted by the customer" in e for e in world.events(task_id))


class _Gated:
    """An engine that hands its transcript back only once `go` is set."""

    name = "scripted"

    def __init__(self, engine: Processor, go: threading.Event) -> None:
        self.engine, self.go = engine, go

    def process(self, request: ProcessingRequest) -> Transcript:
        assert self.go.wait(10)
        return self.engine.process(request)


def _comes_within(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_ready_waits_for_a_keeper_check_in_flight_with_the_key_it_kills(world: World) -> None:
    """READY kills the access key: a keeper check already calling Kaltura with it when the
    run comes to READY finishes first, and none starts after."""
    task_id = world.offer(11, key_expires_at=world.clock.now() + 86400)
    go = threading.Event()
    world.engine.engine = _Gated(world.engine.engine, go)
    entered, release = world.gateway.hold("task_status_and_version")
    thread = world.run_in_background()
    world.clock.advance(KEEPER_INTERVAL_S)  # the keeper's next look at Kaltura
    assert entered.wait(10), "the keeper never checked"
    go.set()  # the transcript is made; the run delivers and comes to READY
    try:
        assert not _comes_within(lambda: world.gateway.count("set_ready") > 0, 1.0)
    finally:
        release.set()
    _join(thread)
    world.clock.advance(KEEPER_INTERVAL_S)
    assert world.record(task_id).state == TaskState.DELIVERED
    assert world.gateway.count("renew_access_key") == 0
    assert world.gateway.count("task_status_and_version") == 1


def test_a_dead_access_key_is_replaced_and_the_task_delivered(world: World) -> None:
    task_id = world.offer(10)
    world.gateway.kill_key(task_id)
    rec = world.run()
    task = world.gateway.tasks[task_id]
    assert rec.state == TaskState.DELIVERED and task.status == KalturaStatus.READY
    assert rec.access_key == task.key != f"key-{task_id}-0"
    assert "access key replaced" in world.events(task_id)


def test_a_key_near_the_end_of_its_known_life_is_extended_before_work(world: World) -> None:
    task_id = world.offer(11, key_expires_at=world.clock.now() + 60)
    rec = world.run()
    assert rec.state == TaskState.DELIVERED
    assert world.gateway.count("renew_access_key") == 1
    assert rec.access_key_expires_at is not None
    assert rec.access_key_expires_at > world.clock.now() + 86400
    assert world.gateway.tasks[task_id].ready is not None


def test_a_key_found_dead_by_the_worker_as_the_keeper_finds_it_due_is_extended_once(
    world: World,
) -> None:
    """Both threads of a run find the key spent at once: one extension serves both."""
    margin = world.settings.workers.access_key_margin_s
    task_id = world.offer(13, key_expires_at=world.clock.now() + margin + KEEPER_INTERVAL_S / 2)
    go = threading.Event()
    world.engine.engine = _Gated(world.engine.engine, go)
    thread = world.run_in_background()
    world.gateway.kill_key(task_id)
    entered, release = world.gateway.hold("renew_access_key")
    go.set()  # the upload meets the dead key and asks for a new one, held at Kaltura
    try:
        assert entered.wait(10), "the worker never asked for a new key"
        world.clock.advance(KEEPER_INTERVAL_S)  # the keeper looks: the key is due now
        assert not _comes_within(lambda: world.gateway.count("renew_access_key") > 1, 1.0)
    finally:
        release.set()
    _join(thread)
    assert world.record(task_id).state == TaskState.DELIVERED
    assert world.gateway.count("renew_access_key") == 1


class _HeldStore(TaskStore):
    """The store, handing a worker its record of entering `stage` only once `release` is
    set (the write itself is done): another thread's write lands in between."""

    def __init__(self, stage: Stage) -> None:
        super().__init__("sqlite://", migrate=True)
        self.stage = stage
        self.entered, self.release = threading.Event(), threading.Event()

    def enter_stage(
        self,
        task_id: int,
        owner: str,
        lease_s: float,
        stage: Stage,
        message: str,
        delivery: str | None = None,
    ) -> TaskRecord | None:
        rec = super().enter_stage(task_id, owner, lease_s, stage, message, delivery)
        if stage == self.stage:
            self.entered.set()
            assert self.release.wait(10)
        return rec


def test_a_key_the_keeper_replaced_is_not_undone_by_the_worker_s_older_record(
    world: World,
) -> None:
    store = _HeldStore(Stage.UPLOAD)
    world.store.close()
    world.store = world.pipeline.store = store
    margin = world.settings.workers.access_key_margin_s
    task_id = world.offer(14, key_expires_at=world.clock.now() + margin + KEEPER_INTERVAL_S / 2)
    thread = threading.Thread(target=world.run, name="pipeline-under-test")
    thread.start()
    try:
        assert store.entered.wait(10), "the run never came to the upload"
        world.clock.advance(KEEPER_INTERVAL_S)  # the keeper finds the key due, replaces it
        assert _comes_within(lambda: "access key replaced" in world.events(task_id), 5.0)
    finally:
        store.release.set()  # the worker takes up its record, read before the new key
    _join(thread)
    assert world.record(task_id).state == TaskState.DELIVERED
    assert world.gateway.count("renew_access_key") == 1


def test_a_key_that_cannot_be_renewed_is_an_error_through_the_vendor_session(
    world: World,
) -> None:
    task_id = world.offer(12)
    world.gateway.kill_key(task_id)
    world.gateway.fail(
        "renew_access_key", KalturaApiError("FAILED_EXTEND_ACCESS_KEY", "failed", "extend")
    )
    rec = world.run()
    task = world.gateway.tasks[task_id]
    assert rec.state == TaskState.FAILED and task.status == KalturaStatus.ERROR
    assert "FAILED_EXTEND_ACCESS_KEY" in (task.error or "")
    assert f"key-{task_id}" not in (task.error or "")


def test_a_full_disk_releases_the_task_and_pauses_intake(world: World) -> None:
    task_id = world.offer(13)
    world.media.fail_download = OSError(errno.ENOSPC, "No space left on device")
    rec = world.run()
    assert rec.state == TaskState.RUNNING and rec.attempts == 0 and rec.lease_owner is None
    assert rec.next_attempt_at == pytest.approx(world.clock.now() + PAUSE_S)
    assert world.local_faults == [("disk full", PAUSE_S)]
    task = world.gateway.tasks[task_id]
    assert task.status == KalturaStatus.PROCESSING and task.error is None


def test_a_lost_lease_stops_the_run_without_touching_the_task(slow_world: World) -> None:
    world = slow_world
    task_id = world.offer(14)
    thread = world.run_in_background()
    world.store.update(world.record(task_id).id or 0, lease_owner="another-replica/w0")
    world.clock.advance(KEEPER_INTERVAL_S)  # the keeper's next lease renewal
    _join(thread)
    rec = world.record(task_id)
    assert rec.state == TaskState.RUNNING and rec.lease_owner == "another-replica/w0"
    task = world.gateway.tasks[task_id]
    assert task.status == KalturaStatus.PROCESSING and task.error is None
    assert world.gateway.count("upload_deliverables") == 0


def test_shutdown_releases_the_task_for_the_next_run(slow_world: World) -> None:
    world = slow_world
    task_id = world.offer(15)
    thread = world.run_in_background()
    world.shutdown.set()
    _join(thread)
    rec = world.record(task_id)
    assert rec.state == TaskState.RUNNING and rec.lease_owner is None
    assert "released at shutdown" in world.events(task_id)
    assert world.gateway.tasks[task_id].status == KalturaStatus.PROCESSING


# -- what a restart costs ------------------------------------------------------------------


class _DoneAsShutdownComes:
    """An engine that finishes just as SIGTERM's drain time runs out: the keeper has set
    `cancel` for the shutdown by the time the transcript is handed back."""

    name = "scripted"

    def __init__(self, engine: Processor, shutdown: threading.Event) -> None:
        self.engine, self.shutdown = engine, shutdown

    def process(self, request: ProcessingRequest) -> Transcript:
        transcript = self.engine.process(request)
        self.shutdown.set()
        request.cancel.set()
        return transcript


def _task_dir(world: World, task_id: int) -> Path:
    return world.work_dir / "tasks" / str(task_id)


def test_a_transcript_made_when_shutdown_comes_is_delivered_not_thrown_away(
    world: World,
) -> None:
    task_id = world.offer(16)
    world.engine.engine = _DoneAsShutdownComes(world.engine.engine, world.shutdown)
    rec = world.run()
    assert rec.state == TaskState.DELIVERED and rec.lease_owner is None
    assert world.gateway.tasks[task_id].status == KalturaStatus.READY
    assert not _task_dir(world, task_id).exists(), "a delivered task's work files go"


def test_a_retry_after_a_failed_delivery_delivers_the_transcript_already_made(
    world: World,
) -> None:
    task_id = world.offer(17, pay_per_use=True)
    world.gateway.fail("upload_deliverables", KalturaTransientError("reset"), times=3)
    rec = world.run()
    assert rec.attempts == 1 and rec.lease_owner is None and rec.state == TaskState.RUNNING

    world.store.update(rec.id or 0, next_attempt_at=0.0)
    rec = world.run()
    assert rec.state == TaskState.DELIVERED
    assert world.engine.calls == 1 and len(world.media.downloads) == 1
    assert "resumed with the transcript an earlier run made" in world.events(task_id)
    ready = world.gateway.tasks[task_id].ready
    assert ready is not None and ready[2] == 3000, "units used from the kept media length"
    assert not _task_dir(world, task_id).exists()


def test_shutdown_mid_transcription_keeps_the_decoded_audio_for_the_next_run(
    slow_world: World,
) -> None:
    world = slow_world
    task_id = world.offer(18)
    thread = world.run_in_background()
    world.shutdown.set()
    _join(thread)
    assert world.record(task_id).lease_owner is None
    assert (_task_dir(world, task_id) / "audio.pcm").exists()

    world.shutdown.clear()
    world.engine.engine = ScriptedProcessor()  # no 20 s this time
    rec = world.run()
    assert rec.state == TaskState.DELIVERED
    assert len(world.media.downloads) == 1 and world.engine.calls == 2
    events = world.events(task_id)
    assert "resumed with the audio an earlier run decoded" in events
    assert events.count("decoding audio") == 1


def _daemon_world(tmp_path: Path, engine_delay_s: float, workers: dict[str, Any]) -> World:
    """A World for a whole daemon, whose threads (poller, workers, retention) use the store
    at once: an in-memory SQLite is one connection, where one thread's commit meets another's
    open statement ("cannot commit transaction - SQL statements in progress"); a file is not."""
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    return World(tmp_path, engine_delay_s=engine_delay_s, workers=workers, store_url=url)


def _daemon_in_thread(world: World) -> tuple[Daemon, threading.Thread]:
    daemon = Daemon(
        world.settings, store=world.store, gateway=world.gateway, processor=world.engine
    )
    daemon.pipeline.media_tools = world.media
    thread = threading.Thread(target=daemon.run_forever, name="daemon-under-test")
    thread.start()
    if not world.engine.started.wait(10):
        daemon.stop()
        daemon.stop()
        _join(thread)
        raise AssertionError("the engine never started")
    return daemon, thread


def test_stop_drains_the_running_task_to_ready_and_claims_no_more(tmp_path: Path) -> None:
    world = _daemon_world(tmp_path, engine_delay_s=1.0, workers={"concurrency": 1})
    world.offer(60)
    world.offer(61)
    stale = world.work_dir / "tasks" / "59"  # kept for a task that ended while down
    stale.mkdir(parents=True)
    daemon, thread = _daemon_in_thread(world)
    assert not stale.exists(), "work files of ended tasks go at start"
    daemon.stop()
    _join(thread)
    first, second = sorted(
        (world.record(60), world.record(61)), key=lambda r: r.state != TaskState.DELIVERED
    )
    assert first.state == TaskState.DELIVERED, world.events(first.kaltura_task_id)
    assert world.gateway.tasks[first.kaltura_task_id].status == KalturaStatus.READY
    assert second.state == TaskState.QUEUED and second.lease_owner is None
    assert not any(e.startswith("claimed by") for e in world.events(second.kaltura_task_id))
    assert world.engine.calls == 1
    world.store.close()


def test_a_drain_that_runs_out_releases_the_task_and_keeps_its_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reach_vendor")
    workers = {"concurrency": 1, "shutdown_grace_s": 1.0, "release_s": 0.5}
    world = _daemon_world(tmp_path, engine_delay_s=20.0, workers=workers)
    task_id = world.offer(62)
    daemon, thread = _daemon_in_thread(world)
    daemon.stop()
    _join(thread)
    rec = world.record(task_id)
    assert rec.state == TaskState.RUNNING and rec.lease_owner is None
    assert "released at shutdown" in world.events(task_id)
    assert (_task_dir(world, task_id) / "audio.pcm").exists()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("drain time over: stopping and releasing 1") for m in messages)
    world.store.close()


# -- the classifier ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "ending"),
    [
        (LeaseLost(), Ending.LEASE_LOST),
        (TaskAborted("Kaltura reports READY"), Ending.ABORTED),
        (ProcessorError("no speech"), Ending.FAILED),
        (ProcessorUnavailable("engine service down"), Ending.RETRY_LATER),
        (KalturaTransientError("unreachable"), Ending.RETRY_LATER),
        (KalturaApiError("ENTRY_VENDOR_TASK_NOT_FOUND", "gone", "get"), Ending.ABORTED),
        (KalturaApiError("CANNOT_EXTEND_ACCESS_KEY", "no", "extend"), Ending.ABORTED),
        (KalturaApiError("SERVICE_FORBIDDEN", "no", "updateJob"), Ending.RETRY_LATER),
        (KalturaApiError("INVALID_KS", "dead", "get"), Ending.FAILED),
        (KalturaApiError("NO_FLAVOR", "none", "flavorAsset.list"), Ending.FAILED),
        (OSError(errno.EMFILE, "Too many open files"), Ending.LOCAL_FAULT),
        (ValueError("a bug"), Ending.RETRY_LATER),
    ],
)
def test_each_exception_has_one_outcome(exc: Exception, ending: Ending) -> None:
    assert classify(exc).ending is ending


def test_a_cancelled_step_ends_as_whoever_cancelled_it() -> None:
    verdict = Outcome(Ending.ABORTED, "aborted: Kaltura reports PENDING while processing")
    cancelled = ProcessingCancelled()
    assert classify(cancelled, watch=verdict) is verdict
    assert classify(cancelled, shutting_down=True).ending is Ending.SHUTDOWN
    assert classify(cancelled).reason == "aborted by the customer while processing"


def test_a_local_fault_is_found_behind_the_exception_that_reports_it() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("could not write the media") from inner
    except RuntimeError as outer:
        outcome = classify(outer)
    assert outcome == Outcome(Ending.LOCAL_FAULT, "disk full")


def test_a_bug_is_retried_with_an_alarm_for_ops() -> None:
    outcome = classify(KeyError("x"))
    assert outcome.alarm and outcome.reason.startswith("internal error: KeyError")


# -- what ops read in the journal ---------------------------------------------------------


def _summaries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("task run summary")]


def test_a_delivered_task_logs_one_summary_line_with_its_figures(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reach_vendor")
    task_id = world.offer(40)
    world.run()
    (line,) = _summaries(caplog)
    assert line.levelno == logging.INFO
    assert line.__dict__["task_id"] == task_id and line.__dict__["outcome"] == "READY"
    assert line.__dict__["engine"] == "scripted" and line.__dict__["attempts"] == 0
    assert line.__dict__["media_s"] == pytest.approx(3.0)
    assert isinstance(line.__dict__["duration_ms"], int)
    assert "READY" in line.getMessage() and "scripted" in line.getMessage()


def test_a_retried_and_a_failed_task_say_so_in_their_summary(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reach_vendor")
    world.offer(41)
    world.gateway.fail("start_task", KalturaTransientError("Kaltura unreachable"))
    world.run()
    world.offer(42, source_language="French")
    world.run()
    retried, failed = _summaries(caplog)
    assert retried.__dict__["outcome"] == "retry later" and retried.__dict__["attempts"] == 1
    assert failed.__dict__["outcome"] == "ERROR" and failed.__dict__["task_id"] == 42


def test_a_poll_that_brings_nothing_new_is_debug_and_one_with_news_is_info(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = Daemon(
        world.settings, store=world.store, gateway=world.gateway, processor=world.engine.engine
    )
    caplog.set_level(logging.DEBUG, logger="reach_vendor")
    world.gateway.offer(43)
    assert daemon._poll_once(pushed=True) == 1
    assert daemon._poll_once(pushed=True) == 0  # the same task offered again
    first, second = [r for r in caplog.records if r.getMessage().startswith("getJobs offered")]
    assert first.levelno == logging.INFO and second.levelno == logging.DEBUG
