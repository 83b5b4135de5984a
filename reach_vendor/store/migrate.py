"""The schema, brought to what this code needs with the Alembic migrations in
`reach_vendor/store/migrations`: only by `reach-vendor migrate` and `reach-vendor run`.
Every other use of the store checks the revision and refuses an out-of-date database.

Several replicas may start at once against one empty database, so the upgrade runs under
a lock: a transaction-scoped advisory lock on PostgreSQL (DDL is transactional there, so
the second replica finds the work done), a file lock next to the SQLite file (SQLite DDL
is not covered by pysqlite's implicit transactions).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK_KEY = 0x7265_6163_686D  # "reachm"


class SchemaNotCurrent(Exception):
    """The database is not at the revision this code needs; the message says what to do."""


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None
    return head


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = f"{os.path.abspath(database)}.migrate-lock"
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run every migration up to `revision` (a no-op when the schema is current)."""
    cfg = alembic_config()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return
    with _sqlite_file_lock(engine), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_current(engine: Engine) -> None:
    """Raise `SchemaNotCurrent` unless the database is at this code's head revision."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaNotCurrent(
            f"the database has no schema yet, this version needs revision {head}: "
            "run `reach-vendor migrate`"
        )
    known = {s.revision for s in _scripts().walk_revisions()}
    if current not in known:
        raise SchemaNotCurrent(
            f"the database is at revision {current}, which this version (needing {head}) "
            "does not know: a newer reach-vendor migrated it"
        )
    raise SchemaNotCurrent(
        f"the database is at revision {current}, this version needs {head}: "
        "run `reach-vendor migrate`"
    )
