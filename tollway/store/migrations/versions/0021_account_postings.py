"""account postings: what batches change in accounts without a floor, appended rather than written to the
account's row (no lock on the provider's revenue account that every call credits), folded in batches

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tollway.store.types


revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_postings",
        sa.Column("id", tollway.store.types.Id, nullable=False),
        sa.Column("account_id", tollway.store.types.Id, nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), nullable=False),
        sa.Column("debits_pending", sa.BigInteger(), nullable=False),
        sa.Column("credits_pending", sa.BigInteger(), nullable=False),
        sa.Column("created_at", tollway.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["ledger_accounts.id"], name=op.f("fk_account_postings_account_id_ledger_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_postings")),
    )
    with op.batch_alter_table("account_postings", schema=None) as batch_op:
        batch_op.create_index("ix_account_postings_account_id", ["account_id", "id"], unique=False)


def downgrade() -> None:
    # Fold what is left first: the rows must hold every balance once the table is gone.
    op.execute(
        "UPDATE ledger_accounts SET"
        " debits_posted = debits_posted + (SELECT SUM(p.debits_posted) FROM account_postings p"
        " WHERE p.account_id = ledger_accounts.id),"
        " credits_posted = credits_posted + (SELECT SUM(p.credits_posted) FROM account_postings p"
        " WHERE p.account_id = ledger_accounts.id),"
        " debits_pending = debits_pending + (SELECT SUM(p.debits_pending) FROM account_postings p"
        " WHERE p.account_id = ledger_accounts.id),"
        " credits_pending = credits_pending + (SELECT SUM(p.credits_pending) FROM account_postings p"
        " WHERE p.account_id = ledger_accounts.id)"
        " WHERE id IN (SELECT account_id FROM account_postings)"
    )
    with op.batch_alter_table("account_postings", schema=None) as batch_op:
        batch_op.drop_index("ix_account_postings_account_id")
    op.drop_table("account_postings")
