"""held files: one table for every file held for one download (a batch's passwords, a batch's PINs)

The two tables it replaces held files for 15 or 30 minutes at most: a download waiting during the upgrade is
lost (its batch stays; its maker sees "gone", as after the wait).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 22:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tollway.store.types


revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "held_files",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("user_id", tollway.store.types.Id, nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("expires_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_held_files_user_id_users")),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_held_files")),
    )
    with op.batch_alter_table("held_files", schema=None) as batch_op:
        batch_op.create_index("ix_held_files_expires_at", ["expires_at"], unique=False)
        batch_op.create_index("ix_held_files_user_id", ["user_id"], unique=False)
    with op.batch_alter_table("batch_downloads", schema=None) as batch_op:
        batch_op.drop_index("ix_batch_downloads_expires_at")
    op.drop_table("batch_downloads")
    with op.batch_alter_table("card_batch_downloads", schema=None) as batch_op:
        batch_op.drop_index("ix_card_batch_downloads_batch_id")
    op.drop_table("card_batch_downloads")


def downgrade() -> None:
    op.create_table(
        "card_batch_downloads",
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("batch_id", tollway.store.types.Id, nullable=False),
        sa.Column("user_id", tollway.store.types.Id, nullable=False),
        sa.Column("sealed_csv", sa.Text(), nullable=False),
        sa.Column("expires_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["card_batches.id"], name=op.f("fk_card_batch_downloads_batch_id_card_batches")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_card_batch_downloads_user_id_users")),
        sa.PrimaryKeyConstraint("token_digest", name=op.f("pk_card_batch_downloads")),
    )
    with op.batch_alter_table("card_batch_downloads", schema=None) as batch_op:
        batch_op.create_index("ix_card_batch_downloads_batch_id", ["batch_id"], unique=False)
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
    with op.batch_alter_table("held_files", schema=None) as batch_op:
        batch_op.drop_index("ix_held_files_user_id")
        batch_op.drop_index("ix_held_files_expires_at")
    op.drop_table("held_files")
