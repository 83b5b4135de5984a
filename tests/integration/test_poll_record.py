"""What getJobs last did, as the store records it for every replica (SQLite and PostgreSQL):
a successful sweep, a refused one, an unreachable Kaltura; `reach-vendor health` and the
status API's summary judge it. A daemon polls the real emulator through the real client."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.ops import status_api
from reach_vendor.store.leases import PollRecord
from reach_vendor.worker.daemon import Daemon
from tests.integration.test_ops_commands import cli
from tests.support.daemon import make_daemon
from tests.support.ops import get_json, serving_status_api


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'reach.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


def _daemon(tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, url: str) -> Daemon:
    # No retries: one failed request is one failed sweep.
    return make_daemon(tmp_path, emulator, vendor, database={"url": url}, kaltura={"retries": 0})


def sweep(daemon: Daemon) -> None:
    """One getJobs now, as POST /v1/notify asks it (replicas on PostgreSQL otherwise keep
    to the polling interval between sweeps)."""
    daemon.poll_now()
    daemon.poll()


def test_each_sweep_is_recorded_with_how_it_failed_and_never_its_text(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, database_url: str
) -> None:
    daemon = _daemon(tmp_path, emulator, vendor, database_url)
    store = daemon.store
    try:
        assert store.poll_record() == PollRecord(None, None, None)

        before = time.time()
        sweep(daemon)
        ok = store.poll_record()
        assert ok.ok_at is not None and ok.ok_at >= before
        assert not ok.last_failed and ok.failure is None

        secret = "getJobs refused for partner 9001 and token abc"
        emulator.inject_fault("reach_entryvendortask", "getJobs", code="SERVICE_FORBIDDEN",
                              message=secret)  # fmt: skip
        sweep(daemon)
        refused = store.poll_record()
        assert refused.ok_at == ok.ok_at, "a failed sweep is not a successful one"
        assert refused.last_failed and refused.failure == "refused"
        assert daemon.last_poll_error is not None and "SERVICE_FORBIDDEN" in daemon.last_poll_error

        emulator.inject_fault("reach_entryvendortask", "getJobs", "http500")
        sweep(daemon)
        down = store.poll_record()
        assert down.last_failed and down.failure == "unreachable"
        assert down.failed_at is not None and refused.failed_at is not None
        assert down.failed_at >= refused.failed_at

        sweep(daemon)
        again = store.poll_record()
        assert not again.last_failed and again.failure == "unreachable"
        assert again.ok_at is not None and again.ok_at >= down.failed_at
        # The poll lock's own row (PostgreSQL) is not a successful sweep.
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT id FROM poll_state ORDER BY id").scalars().all()
        assert set(rows) >= {2, 3, 4}
    finally:
        store.close()


def _health(cfg: Path, *extra: str) -> tuple[int, dict[str, str]]:
    proc = cli("health", "--no-kaltura", "--json", "--config", str(cfg), *extra)
    checks = json.loads(proc.stdout)["checks"]
    (poll,) = [c for c in checks if c["name"] == "last poll"]
    return proc.returncode, poll


def test_health_judges_the_last_successful_poll_and_names_a_failure_by_kind(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor
) -> None:
    daemon = _daemon(tmp_path, emulator, vendor, f"sqlite:///{tmp_path / 'reach.sqlite3'}")
    cfg = tmp_path / "config.yaml"
    try:
        code, poll = _health(cfg)
        assert (code, poll["status"]) == (0, "OK") and "no getJobs recorded" in poll["detail"]

        # Never succeeded, and Kaltura refuses: a warning at once.
        emulator.inject_fault("reach_entryvendortask", "getJobs", code="SERVICE_FORBIDDEN",
                              message="token 1_testtoken refused")  # fmt: skip
        sweep(daemon)
        code, poll = _health(cfg)
        assert (code, poll["status"]) == (1, "WARNING"), poll
        assert "no getJobs has succeeded" in poll["detail"] and "(refused)" in poll["detail"]
        assert "1_testtoken" not in poll["detail"] and "SERVICE_FORBIDDEN" not in poll["detail"]

        sweep(daemon)
        code, poll = _health(cfg)
        assert (code, poll["status"]) == (0, "OK"), poll
        assert poll["detail"].startswith("last successful getJobs ")
        assert "failed" not in poll["detail"]

        # A failure after a recent success: still OK, but said.
        emulator.inject_fault("reach_entryvendortask", "getJobs", "http500")
        sweep(daemon)
        code, poll = _health(cfg)
        assert code == 0 and "latest attempt failed (unreachable)" in poll["detail"]

        # Older than --max-poll-age: a warning, however the sweeps after it went.
        time.sleep(1.1)
        code, poll = _health(cfg, "--max-poll-age", "1")
        assert (code, poll["status"]) == (1, "WARNING"), poll
    finally:
        daemon.store.close()


def test_the_status_summary_shows_the_same_poll_record(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor
) -> None:
    daemon = _daemon(tmp_path, emulator, vendor, f"sqlite:///{tmp_path / 'reach.sqlite3'}")
    store = daemon.store
    try:
        with serving_status_api(store) as (base, token):
            summary = get_json(base + "/v1/summary", token)[1]
            assert summary["lastSuccessfulPoll"] is None and summary["lastPollFailed"] is False
            sweep(daemon)
            emulator.inject_fault("reach_entryvendortask", "getJobs", code="SERVICE_FORBIDDEN")
            sweep(daemon)
            summary = get_json(base + "/v1/summary", token)[1]
        polls = store.poll_record()
        assert summary["lastSuccessfulPoll"] == status_api._iso(polls.ok_at)
        assert summary["lastFailedPoll"] == status_api._iso(polls.failed_at)
        assert summary["lastPollFailed"] is True and summary["lastPollFailure"] == "refused"
        # No daemon behind this status server: whether it drains is not known.
        assert summary["draining"] is None
    finally:
        store.close()


def test_the_health_config_needs_only_the_database(tmp_path: Path) -> None:
    """`health` reads the poll record with the `database` section alone."""
    cfg = tmp_path / "config.yaml"
    db = tmp_path / "ops.sqlite3"
    cfg.write_text(yaml.safe_dump({"database": {"url": f"sqlite:///{db}"}}))
    from reach_vendor.store.tasks import TaskStore

    store = TaskStore(f"sqlite:///{db}", migrate=True)
    store.record_poll(time.time() - 30)
    store.close()
    code, poll = _health(cfg)
    assert code == 0 and re.fullmatch(r"last successful getJobs 3[01] s ago", poll["detail"])
