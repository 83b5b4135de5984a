"""The schema, brought to what this code needs with the Alembic migrations in
`reach_vendor/store/migrations`: only by `reach-vendor migrate` and `reach-vendor run`.
Every other use of the store checks the revision and refuses an out-of-date database.

Alembic is imported only when the schema has to change, or to explain why it cannot: a
daemon whose database is current does not keep its modules (~12 MiB) for its lifetime.

Several replicas may start at once against one empty database, so the upgrade runs under
a lock: a transaction-scoped advisory lock on PostgreSQL (DDL is transactional there, so
the second replica finds the work done), a file lock next to the SQLite file (SQLite DDL
is not covered by pysqlite's implicit transactions).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
HEAD_REVISION = "0005_task_progress"
"""The newest migration's revision (a test holds it to Alembic's own answer): a database
at it needs nothing from Alembic."""
_VERSION_TABLE = "alembic_version"
_MIGRATION_LOCK_KEY = 0x7265_6163_686D  # "reachm"
_import_lock = threading.Lock()


def _import_alembic() -> None:
    """Import Alembic's modules once, one thread at a time: replicas' stores may start on
    threads together, and a package imported by several threads at once can be seen half
    made (its circular imports)."""
    with _import_lock:
        import alembic.command
        import alembic.config
        import alembic.script  # noqa: F401


class SchemaNotCurrent(Exception):
    """The database is not at the revision this code needs; the message says what to do."""


def alembic_config() -> Config:
    _import_alembic()
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    cfg = alembic_config()  # imports Alembic
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(cfg)


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


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the migration lock: PostgreSQL's advisory
    lock inside it, or the file lock around it for SQLite."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            yield conn
        return
    with _sqlite_file_lock(engine), engine.begin() as conn:
        yield conn


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run every migration up to `revision` (a no-op when the schema is current). The
    revision is read under the lock, as before Alembic was spared: a replica migrating
    meanwhile is waited for, not read half-way."""
    to_head = revision in ("head", HEAD_REVISION)
    with _migration_lock(engine) as conn:
        if not (to_head and _revision(conn) == HEAD_REVISION):
            _alembic_upgrade(conn, revision)


def _alembic_upgrade(conn: Connection, revision: str) -> None:
    cfg = alembic_config()
    from alembic import command

    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The database's revision, as Alembic's MigrationContext reads it (its version
    table, none yet: None), without importing Alembic."""
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table(_VERSION_TABLE):
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:  # branches: never made by this project's linear migrations
        raise SchemaNotCurrent(f"the database has several revisions at once: {sorted(rows)}")
    return str(rows[0]) if rows else None


def require_current(engine: Engine) -> None:
    """Raise `SchemaNotCurrent` unless the database is at this code's head revision."""
    current = current_revision(engine)
    if current == HEAD_REVISION:
        return
    head = head_revision()
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
