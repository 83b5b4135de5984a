"""Alembic migrations on real SQLite and PostgreSQL: a store opened to migrate builds its
schema with them, they match the models, replicas starting together on an empty database
do not trip, and a store opened without migrating refuses a database not at head."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import BigInteger, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from reach_vendor.store import migrate
from reach_vendor.store.tasks import SchemaNotCurrent, TaskStore, make_engine
from tests.support.processes import modules_loaded_by

WIDE = (
    "kaltura_task_id",
    "partner_id",
    "version",
    "service_type",
    "service_feature",
    "turn_around_time",
)
"""The columns that hold integers as Kaltura hands them over."""


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


def test_store_upgrades_to_head_and_schema_matches_models(db_url: str) -> None:
    store = TaskStore(db_url, migrate=True)
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
    TaskStore(db_url, migrate=True).close()
    TaskStore(db_url).close()  # at head: opens without migrating


def test_head_revision_is_alembics_and_matches_what_alembic_reads(db_url: str) -> None:
    """`migrate.HEAD_REVISION` spares a current database Alembic: it must be the newest
    migration (add one, bump it), and our reading of the version table Alembic's."""
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert scripts.get_current_head() == migrate.HEAD_REVISION
    engine = make_engine(db_url, threads=1)
    try:
        assert migrate.current_revision(engine) is None
        migrate.upgrade(engine, "0002")
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == "0002"
        assert migrate.current_revision(engine) == "0002"
    finally:
        engine.dispose()


def test_a_store_on_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    """What the daemon imports it keeps for its lifetime (~12 MiB for Alembic)."""
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    TaskStore(url, migrate=True).close()
    loaded = modules_loaded_by(
        "from reach_vendor.store.tasks import TaskStore\n"
        f"TaskStore({url!r}, migrate=True).close()\n"
        f"TaskStore({url!r}).close()\n"
    )
    assert sorted(m for m in loaded if m.split(".")[0] == "alembic") == []


def test_replicas_starting_together_migrate_once(db_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[TaskStore] = []
    lock = threading.Lock()

    def start() -> None:
        try:
            store = TaskStore(db_url, migrate=True)
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


def test_kaltura_integers_are_widened_to_bigint_keeping_the_rows(db_url: str) -> None:
    """Issue 13, item 1: Kaltura's ids are bigints (KalturaEntryVendorTask.id); an id past
    2^31 overflowed the INTEGER columns on PostgreSQL and failed every poll. A database
    made before the widening keeps its rows and then takes such values."""
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0002")
        row = {
            "kaltura_task_id": 1,
            "partner_id": 7,
            "entry_id": "0_1",
            "version": 1,
            "service_type": 2,
            "service_feature": 1,
            "turn_around_time": -1,
            "access_key": "k",
            "state": "queued",
            "attempts": 0,
            "next_attempt_at": 0.0,
            "created_at": 0.0,
            "updated_at": 0.0,
        }
        insert_row = text(
            f"INSERT INTO tasks ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"
        )
        with engine.begin() as conn:
            conn.execute(insert_row, row)
        migrate.upgrade(engine)
        columns = {c["name"]: c for c in inspect(engine).get_columns("tasks")}
        for name in WIDE:
            assert isinstance(columns[name]["type"], BigInteger), (name, columns[name]["type"])
        big = {name: (1 << 63) - 1 for name in WIDE}
        with engine.begin() as conn:
            conn.execute(insert_row, {**row, **big, "entry_id": "0_2"})
            kept = conn.execute(text("SELECT entry_id, partner_id FROM tasks ORDER BY id")).all()
            indexes = {ix["name"] for ix in inspect(conn).get_indexes("tasks")}
        assert [tuple(r) for r in kept] == [("0_1", 7), ("0_2", (1 << 63) - 1)]
        assert {"ix_tasks_kaltura_task_id", "ix_tasks_partner_claimed"} <= indexes
        with engine.begin() as conn, pytest.raises(IntegrityError):
            conn.execute(insert_row, {**row, "entry_id": "0_3"})  # the id is still unique
    finally:
        engine.dispose()


def test_a_store_opened_without_migrating_refuses_an_old_schema_and_leaves_it(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0002")
        head = migrate.head_revision()
        with pytest.raises(SchemaNotCurrent) as refused:
            TaskStore(db_url)
        assert str(refused.value) == (
            f"the database is at revision 0002, this version needs {head}: "
            "run `reach-vendor migrate`"
        )
        assert migrate.current_revision(engine) == "0002"
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(SchemaNotCurrent, match="revision 9999, which this version"):
            TaskStore(db_url)
    finally:
        engine.dispose()


def test_a_store_opened_without_migrating_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite3"
    with pytest.raises(SchemaNotCurrent, match="^no database at .*: run `reach-vendor migrate`$"):
        TaskStore(f"sqlite:///{missing}")
    assert not missing.exists()
    with pytest.raises(SchemaNotCurrent, match="has no schema yet"):
        TaskStore("sqlite://")
