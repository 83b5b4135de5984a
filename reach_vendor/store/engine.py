"""Database engines for the store: SQLite (one host) or PostgreSQL (replicas)."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import create_engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def sqlite_path(url: str) -> str | None:
    """The file behind an SQLite URL, or None (in-memory, or not SQLite)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[1] if "///" in url else ""
    return None if not path or path == ":memory:" else path


def _create_private_file(url: str) -> None:
    """Create the SQLite file 0600 before SQLite does: it holds access keys."""
    path = sqlite_path(url)
    if path is None or os.path.exists(path):
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def make_engine(url: str, *, threads: int = 5) -> Engine:
    """An engine whose pool keeps a connection open for each of `threads` concurrent users
    (the default pool closes any past 5, and reopening costs a handshake each time)."""
    pool_args: dict[str, Any] = {"pool_size": threads, "max_overflow": 10}
    if url.startswith("sqlite"):
        _create_private_file(url)
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
            **({} if memory else pool_args),
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **pool_args)
