"""Tables, in SQLAlchemy Core. The domain never sees them; stores map rows to domain objects."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from tollway.store.types import ExactDecimal, UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)

nodes = Table(
    "nodes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("parent_id", Integer, ForeignKey("nodes.id"), nullable=True),
    Column("path", String(400), nullable=False, unique=True),  # "/1/4/9/": ids from the provider down
    Column("kind", String(16), nullable=False),
    Column("level", Integer, nullable=True),
    Column("client_type", String(16), nullable=True),
    Column("login", String(63), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("language", String(8), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("allowed_client_types", String(200), nullable=False, default=""),
    Column("allowed_features", String(400), nullable=False, default=""),
    Column("clients_limit", Integer, nullable=True),
    Column("concurrent_calls_limit", Integer, nullable=True),
    Column("managed_by_agent_id", Integer, ForeignKey("nodes.id"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("kind IN ('provider', 'reseller', 'agent', 'client')", name="kind"),
    CheckConstraint("status IN ('active', 'suspended', 'closed')", name="status"),
    CheckConstraint("(kind = 'reseller') = (level IS NOT NULL)", name="level_only_on_resellers"),
    CheckConstraint("(kind = 'client') = (client_type IS NOT NULL)", name="client_type_only_on_clients"),
    CheckConstraint("(kind = 'provider') = (parent_id IS NULL)", name="only_provider_is_root"),
)
Index("ix_nodes_parent_id", nodes.c.parent_id)
Index(
    "ix_nodes_one_provider",
    nodes.c.kind,
    unique=True,
    sqlite_where=nodes.c.kind == "provider",
    postgresql_where=nodes.c.kind == "provider",
)

ledger_accounts = Table(
    "ledger_accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("node_id", Integer, ForeignKey("nodes.id"), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("debits_posted", BigInteger, nullable=False, default=0),
    Column("credits_posted", BigInteger, nullable=False, default=0),
    Column("debits_pending", BigInteger, nullable=False, default=0),
    Column("credits_pending", BigInteger, nullable=False, default=0),
    Column("credit_limit_micros", BigInteger, nullable=False, default=0),
    Column("floor", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("node_id", "purpose", "currency"),
    CheckConstraint(
        "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
        name="totals_not_negative",
    ),
    CheckConstraint("credit_limit_micros >= 0", name="credit_limit_not_negative"),
)

transfers = Table(
    "transfers",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("debit_account_id", Integer, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("credit_account_id", Integer, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("amount_micros", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("reference", String(200), nullable=True),
    Column("phase", String(8), nullable=False),
    # At most one post or void per pending transfer: the database enforces "exactly once".
    Column("pending_id", String(128), ForeignKey("transfers.id"), nullable=True, unique=True),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("overshoot_micros", BigInteger, nullable=False, default=0),
    Column("exchange_rate", ExactDecimal, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("amount_micros > 0", name="amount_positive"),
    CheckConstraint("debit_account_id <> credit_account_id", name="accounts_different"),
    CheckConstraint("phase IN ('single', 'pending', 'post', 'void')", name="phase"),
)
Index("ix_transfers_debit_account_id", transfers.c.debit_account_id, transfers.c.created_at)
Index("ix_transfers_credit_account_id", transfers.c.credit_account_id, transfers.c.created_at)
Index("ix_transfers_reference", transfers.c.reference)
Index(
    "ix_transfers_expiring",
    transfers.c.expires_at,
    sqlite_where=transfers.c.expires_at.is_not(None),
    postgresql_where=transfers.c.expires_at.is_not(None),
)

exchange_rates = Table(
    "exchange_rates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("base_currency", String(3), nullable=False),
    Column("quote_currency", String(3), nullable=False),
    Column("rate", ExactDecimal, nullable=False),  # units of quote per unit of base
    Column("valid_from", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("base_currency", "quote_currency", "valid_from"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("node_id", Integer, ForeignKey("nodes.id"), nullable=False),
    Column("login", String(63), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(24), nullable=False),
    Column("status", String(16), nullable=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("last_login_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("status IN ('active', 'disabled')", name="status"),
)
Index("ix_users_node_id", users.c.node_id)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key_id", String(24), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("node_id", Integer, ForeignKey("nodes.id"), nullable=False),
    Column("role", String(24), nullable=False),
    Column("actions", String(400), nullable=False),  # comma-separated, a subset of the role's
    Column("name", String(200), nullable=False),
    Column("created_by", String(40), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("last_used_at", UtcDateTime, nullable=True),
)
Index("ix_api_keys_node_id", api_keys.c.node_id)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 of the cookie's value
    Column("csrf_token", String(64), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(40), nullable=False),  # "user:12", "api_key:3", "cli"
    Column("actor_node_id", Integer, ForeignKey("nodes.id"), nullable=True),
    Column("action", String(40), nullable=False),
    Column("target_type", String(24), nullable=False),
    Column("target_id", String(128), nullable=False),
    Column("node_path", String(400), nullable=True),  # where the target sits: who may read the entry
    Column("before", Text, nullable=True),  # JSON
    Column("after", Text, nullable=True),  # JSON
    Column("request_id", String(64), nullable=True),
)
Index("ix_audit_log_node_path_at", audit_log.c.node_path, audit_log.c.at)

# Rating: tariffs owned by a node and assigned to its children, their rate rows, plans.
tariffs = Table(
    "tariffs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("nodes.id"), nullable=False),
    Column("name", String(128), nullable=False, unique=True),  # "<owner login>:<name>", as VoipSwitch does
    Column("currency", String(3), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("minimal_time", Integer, nullable=False),
    Column("resolution", Integer, nullable=False),
    Column("grace_period", Integer, nullable=False),
    Column("base_tariff_id", Integer, ForeignKey("tariffs.id"), nullable=True),
    Column("multiplier", ExactDecimal, nullable=True),
    Column("addition_micros", BigInteger, nullable=True),
    Column("revision", Integer, nullable=False),  # bumped by every change to the tariff or its rows
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("resolution >= 1", name="resolution_positive"),
    CheckConstraint("(base_tariff_id IS NULL) = (multiplier IS NULL)", name="derivation_complete"),
)
Index("ix_tariffs_owner_id", tariffs.c.owner_id)
Index("ix_tariffs_base_tariff_id", tariffs.c.base_tariff_id)

rates = Table(
    "rates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("tariff_id", Integer, ForeignKey("tariffs.id"), nullable=False),
    Column("prefix", String(20), nullable=False),
    Column("description", String(200), nullable=False),
    Column("price_micros", BigInteger, nullable=False),
    Column("connect_fee_micros", BigInteger, nullable=False),
    Column("minimal_time", Integer, nullable=True),  # NULL: the tariff's default
    Column("resolution", Integer, nullable=True),
    Column("grace_period", Integer, nullable=True),
    Column("free_seconds", Integer, nullable=False),
    Column("from_day", Integer, nullable=False),
    Column("to_day", Integer, nullable=False),
    Column("from_second", Integer, nullable=False),
    Column("to_second", Integer, nullable=True),  # NULL: the end of the day
    Column("valid_from", UtcDateTime, nullable=True),
    Column("valid_to", UtcDateTime, nullable=True),
    CheckConstraint("price_micros >= 0 AND connect_fee_micros >= 0", name="prices_not_negative"),
)
Index("ix_rates_tariff_id_prefix", rates.c.tariff_id, rates.c.prefix)

tariff_assignments = Table(
    "tariff_assignments",
    metadata,
    Column("node_id", Integer, ForeignKey("nodes.id"), primary_key=True),
    Column("tariff_id", Integer, ForeignKey("tariffs.id"), nullable=False),
    Column("assigned_at", UtcDateTime, nullable=False),
)
Index("ix_tariff_assignments_tariff_id", tariff_assignments.c.tariff_id)

dial_plans = Table(
    "dial_plans",
    metadata,
    Column("node_id", Integer, ForeignKey("nodes.id"), primary_key=True),
    Column("country_code", String(3), nullable=False),
    Column("international_prefix", String(4), nullable=False),
    Column("national_prefix", String(2), nullable=False),
)

plans = Table(
    "plans",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", Integer, ForeignKey("nodes.id"), nullable=False),
    Column("name", String(128), nullable=False, unique=True),  # "<owner login>:<name>"
    Column("currency", String(3), nullable=False),
    Column("fee_micros", BigInteger, nullable=False),
    Column("period", String(8), nullable=False),
    Column("included_seconds", Integer, nullable=False),
    Column("prefixes", Text, nullable=False),  # space-separated; empty: every destination
    Column("rollover", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("period IN ('day', 'week', 'month')", name="period"),
)
Index("ix_plans_owner_id", plans.c.owner_id)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("node_id", Integer, ForeignKey("nodes.id"), nullable=False),
    Column("plan_id", Integer, ForeignKey("plans.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("seconds_left", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("status IN ('active', 'suspended', 'ended')", name="status"),
    CheckConstraint("seconds_left >= 0", name="seconds_left_not_negative"),
    UniqueConstraint("node_id", "plan_id"),
)
