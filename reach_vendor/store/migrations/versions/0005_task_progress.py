"""Task progress: how far the engine got through the audio (0..1) in the current run.

Revision ID: 0005_task_progress
Revises: 0004_ops_view_indexes
Create Date: 2026-11-28

The pipeline passed none of the engines' progress on: a 15-minute file showed the same
stage and percentage for 13 minutes (issue 15). Nullable: no engine has said anything
yet, and rows made before this revision need no value.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_task_progress"
down_revision = "0004_ops_view_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("progress", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("progress")
