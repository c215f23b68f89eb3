"""batch downloads: a batch's CSV of passwords, sealed, held for one download

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 21:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tollway.store.types


revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_downloads",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", tollway.store.types.Id, nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("expires_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_batch_downloads_user_id_users")),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_batch_downloads")),
    )
    with op.batch_alter_table("batch_downloads", schema=None) as batch_op:
        batch_op.create_index("ix_batch_downloads_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("batch_downloads", schema=None) as batch_op:
        batch_op.drop_index("ix_batch_downloads_expires_at")
    op.drop_table("batch_downloads")
