"""`reach-vendor check-config` against a real (emulated) Kaltura, `reach-vendor tasks`
list/show/retry/cancel over a real store, with Kaltura's view checked where it matters,
and `reach-vendor migrate`, the only command besides `run` that changes the schema."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.domain.offer import OfferedTask
from reach_vendor.domain.states import Stage, TaskState
from reach_vendor.ops.cli import main
from reach_vendor.store import migrate
from reach_vendor.store.tasks import TaskStore, make_engine
from reach_vendor.worker.config import load_settings
from tests.support.daemon import add_speech_task, write_config
from tests.support.ops import free_port

PENDING, PROCESSING, ERROR, ABORTED = 1, 3, 6, 7


def check_config(cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reach_vendor", "check-config", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_check_config_starts_an_app_token_session(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor
) -> None:
    cfg = write_config(tmp_path, emulator, vendor)
    ok = check_config(cfg)
    assert ok.returncode == 0, ok.stderr
    assert f"app-token session started for partner {vendor.partner_id}" in ok.stdout
    assert ("apptoken", "startSession") in [(s.lower(), a) for s, a in emulator.calls]
    # The session alone proves little: getJobs is what needs the REACH vendor permission.
    assert "getJobs works with the app token; 0 task(s) pending" in ok.stdout
    (jobs,) = [c for c in emulator.call_log if c["action"] == "getJobs"]
    assert jobs["session"] == "vendor"

    with emulator.world.lock:  # the partner without REACH_VENDOR_PARTNER
        emulator.world.vendors.discard(vendor.partner_id)
    forbidden = check_config(cfg)
    assert forbidden.returncode == 1
    line = forbidden.stderr.strip().splitlines()[-1]
    assert line.startswith("kaltura: the app token cannot list REACH jobs") and (
        "SERVICE_FORBIDDEN" in line
    )
    with emulator.world.lock:
        emulator.world.vendors.add(vendor.partner_id)

    (tmp_path / "app_token").write_text("0123456789abcdef-not-the-token")
    refused = check_config(cfg)
    assert refused.returncode == 1
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith("kaltura: cannot start an app-token session: appToken.startSession:")
    assert "0123456789abcdef-not-the-token" not in refused.stdout + refused.stderr

    data = yaml.safe_load(cfg.read_text())
    data["kaltura"].update(service_url=f"http://127.0.0.1:{free_port()}", retries=0)
    cfg.write_text(yaml.safe_dump(data))
    unreachable = check_config(cfg)
    assert unreachable.returncode == 1
    assert "Kaltura unreachable" in unreachable.stderr.strip().splitlines()[-1]


def _record(emu: KalturaEmulator, store: TaskStore, task_id: int) -> int:
    t = emu.task(task_id)
    store.record_offered(
        [
            OfferedTask(
                kaltura_task_id=task_id,
                partner_id=int(t["partnerId"]),
                entry_id=str(t["entryId"]),
                version=int(t.get("version") or 0),
                access_key=str(t["accessKey"]),
                access_key_expires_at=time.time() + 3600,
                service_type=2,
                service_feature=1,
                turn_around_time=None,
                expected_finish_time=None,
            )
        ]
    )
    rec = store.by_kaltura_id(task_id)
    assert rec is not None and rec.id is not None
    return rec.id


def test_tasks_list_show_retry_cancel(
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = write_config(tmp_path, emulator, vendor)
    store = TaskStore(load_settings(cfg).database.url, migrate=True)
    failed, aborted_there, queued, leased = (
        add_speech_task(emulator, vendor, None) for _ in "abcd"
    )
    ids = {k: _record(emulator, store, k) for k in (failed, aborted_there, queued, leased)}
    # Failed locally (e.g. access key trouble) although Kaltura still has it PENDING.
    store.update(ids[failed], state=TaskState.FAILED, message="x", error="access key rejected")
    store.update(ids[aborted_there], state=TaskState.ABORTED, message="aborted")
    emulator.abort_task(aborted_there)
    # Another daemon holds `leased`: it is in flight there.
    store.update(ids[leased], lease_owner="other-host:1", lease_expires_at=time.time() + 600)
    store.update(ids[leased], state=TaskState.RUNNING, stage=Stage.TRANSCRIBE, message="x")
    store.update(ids[queued], attempts=2, next_attempt_at=time.time() + 900, error="timeout")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["tasks", *args, "--config", str(cfg)])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("list")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0].split()[:4] == ["TASK", "PARTNER", "ENTRY", "STATE"]
    assert len(lines) == 5
    code, out, _ = run("list", "--state", "failed")
    assert [line.split()[0] for line in out.strip().splitlines()[1:]] == [str(failed)]

    code, out, _ = run("show", str(failed))
    assert code == 0 and "state:" in out and "failed" in out and "access key rejected" in out
    assert "history:" in out and "offered by getJobs" in out
    assert emulator.task(failed)["accessKey"] not in out

    # retry: Kaltura still has it PENDING, so it is taken back.
    code, out, _ = run("retry", str(failed))
    assert code == 0 and "failed -> queued" in out
    rec = store.by_kaltura_id(failed)
    assert rec and rec.state == TaskState.QUEUED and rec.error is None and rec.attempts == 0
    # retry: Kaltura aborted it (aborted tasks are invisible to the vendor): only the
    # customer can order it again.
    code, _, err = run("retry", str(aborted_there))
    assert code == 1 and "Kaltura no longer offers it" in err
    assert (store.by_kaltura_id(aborted_there) or rec).state == TaskState.ABORTED
    # retry of an open task waiting for its backoff makes it runnable now.
    code, out, _ = run("retry", str(queued))
    assert code == 0 and "runnable now" in out
    assert (store.by_kaltura_id(queued) or rec).next_attempt_at <= time.time()
    # in flight elsewhere: refused, for both actions.
    for action in ("retry", "cancel"):
        code, _, err = run(action, str(leased))
        assert code == 1 and "in flight on other-host:1" in err

    # cancel without --report-error leaves Kaltura alone, and says so.
    updates = sum(1 for c in emulator.calls if c[1] in ("update", "updateJob"))
    code, out, _ = run("cancel", str(queued))
    assert code == 0 and "Kaltura status NOT changed" in out
    assert (store.by_kaltura_id(queued) or rec).state == TaskState.ABORTED
    assert emulator.task(queued)["status"] == PENDING
    assert sum(1 for c in emulator.calls if c[1] in ("update", "updateJob")) == updates
    # cancel --report-error tells Kaltura explicitly.
    code, out, _ = run("cancel", str(failed), "--report-error", "Cancelled by the vendor")
    assert code == 0 and "Kaltura has it ERROR now" in out
    assert emulator.task(failed)["status"] == ERROR
    assert emulator.task(failed)["errDescription"] == "Cancelled by the vendor"
    code, _, err = run("cancel", str(failed))
    assert code == 1 and "already aborted" in err
    code, _, err = run("show", "999999")
    assert code == 1 and "not in the store" in err
    store.close()


def test_tasks_never_migrate_and_migrate_brings_the_database_to_head(
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = write_config(tmp_path, emulator, vendor)
    engine = make_engine(load_settings(cfg).database.url)
    migrate.upgrade(engine, "0002")  # a database an older version made
    head = migrate.head_revision()
    try:
        assert main(["tasks", "list", "--config", str(cfg)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"reach-vendor: the database is at revision 0002, this version needs {head}: "
            "run `reach-vendor migrate`"
        ]
        assert migrate.current_revision(engine) == "0002"

        assert main(["migrate", "--config", str(cfg)]) == 0
        assert capsys.readouterr().out == f"database migrated from revision 0002 to {head}\n"
        assert migrate.current_revision(engine) == head
        assert main(["migrate", "--config", str(cfg)]) == 0
        assert capsys.readouterr().out == f"database already at revision {head}\n"
        assert main(["tasks", "list", "--config", str(cfg)]) == 0
        assert capsys.readouterr().out.split()[:2] == ["TASK", "PARTNER"]

        with engine.begin() as conn:  # as a newer version would leave it
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        assert main(["migrate", "--config", str(cfg)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert (
            len(err) == 1
            and err[0].startswith("reach-vendor: cannot migrate:")
            and "9999" in err[0]
        )
    finally:
        engine.dispose()


def test_health_starts_an_app_token_session(
    tmp_path: Path,
    emulator: KalturaEmulator,
    vendor: Vendor,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = write_config(tmp_path, emulator, vendor)
    assert main(["migrate", "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["health", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ") and "kaltura app-token session started" in out

    data = yaml.safe_load(cfg.read_text())
    data["kaltura"]["service_url"] = f"http://127.0.0.1:{free_port()}"
    cfg.write_text(yaml.safe_dump(data))
    # Kaltura unreachable: the daemon retries by itself, so a warning, in one line.
    assert main(["health", "--config", str(cfg)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("WARNING: ") and "kaltura no app-token session" in captured.out
    assert captured.out.count("\n") == 1 and captured.err == ""
