"""Kaltura's integers as BIGINT: task id, partner id, version, service type and feature,
turn-around time.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Kaltura declares them bigint (`KalturaEntryVendorTask.id` is `@var bigint`); a task id
past 2^31 overflowed INTEGER on PostgreSQL and failed every poll. SQLite stores any
integer in 64 bits already, but the declared type changes too, so the schema matches the
models on both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = {
    "kaltura_task_id": False,
    "partner_id": False,
    "version": False,
    "service_type": True,
    "service_feature": True,
    "turn_around_time": True,
}
"""Column name: nullable."""


def _retype(old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        # One ALTER TABLE for all: PostgreSQL rewrites the table (and its indexes) once
        # per statement, and this table grows with every task ever served.
        op.execute(
            "ALTER TABLE tasks "
            + ", ".join(
                f"ALTER COLUMN {name} TYPE {new.compile(dialect=op.get_bind().dialect)}"
                for name in _COLUMNS
            )
        )
        return
    # SQLite cannot alter a column's type: batch mode copies the table once.
    with op.batch_alter_table("tasks") as batch:
        for name, nullable in _COLUMNS.items():
            batch.alter_column(name, type_=new, existing_type=old, existing_nullable=nullable)


def upgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    _retype(sa.BigInteger(), sa.Integer())
