"""Alembic migrations on real SQLite and PostgreSQL: the store builds its schema with them,
they match the models, and replicas starting together on an empty database do not trip."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

from reach_vendor import migrate
from reach_vendor.store import TaskStore


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


def test_store_upgrades_to_head_and_schema_matches_models(db_url: str) -> None:
    store = TaskStore(db_url)
    try:
        head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
        assert head is not None and migrate.current_revision(store.engine) == head
        columns = {c["name"]: c for c in inspect(store.engine).get_columns("tasks")}
        assert columns["processor_state"]["nullable"]
        assert "TEXT" in str(columns["processor_state"]["type"]).upper()
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
    finally:
        store.close()
    # A second start on a current schema changes nothing and keeps the data.
    TaskStore(db_url).close()


def test_replicas_starting_together_migrate_once(db_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[TaskStore] = []
    lock = threading.Lock()

    def start() -> None:
        try:
            store = TaskStore(db_url)
            with lock:
                stores.append(store)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(stores) == 3
    for store in stores:
        store.close()
