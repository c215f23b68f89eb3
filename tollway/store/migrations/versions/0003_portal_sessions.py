"""portal sessions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 20:38:29.388049
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tollway.store.types


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", tollway.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sessions_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("sessions")
