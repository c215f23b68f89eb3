"""sealed keys: the calling cards' PIN digest key, sealed with the installation's secret key

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 21:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tollway.store.types


revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sealed_keys",
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("purpose", name=op.f("pk_sealed_keys")),
    )


def downgrade() -> None:
    op.drop_table("sealed_keys")
