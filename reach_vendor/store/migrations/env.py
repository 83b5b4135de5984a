"""Alembic environment for the task store.

`reach-vendor migrate` and `run` (`reach_vendor.store.migrate.upgrade`) hand their
connection over in `config.attributes["connection"]`; `alembic -x url=...` by hand also
works, to inspect or stamp a database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import reach_vendor.store.models  # noqa: F401  (registers the tables on the metadata)

config = context.config
target_metadata = SQLModel.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database with -x url=... (or sqlalchemy.url)")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
