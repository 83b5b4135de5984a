"""Initial schema: tasks (with leases, attempts, processor state), task_events, poll_state.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Migrations are frozen copies of the schema, written with plain SQLAlchemy types: they
must keep producing the same tables whatever the models in `store.py` become later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kaltura_task_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("service_type", sa.Integer(), nullable=True),
        sa.Column("service_feature", sa.Integer(), nullable=True),
        sa.Column("turn_around_time", sa.Integer(), nullable=True),
        sa.Column("expected_finish_time", sa.Float(), nullable=True),
        sa.Column("access_key", sa.String(), nullable=False),
        sa.Column("access_key_expires_at", sa.Float(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("lease_owner", sa.String(), nullable=True),
        sa.Column("lease_expires_at", sa.Float(), nullable=True),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("caption_asset_id", sa.String(), nullable=True),
        sa.Column("transcript_asset_id", sa.String(), nullable=True),
        sa.Column("accuracy", sa.Integer(), nullable=True),
        sa.Column("processor", sa.String(), nullable=True),
        sa.Column("processor_state", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_tasks_kaltura_task_id", "tasks", ["kaltura_task_id"], unique=True)
    op.create_index("ix_tasks_lease_owner", "tasks", ["lease_owner"])
    op.create_index("ix_tasks_partner_claimed", "tasks", ["partner_id", "claimed_at"])
    op.create_index("ix_tasks_runnable", "tasks", ["state", "next_attempt_at"])

    op.create_table(
        "task_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=True),
        sa.Column("message", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_task_events_task_id", "task_events", ["task_id"])

    op.create_table(
        "poll_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_poll_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("poll_state")
    op.drop_index("ix_task_events_task_id", table_name="task_events")
    op.drop_table("task_events")
    for name in (
        "ix_tasks_runnable",
        "ix_tasks_partner_claimed",
        "ix_tasks_lease_owner",
        "ix_tasks_kaltura_task_id",
    ):
        op.drop_index(name, table_name="tasks")
    op.drop_table("tasks")
