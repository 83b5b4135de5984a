"""Indexes for the ops views at scale: tasks finished lately (queue snapshot, the ops
page's "recently finished"), newest first, and lookup by entry id.

Revision ID: 0004_ops_view_indexes
Revises: 0003
Create Date: 2026-11-28

With 300k tasks stored, every scrape and ops-page refresh scanned and sorted the whole
table (bench/ops_at_scale.py). None of these columns changes more than once per task, so
the indexes cost the pipeline's frequent updates nothing.
"""

from __future__ import annotations

from alembic import op

revision = "0004_ops_view_indexes"
down_revision = "0003"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_tasks_finished_at": ["finished_at"],
    "ix_tasks_created_at": ["created_at"],
    "ix_tasks_entry_id": ["entry_id"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "tasks", columns)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, table_name="tasks")
