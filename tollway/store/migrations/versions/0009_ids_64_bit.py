"""ids and the columns that refer to them become 64-bit (BIGINT, bigint sequences) on PostgreSQL

SQLite needs nothing: its INTEGER holds 64 bits, and an INTEGER PRIMARY KEY is its 64-bit rowid.
On PostgreSQL each table is rewritten once (every column of it in one ALTER TABLE) under an exclusive
lock, so the upgrade takes time in proportion to the data: run it in a maintenance window.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Every table with an id or a column referring to one, as of 0008; the id columns number themselves.
ID_COLUMNS: dict[str, tuple[str, ...]] = {
    "exchange_rates": ("id",),
    "nodes": ("id", "parent_id", "managed_by_agent_id"),
    "agent_terms": ("node_id",),
    "api_keys": ("id", "node_id"),
    "audit_log": ("id", "actor_node_id"),
    "dial_plans": ("node_id",),
    "emails": ("id", "node_id"),
    "extensions": ("id", "organization_id", "user_node_id"),
    "ledger_accounts": ("id", "node_id"),
    "low_balance_alerts": ("node_id",),
    "organization_limits": ("node_id",),
    "organization_users": ("node_id", "organization_id"),
    "organizations": ("node_id",),
    "plans": ("id", "owner_id"),
    "tariffs": ("id", "owner_id", "base_tariff_id"),
    "trunk_addresses": ("id", "node_id"),
    "users": ("id", "node_id"),
    "caller_ids": ("id", "node_id", "extension_id"),
    "customer_profiles": ("id", "owner_id", "tariff_id", "plan_id"),
    "follow_me": ("id", "node_id", "extension_id"),
    "rates": ("id", "tariff_id"),
    "sessions": ("id", "user_id"),
    "subscriptions": ("id", "node_id", "plan_id"),
    "switches": ("id", "api_key_id"),
    "tariff_assignments": ("node_id", "tariff_id"),
    "transfers": ("debit_account_id", "credit_account_id"),
    "agent_profiles": ("agent_id", "profile_id"),
    "calls": ("id", "node_id", "switch_id", "tenant_id"),
    "call_charges": ("call_id", "node_id", "wallet_account_id", "revenue_account_id", "subscription_id"),
}


def _retype(sql_type: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, columns in ID_COLUMNS.items():
        op.execute(f"ALTER TABLE {table} " + ", ".join(f"ALTER COLUMN {c} TYPE {sql_type}" for c in columns))
        if "id" in columns:
            sequence = bind.execute(sa.text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table})
            name = sequence.scalar()
            if name is not None:
                op.execute(f"ALTER SEQUENCE {name} AS {sql_type}")


def upgrade() -> None:
    _retype("BIGINT")


def downgrade() -> None:
    _retype("INTEGER")  # fails, changing nothing, once an id has passed 2**31 - 1
