"""login attempts counted per login and per address; a node's contact phone; sessions by user

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tollway.store.types


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", tollway.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )
    op.add_column("nodes", sa.Column("phone", sa.String(length=16), nullable=True))
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_sessions_user_id", table_name="sessions")
    with op.batch_alter_table("nodes") as batch_op:
        batch_op.drop_column("phone")
    op.drop_table("login_throttles")
