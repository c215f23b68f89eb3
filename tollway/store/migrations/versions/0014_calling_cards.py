"""calling cards: card batches, cards, their caller numbers and access numbers

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 18:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tollway.store.types


revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "card_batches",
        sa.Column("id", tollway.store.types.Id, nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("owner_id", tollway.store.types.Id, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("face_value_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("tariff_id", tollway.store.types.Id, nullable=True),
        sa.Column("expires_at", tollway.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("expiry_days", sa.Integer(), nullable=True),
        sa.Column("pin_length", sa.Integer(), nullable=False),
        sa.Column("serial_prefix", sa.String(length=12), nullable=False),
        sa.Column("created_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("face_value_micros > 0", name=op.f("ck_card_batches_face_value_positive")),
        sa.CheckConstraint("(expires_at IS NULL) OR (expiry_days IS NULL)", name=op.f("ck_card_batches_one_expiry")),
        sa.ForeignKeyConstraint(["owner_id"], ["nodes.id"], name=op.f("fk_card_batches_owner_id_nodes")),
        sa.ForeignKeyConstraint(["tariff_id"], ["tariffs.id"], name=op.f("fk_card_batches_tariff_id_tariffs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_batches")),
        sa.UniqueConstraint("name", name=op.f("uq_card_batches_name")),
    )
    with op.batch_alter_table("card_batches", schema=None) as batch_op:
        batch_op.create_index("ix_card_batches_owner_id", ["owner_id"], unique=False)

    op.create_table(
        "cards",
        sa.Column("id", tollway.store.types.Id, nullable=False),
        sa.Column("batch_id", tollway.store.types.Id, nullable=False),
        sa.Column("owner_id", tollway.store.types.Id, nullable=False),
        sa.Column("node_id", tollway.store.types.Id, nullable=False),
        sa.Column("serial_number", sa.BigInteger(), nullable=False),
        sa.Column("pin_digest", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("activated_at", tollway.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", tollway.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('new', 'active', 'depleted', 'expired', 'blocked', 'closed')", name=op.f("ck_cards_state")
        ),
        sa.ForeignKeyConstraint(["batch_id"], ["card_batches.id"], name=op.f("fk_cards_batch_id_card_batches")),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_cards_node_id_nodes")),
        sa.ForeignKeyConstraint(["owner_id"], ["nodes.id"], name=op.f("fk_cards_owner_id_nodes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cards")),
        sa.UniqueConstraint("node_id", name=op.f("uq_cards_node_id")),
        sa.UniqueConstraint("owner_id", "serial_number", name=op.f("uq_cards_owner_id_serial_number")),
        sa.UniqueConstraint("pin_digest", name=op.f("uq_cards_pin_digest")),
    )
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.create_index("ix_cards_batch_id", ["batch_id"], unique=False)

    op.create_table(
        "access_numbers",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("owner_id", tollway.store.types.Id, nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("exclusive", sa.Boolean(), nullable=False),
        sa.Column("created_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["nodes.id"], name=op.f("fk_access_numbers_owner_id_nodes")),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_access_numbers")),
    )
    with op.batch_alter_table("access_numbers", schema=None) as batch_op:
        batch_op.create_index("ix_access_numbers_owner_id", ["owner_id"], unique=False)

    op.create_table(
        "card_callers",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("card_id", tollway.store.types.Id, nullable=False),
        sa.Column("created_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name=op.f("fk_card_callers_card_id_cards")),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_card_callers")),
    )
    with op.batch_alter_table("card_callers", schema=None) as batch_op:
        batch_op.create_index("ix_card_callers_card_id", ["card_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("card_callers", schema=None) as batch_op:
        batch_op.drop_index("ix_card_callers_card_id")
    op.drop_table("card_callers")
    with op.batch_alter_table("access_numbers", schema=None) as batch_op:
        batch_op.drop_index("ix_access_numbers_owner_id")
    op.drop_table("access_numbers")
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_index("ix_cards_batch_id")
    op.drop_table("cards")
    with op.batch_alter_table("card_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_card_batches_owner_id")
    op.drop_table("card_batches")
