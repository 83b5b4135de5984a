"""Issue 15, item 2: migration 0005 adds the task's progress (a fraction, NULL until an
engine reports one) to a database in use, on real SQLite and PostgreSQL, keeping its rows,
and goes back down cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Float, inspect, text

from reach_vendor.store import migrate
from reach_vendor.store.tasks import make_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


ROW = {
    "kaltura_task_id": 1,
    "partner_id": 7,
    "entry_id": "0_1",
    "version": 1,
    "access_key": "k",
    "state": "running",
    "stage": "transcribe",
    "attempts": 0,
    "next_attempt_at": 0.0,
    "created_at": 0.0,
    "updated_at": 0.0,
}


def test_0005_adds_a_nullable_progress_and_keeps_the_rows(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine, "0004_ops_view_indexes")
        with engine.begin() as conn:
            conn.execute(
                text(f"INSERT INTO tasks ({', '.join(ROW)}) VALUES (:{', :'.join(ROW)})"),
                ROW,
            )
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == "0005_task_progress" == migrate.head_revision()
        column = {c["name"]: c for c in inspect(engine).get_columns("tasks")}["progress"]
        assert column["nullable"] and isinstance(column["type"], Float)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT entry_id, progress FROM tasks")).one() == ("0_1", None)
            conn.execute(text("UPDATE tasks SET progress = 0.25"))
            assert conn.execute(text("SELECT progress FROM tasks")).scalar_one() == 0.25

        with engine.begin() as conn:
            cfg = migrate.alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004_ops_view_indexes")
        assert "progress" not in {c["name"] for c in inspect(engine).get_columns("tasks")}
        with engine.begin() as conn:
            assert conn.execute(text("SELECT entry_id FROM tasks")).scalar_one() == "0_1"
    finally:
        engine.dispose()
