"""Delivery record: upload tokens, asset ids and what was sent, per task (JSON).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Kaltura does not let vendors list caption assets and kills the access key on READY, so
what a delivery did is kept here (reach_vendor.domain.delivery.DeliveryRecord).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("delivery", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("delivery")
