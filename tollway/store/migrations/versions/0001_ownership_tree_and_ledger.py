"""ownership tree and ledger

Revision ID: 0001
Revises:
Create Date: 2026-11-21 20:11:23.913293
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tollway.store.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_rates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("base_currency", sa.String(length=3), nullable=False),
        sa.Column("quote_currency", sa.String(length=3), nullable=False),
        sa.Column("rate", tollway.store.types.ExactDecimal(length=40), nullable=False),
        sa.Column("valid_from", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_rates")),
        sa.UniqueConstraint(
            "base_currency",
            "quote_currency",
            "valid_from",
            name=op.f("uq_exchange_rates_base_currency_quote_currency_valid_from"),
        ),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=400), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("client_type", sa.String(length=16), nullable=True),
        sa.Column("login", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("allowed_client_types", sa.String(length=200), nullable=False),
        sa.Column("allowed_features", sa.String(length=400), nullable=False),
        sa.Column("clients_limit", sa.Integer(), nullable=True),
        sa.Column("concurrent_calls_limit", sa.Integer(), nullable=True),
        sa.Column("managed_by_agent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(kind = 'client') = (client_type IS NOT NULL)", name=op.f("ck_nodes_client_type_only_on_clients")
        ),
        sa.CheckConstraint("(kind = 'provider') = (parent_id IS NULL)", name=op.f("ck_nodes_only_provider_is_root")),
        sa.CheckConstraint("(kind = 'reseller') = (level IS NOT NULL)", name=op.f("ck_nodes_level_only_on_resellers")),
        sa.CheckConstraint("kind IN ('provider', 'reseller', 'agent', 'client')", name=op.f("ck_nodes_kind")),
        sa.CheckConstraint("status IN ('active', 'suspended', 'closed')", name=op.f("ck_nodes_status")),
        sa.ForeignKeyConstraint(["managed_by_agent_id"], ["nodes.id"], name=op.f("fk_nodes_managed_by_agent_id_nodes")),
        sa.ForeignKeyConstraint(["parent_id"], ["nodes.id"], name=op.f("fk_nodes_parent_id_nodes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
        sa.UniqueConstraint("login", name=op.f("uq_nodes_login")),
        sa.UniqueConstraint("path", name=op.f("uq_nodes_path")),
    )
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_nodes_one_provider",
            ["kind"],
            unique=True,
            sqlite_where=sa.text("kind = 'provider'"),
            postgresql_where=sa.text("kind = 'provider'"),
        )
        batch_op.create_index("ix_nodes_parent_id", ["parent_id"], unique=False)

    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), nullable=False),
        sa.Column("debits_pending", sa.BigInteger(), nullable=False),
        sa.Column("credits_pending", sa.BigInteger(), nullable=False),
        sa.Column("credit_limit_micros", sa.BigInteger(), nullable=False),
        sa.Column("floor", sa.Boolean(), nullable=False),
        sa.Column("created_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("credit_limit_micros >= 0", name=op.f("ck_ledger_accounts_credit_limit_not_negative")),
        sa.CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
            name=op.f("ck_ledger_accounts_totals_not_negative"),
        ),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_ledger_accounts_node_id_nodes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint("node_id", "purpose", "currency", name=op.f("uq_ledger_accounts_node_id_purpose_currency")),
    )
    op.create_table(
        "transfers",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("debit_account_id", sa.Integer(), nullable=False),
        sa.Column("credit_account_id", sa.Integer(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("phase", sa.String(length=8), nullable=False),
        sa.Column("pending_id", sa.String(length=128), nullable=True),
        sa.Column("expires_at", tollway.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("overshoot_micros", sa.BigInteger(), nullable=False),
        sa.Column("exchange_rate", tollway.store.types.ExactDecimal(length=40), nullable=True),
        sa.Column("created_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("phase IN ('single', 'pending', 'post', 'void')", name=op.f("ck_transfers_phase")),
        sa.CheckConstraint("amount_micros > 0", name=op.f("ck_transfers_amount_positive")),
        sa.CheckConstraint("debit_account_id <> credit_account_id", name=op.f("ck_transfers_accounts_different")),
        sa.ForeignKeyConstraint(
            ["credit_account_id"], ["ledger_accounts.id"], name=op.f("fk_transfers_credit_account_id_ledger_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id"], ["ledger_accounts.id"], name=op.f("fk_transfers_debit_account_id_ledger_accounts")
        ),
        sa.ForeignKeyConstraint(["pending_id"], ["transfers.id"], name=op.f("fk_transfers_pending_id_transfers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
        sa.UniqueConstraint("pending_id", name=op.f("uq_transfers_pending_id")),
    )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index("ix_transfers_credit_account_id", ["credit_account_id", "created_at"], unique=False)
        batch_op.create_index("ix_transfers_debit_account_id", ["debit_account_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_transfers_expiring",
            ["expires_at"],
            unique=False,
            sqlite_where=sa.text("expires_at IS NOT NULL"),
            postgresql_where=sa.text("expires_at IS NOT NULL"),
        )
        batch_op.create_index("ix_transfers_reference", ["reference"], unique=False)
    _make_transfers_append_only()


def _make_transfers_append_only() -> None:
    """The ledger is append-only: a correction is a new transfer, never an edit."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION tollway_refuse_transfer_change() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'transfers are append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers "
            "FOR EACH ROW EXECUTE FUNCTION tollway_refuse_transfer_change()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER transfers_no_{action.lower()} BEFORE {action} ON transfers "
                "BEGIN SELECT RAISE(ABORT, 'transfers are append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER transfers_append_only ON transfers")
        op.execute("DROP FUNCTION tollway_refuse_transfer_change()")
    else:
        op.execute("DROP TRIGGER transfers_no_update")
        op.execute("DROP TRIGGER transfers_no_delete")
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_transfers_reference")
        batch_op.drop_index(
            "ix_transfers_expiring",
            sqlite_where=sa.text("expires_at IS NOT NULL"),
            postgresql_where=sa.text("expires_at IS NOT NULL"),
        )
        batch_op.drop_index("ix_transfers_debit_account_id")
        batch_op.drop_index("ix_transfers_credit_account_id")

    op.drop_table("transfers")
    op.drop_table("ledger_accounts")
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_index("ix_nodes_parent_id")
        batch_op.drop_index(
            "ix_nodes_one_provider",
            sqlite_where=sa.text("kind = 'provider'"),
            postgresql_where=sa.text("kind = 'provider'"),
        )

    op.drop_table("nodes")
    op.drop_table("exchange_rates")
