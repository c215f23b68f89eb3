"""calling cards: a batch's plan and agent, the portal's one-time downloads of a batch's CSV

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tollway.store.types


revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("card_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan_id", tollway.store.types.Id, nullable=True))
        batch_op.add_column(sa.Column("agent_id", tollway.store.types.Id, nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_card_batches_plan_id_plans"), "plans", ["plan_id"], ["id"])
        batch_op.create_foreign_key(batch_op.f("fk_card_batches_agent_id_nodes"), "nodes", ["agent_id"], ["id"])
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


def downgrade() -> None:
    with op.batch_alter_table("card_batch_downloads", schema=None) as batch_op:
        batch_op.drop_index("ix_card_batch_downloads_batch_id")
    op.drop_table("card_batch_downloads")
    with op.batch_alter_table("card_batches", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_card_batches_agent_id_nodes"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_card_batches_plan_id_plans"), type_="foreignkey")
        batch_op.drop_column("agent_id")
        batch_op.drop_column("plan_id")
