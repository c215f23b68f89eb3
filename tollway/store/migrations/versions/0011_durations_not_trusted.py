"""reported durations: what the switch said and why it was not believed; switches trusted with durations

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("switches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trusted_durations", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reported_duration_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("overshoot_reason", sa.String(length=24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("overshoot_reason")
        batch_op.drop_column("reported_duration_seconds")
    with op.batch_alter_table("switches", schema=None) as batch_op:
        batch_op.drop_column("trusted_durations")
