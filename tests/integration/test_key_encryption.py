"""Access keys encrypted at rest with a key from `database.key_file` (real Fernet, real
databases, the real daemon process): the raw storage never holds the plaintext, the daemon
still reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.common.config_base import ConfigError
from reach_vendor.common.secretbox import SecretBoxError
from reach_vendor.domain.offer import OfferedTask
from reach_vendor.store.tasks import TaskStore
from tests.support.daemon import Clip, add_speech_task, run_daemon_once, secrets_seen, write_config

SECRET_KEY = "djJ8NDEyNDgzMnx0aGlzLWlzLWEtdmVyeS1zZWNyZXQtYWNjZXNzLWtleQ"


def offered(key: str = SECRET_KEY) -> OfferedTask:
    return OfferedTask(
        kaltura_task_id=42,
        partner_id=7,
        entry_id="0_abc",
        version=1,
        access_key=key,
        access_key_expires_at=None,
        service_type=2,
        service_feature=1,
        turn_around_time=-1,
        expected_finish_time=None,
    )


def key_file(tmp_path: Path, name: str = "db.key") -> Path:
    path = tmp_path / name
    path.write_bytes(Fernet.generate_key() + b"\n")
    return path


def test_sqlite_file_never_holds_the_plaintext_key(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    store = TaskStore(f"sqlite:///{db}", key_file=key_file(tmp_path), migrate=True)
    store.record_offered([offered()])
    rec = store.by_kaltura_id(42)
    assert rec is not None and rec.id is not None and rec.access_key == SECRET_KEY
    store.update(rec.id, access_key=SECRET_KEY + "-extended")
    assert store.get(rec.id).access_key == SECRET_KEY + "-extended"  # type: ignore[union-attr]
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("db.sqlite3*"))
    assert b"fernet:" in raw
    assert SECRET_KEY.encode() not in raw


def test_postgres_rows_hold_only_ciphertext(pg_url: str, tmp_path: Path) -> None:
    store = TaskStore(pg_url, key_file=key_file(tmp_path), migrate=True)
    try:
        store.record_offered([offered()])
        with store.engine.connect() as conn:
            stored = conn.execute(text("SELECT access_key FROM tasks")).scalar_one()
        assert stored.startswith("fernet:") and SECRET_KEY not in stored
        assert store.all()[0].access_key == SECRET_KEY
    finally:
        store.close()


def test_wrong_or_missing_key_fails_loudly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    TaskStore(url, key_file=key_file(tmp_path), migrate=True).record_offered([offered()])
    with pytest.raises(SecretBoxError, match="wrong key file"):
        TaskStore(url, key_file=key_file(tmp_path, "other.key")).by_kaltura_id(42)
    with pytest.raises(SecretBoxError, match="key_file is not set"):
        TaskStore(url).by_kaltura_id(42)


def test_plaintext_rows_from_before_encryption_still_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    TaskStore(url, migrate=True).record_offered([offered()])
    store = TaskStore(url, key_file=key_file(tmp_path))
    rec = store.by_kaltura_id(42)
    assert rec is not None and rec.access_key == SECRET_KEY


def test_unusable_key_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match=r"^database\.key_file: .* Fernet key"):
        TaskStore(f"sqlite:///{tmp_path / 'db.sqlite3'}", key_file=bad)
    with pytest.raises(ConfigError, match=r"^database\.key_file: cannot read"):
        TaskStore(f"sqlite:///{tmp_path / 'db.sqlite3'}", key_file=tmp_path / "missing")


def test_daemon_with_key_file_delivers_and_stores_no_plaintext_key(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor, clips: list[Clip]
) -> None:
    task_id = add_speech_task(emulator, vendor, clips[0], access_key_ttl_s=60)
    cfg = write_config(
        tmp_path,
        emulator,
        vendor,
        database={"key_file": str(key_file(tmp_path))},
        processors={"default": "scripted"},
        workers={"access_key_margin_s": 3600},  # the key is extended: a second key stored
    )
    result = run_daemon_once(cfg, timeout=90)
    assert result.returncode == 0, result.stderr[-3000:]
    assert emulator.task(task_id)["status"] == 2
    keys = [k for k in secrets_seen(emulator, vendor) if k != vendor.app_token]
    assert len(keys) >= 2
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("reach.sqlite3*"))
    assert raw and b"fernet:" in raw
    for key in keys:
        assert key.encode() not in raw
