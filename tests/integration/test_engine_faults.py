"""A remote engine that cannot serve is counted by its configured name and a fixed kind
(`reach_vendor_engine_faults_total`): credentials refused and a mis-set request are the
vendor's to fix (the ReachVendorEngineSetup alert), a service down passes by itself. The
real pipeline and engine, against a local fake of the service."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reach_vendor.common.metrics import REGISTRY
from reach_vendor.domain.states import TaskState
from reach_vendor.store.tasks import TaskRecord, TaskStore
from reach_vendor.worker.pipeline import Pipeline
from tests.support.fake_clock import FakeClock
from tests.support.fake_gateway import FakeGateway, FakeMedia
from tests.support.fakes.remote_transcription import FakeRemoteTranscription
from tests.support.ops import free_port
from tests.support.remote import FAST_POLL, write_secret
from tests.support.settings import offline_settings

METRIC = "reach_vendor_engine_faults_total"


@pytest.fixture
def claudio() -> Iterator[FakeRemoteTranscription]:
    with FakeRemoteTranscription("claudio-key-123", "claudio-secret-456") as fake:
        yield fake


def _engine(tmp_path: Path, base_url: str, secret: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "remote_transcription",
        "base_url": base_url,
        "key_file": write_secret(tmp_path, "claudio_key", "claudio-key-123"),
        "secret_file": write_secret(tmp_path, f"secret-{secret}", secret),
        "profile_id": "42",
        "unavailable_limit_s": 0.2,
        **FAST_POLL,
        **extra,
    }


def _run(tmp_path: Path, name: str, engine: dict[str, Any]) -> TaskRecord:
    """One task through the real pipeline, routed to the engine configured as `name`."""
    settings = offline_settings(tmp_path, processors={"default": name, "engines": {name: engine}})
    clock = FakeClock()
    gateway = FakeGateway(now=clock.now())
    store = TaskStore("sqlite://", migrate=True)
    try:
        pipeline = Pipeline(
            settings, store, gateway, settings.processors.pool(), "host:1:abc",
            clock=clock, media_tools=FakeMedia(),
        )  # fmt: skip
        store.record_offered([gateway.offer(90)])
        claimed = pipeline.claim("host:1:abc/w0")
        assert claimed is not None
        pipeline.run(claimed, threading.Event(), "host:1:abc/w0")
        rec = store.by_kaltura_id(90)
        assert rec is not None
        assert gateway.tasks[90].error is None, "never the customer's ERROR"
        return rec
    finally:
        store.close()


def _count(engine: str, kind: str) -> float:
    return REGISTRY.get_sample_value(METRIC, {"engine": engine, "kind": kind}) or 0.0


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("claudio-refused", "credentials"),
        ("claudio-mis-set", "config"),
        ("claudio-down", "unavailable"),
    ],
)
def test_each_remote_fault_is_counted_by_engine_name_and_kind(
    tmp_path: Path, claudio: FakeRemoteTranscription, name: str, kind: str
) -> None:
    engine = {
        "credentials": _engine(tmp_path, claudio.url, "an-expired-secret"),
        "config": _engine(tmp_path, claudio.url, "claudio-secret-456", submit_path="/nope"),
        "unavailable": _engine(tmp_path, f"http://127.0.0.1:{free_port()}", "x"),
    }[kind]
    before = {k: _count(name, k) for k in ("credentials", "config", "unavailable")}
    rec = _run(tmp_path, name, engine)
    assert rec.state == TaskState.RUNNING and rec.lease_owner is None, "retried later"
    after = {k: _count(name, k) for k in before}
    assert {k: after[k] - before[k] for k in before} == {
        k: 1.0 if k == kind else 0.0 for k in before
    }


def test_a_daemon_starts_every_engine_series_at_zero(
    tmp_path: Path, claudio: FakeRemoteTranscription
) -> None:
    """Prometheus' increase() would miss the first fault of a series born with it."""
    from reach_vendor.worker.daemon import Daemon

    settings = offline_settings(
        tmp_path,
        processors={
            "default": "claudio-zero",
            "engines": {"claudio-zero": _engine(tmp_path, claudio.url, "x")},
        },
    )
    store = TaskStore("sqlite://", migrate=True)
    try:
        Daemon(settings, store=store, gateway=FakeGateway(now=0.0))  # type: ignore[arg-type]
    finally:
        store.close()
    for kind in ("credentials", "config", "unavailable"):
        assert REGISTRY.get_sample_value(METRIC, {"engine": "claudio-zero", "kind": kind}) == 0
