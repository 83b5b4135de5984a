"""Ops commands against a real SQLite store: read-only commands without the Kaltura token,
JSON output, the partner filter, `health` exit codes, `purge`, and `check-config` naming
every problem at once (busy ports, engines, secrets); `run --once` with Kaltura unreachable."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import update

from reach_vendor.domain.states import TaskState
from reach_vendor.ops.cli import main
from reach_vendor.store.models import TASKS
from reach_vendor.store.tasks import TaskStore
from tests.support.ops import free_port, seeded_store


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`reach-vendor ARGS` in this process (a subprocess costs seconds of imports)."""
    out, err = io.StringIO(), io.StringIO()
    os.environ.pop("CREDENTIALS_DIRECTORY", None)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --version, usage errors
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def production_like_config(tmp_path: Path, **extra: object) -> Path:
    """The token comes from a systemd credential, which a shell does not have."""
    data: dict[str, object] = {
        "kaltura": {
            "service_url": "http://127.0.0.1:1",
            "partner_id": 10,
            "app_token": {"id": "x", "token_credential": "app_token"},
        },
        "database": {"url": f"sqlite:///{tmp_path / 'ops.sqlite3'}"},
        **extra,
    }
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(data))
    return cfg


def test_read_only_commands_need_only_the_database(tmp_path: Path) -> None:
    store, keys = seeded_store(tmp_path)
    store.close()
    cfg = production_like_config(tmp_path)

    listed = cli("tasks", "list", "--json", "--config", str(cfg))
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["kaltura_task_id"] for r in rows) == [1000, 1001, 1002, 1003, 1004]
    assert not any(k in listed.stdout for k in keys)

    other = cli("tasks", "list", "--partner", "999", "--json", "--config", str(cfg))
    assert other.returncode == 0 and json.loads(other.stdout) == []
    table = cli("tasks", "list", "--partner", "4124832", "--config", str(cfg))
    assert table.returncode == 0 and "1003" in table.stdout

    shown = cli("tasks", "show", "1003", "--json", "--config", str(cfg))
    assert shown.returncode == 0, shown.stderr
    task = json.loads(shown.stdout)
    assert task["state"] == "failed" and "access_key" not in task
    assert [e["state"] for e in task["history"]][-1] == "failed"

    stats = cli("stats", "--json", "--config", str(cfg))
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["by_state"]["delivered"] == 1

    # Commands that talk to Kaltura still need the token, and say so.
    retry = cli("tasks", "retry", "1003", "--config", str(cfg))
    assert retry.returncode == 78 and "kaltura.app_token.token_credential" in retry.stderr


def test_version_flag() -> None:
    from reach_vendor import __version__

    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"reach-vendor {__version__}"


def test_health_exit_codes(tmp_path: Path) -> None:
    cfg = production_like_config(tmp_path)
    missing = cli("health", "--no-kaltura", "--config", str(cfg))
    assert missing.returncode == 2 and missing.stdout.startswith("CRITICAL: database no database")

    seeded_store(tmp_path)[0].close()
    ok = cli("health", "--no-kaltura", "--json", "--config", str(cfg))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    checks = {c["name"]: c["status"] for c in json.loads(ok.stdout)["checks"]}
    assert checks == {"database": "OK", "migrations": "OK", "last poll": "OK"}

    # Kaltura is checked with the app token; without it here, that part warns.
    warned = cli("health", "--config", str(cfg))
    assert warned.returncode == 1
    assert "kaltura not checked: kaltura.app_token.token_credential" in warned.stdout

    engine = TaskStore(f"sqlite:///{tmp_path / 'ops.sqlite3'}").engine
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    engine.dispose()
    old = cli("health", "--no-kaltura", "--config", str(cfg))
    assert old.returncode == 2 and "migrations at 0001" in old.stdout


def test_purge_deletes_only_finished_tasks_kaltura_cannot_offer_again(tmp_path: Path) -> None:
    store, _keys = seeded_store(tmp_path)
    rec = store.by_kaltura_id(1001)
    assert rec is not None and rec.id is not None
    store.cancel(rec.id, "cancelled by operator")  # ABORTED: Kaltura may still offer it
    long_ago = time.time() - 100 * 86400
    with store.engine.begin() as conn:
        conn.execute(
            update(TASKS).values(finished_at=long_ago).where(TASKS.c.finished_at.is_not(None))
        )
    store.close()
    cfg = production_like_config(tmp_path)

    recent = cli("purge", "--older-than", "101d", "--config", str(cfg))
    assert recent.returncode == 0 and recent.stdout.startswith("deleted 0 ")
    purged = cli("purge", "--older-than", "90d", "--config", str(cfg))
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.startswith("deleted 2 ")

    store = TaskStore(f"sqlite:///{tmp_path / 'ops.sqlite3'}")
    left = {r.kaltura_task_id: r.state for r in store.all()}
    assert left == {
        1000: TaskState.RUNNING,
        1001: TaskState.ABORTED,
        1004: TaskState.QUEUED,
    }
    with store.engine.connect() as conn:
        orphans = conn.exec_driver_sql(
            "SELECT count(*) FROM task_events WHERE task_id NOT IN (SELECT id FROM tasks)"
        ).scalar()
    store.close()
    assert orphans == 0

    bad = cli("purge", "--older-than", "90 days", "--config", str(cfg))
    assert bad.returncode == 2 and "use a whole number" in bad.stderr


def test_check_config_names_every_problem_at_once(tmp_path: Path) -> None:
    (tmp_path / "bearer").write_text("short")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = production_like_config(
            tmp_path,
            metrics={"enabled": True, "port": port},
            status_api={
                "enabled": True,
                "port": free_port(),
                "bearer": {"token_file": str(tmp_path / "bearer")},
            },
            processors={
                "default": "pocketsphinx",
                "engines": {"spare": {"type": "pocketsphinx", "bem": 1e-40}},
            },
        )
        proc = cli("check-config", "--offline", "--config", str(cfg))
    assert proc.returncode == 78, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "config error" in line]
    assert [e.split(": ")[2] for e in errors] == [
        "kaltura.app_token.token_credential",
        "status_api.bearer",
        "metrics.port",
    ]
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    # An engine no route uses is not loaded by `run`: named, as a warning.
    (warning,) = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert "processors.engines.spare: unknown pocketsphinx option 'bem'" in warning

    data = yaml.safe_load(cfg.read_text())
    data["workers"] = {"concurrency": 0, "max_attempts": "many"}
    data["database"]["url"] = "postgres://x"
    cfg.write_text(yaml.safe_dump(data))
    schema = cli("check-config", "--offline", "--config", str(cfg))
    assert schema.returncode == 78
    keys = [line.split(": ")[2] for line in schema.stderr.splitlines()]
    assert keys == ["database.url", "workers.concurrency", "workers.max_attempts"]


def test_run_once_fails_when_kaltura_is_unreachable(tmp_path: Path) -> None:
    cfg = production_like_config(tmp_path)
    data = yaml.safe_load(cfg.read_text())
    data["kaltura"].update(
        service_url=f"http://127.0.0.1:{free_port()}",
        retries=0,
        app_token={"id": "x", "token": "0123456789abcdef"},
    )
    data["storage"] = {"work_dir": str(tmp_path / "work")}
    cfg.write_text(yaml.safe_dump(data))
    proc = subprocess.run(
        [sys.executable, "-m", "reach_vendor", "run", "--once", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "getJobs failed" in proc.stderr.splitlines()[-1]


REMOTE_ENGINES_STAGING_IN_S3 = {
    "amazon_transcribe": {"type": "amazon_transcribe", "bucket": "b", "region": "us-east-1"},
    # Its media staging imports boto3 too (engines/remote/staging.py).
    "remote_transcription": {
        "type": "remote_transcription",
        "base_url": "https://transcription.invalid",
        "key_file": "KEY_FILE",
        "secret_file": "KEY_FILE",
        "profile_id": "p1",
    },
}


@pytest.mark.parametrize("kind", sorted(REMOTE_ENGINES_STAGING_IN_S3))
def test_a_remote_engine_without_boto3_is_a_config_error_naming_the_engine(
    tmp_path: Path, kind: str
) -> None:
    key_file = tmp_path / "remote.key"
    key_file.write_text("k")
    key_file.chmod(0o600)
    engine = {
        k: (str(key_file) if v == "KEY_FILE" else v)
        for k, v in REMOTE_ENGINES_STAGING_IN_S3[kind].items()
    }
    cfg = production_like_config(
        tmp_path, processors={"default": "transcribe", "engines": {"transcribe": engine}}
    )
    data = yaml.safe_load(cfg.read_text())
    data["kaltura"]["app_token"] = {"id": "x", "token": "0123456789abcdef"}
    cfg.write_text(yaml.safe_dump(data))
    # boto3 is the `amazon` extra: a default install does not have it.
    without_boto3 = (
        "import sys; sys.modules['boto3'] = sys.modules['botocore'] = None; "
        "from reach_vendor.ops.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    for command in ("check-config", "run"):
        proc = subprocess.run(
            [sys.executable, "-c", without_boto3, command, "--config", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert proc.returncode == 78, proc.stderr[-2000:]
        assert proc.stderr.strip().splitlines()[-1] == (
            "reach-vendor: config error: processors.engines.transcribe: "
            f"{kind} needs boto3: pip install 'reach-vendor[amazon]'"
        )
