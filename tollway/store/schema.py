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
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from tollway.store.types import ExactDecimal, Id, UtcDateTime

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
    Column("id", Id, primary_key=True),
    Column("parent_id", Id, ForeignKey("nodes.id"), nullable=True),
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
    Column("max_call_seconds", Integer, nullable=True),  # NULL: the engine's own maximum
    Column("email", String(254), nullable=True),  # the account's contact address; its notices go there
    Column("phone", String(16), nullable=True),  # the account's contact number, E.164 ("+12125550100")
    Column("low_balance_threshold_micros", BigInteger, nullable=True),  # NULL: the owner's default for children
    Column("low_balance_default_micros", BigInteger, nullable=True),  # resellers: the threshold of their children
    Column("brand_name", String(200), nullable=True),  # resellers: the name their clients' notices are signed with
    Column("email_from", String(254), nullable=True),  # resellers: the sender of their clients' notices
    Column("managed_by_agent_id", Id, ForeignKey("nodes.id"), nullable=True),
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
    Column("id", Id, primary_key=True),
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False),
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

# What batches changed in accounts without a floor, appended instead of written to the account's row: such an
# account (revenue, issuance, exchange, clearing, spent, the provider's wallet) is never locked by a transfer,
# so every call in the system crediting the provider's revenue queues on no row. An account's balance is its
# row plus its postings; the settler (tollway.ledger.service.settle) folds postings into rows in batches.
account_postings = Table(
    "account_postings",
    metadata,
    Column("id", Id, primary_key=True),
    Column("account_id", Id, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("debits_posted", BigInteger, nullable=False),
    Column("credits_posted", BigInteger, nullable=False),
    Column("debits_pending", BigInteger, nullable=False),
    Column("credits_pending", BigInteger, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_account_postings_account_id", account_postings.c.account_id, account_postings.c.id)

transfers = Table(
    "transfers",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("debit_account_id", Id, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("credit_account_id", Id, ForeignKey("ledger_accounts.id"), nullable=False),
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
    Column("id", Id, primary_key=True),
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
    Column("id", Id, primary_key=True),
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("login", String(63), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(24), nullable=False),
    Column("status", String(16), nullable=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("last_login_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("language", String(8), nullable=True),  # the portal's language for this login; NULL: its node's
    Column("totp_secret_sealed", String(400), nullable=True),  # sealed (tollway/sealing.py); NULL: no second factor
    Column("totp_confirmed_at", UtcDateTime, nullable=True),  # NULL while enrolment awaits its first code
    Column("totp_last_step", BigInteger, nullable=True),  # the last 30-second step used: a code works once
    # Wrong codes in a row (a right password does not reset it); a server default for bulk inserts.
    Column("totp_failed", Integer, nullable=False, default=0, server_default="0"),
    Column("totp_locked_until", UtcDateTime, nullable=True),
    CheckConstraint("status IN ('active', 'disabled')", name="status"),
)
Index("ix_users_node_id", users.c.node_id)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Id, primary_key=True),
    Column("key_id", String(24), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False),
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
    Column("id", Id, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 of the cookie's value
    Column("csrf_token", String(64), nullable=False),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(40), nullable=False),  # "user:12", "api_key:3", "cli"
    Column("actor_node_id", Id, ForeignKey("nodes.id"), nullable=True),
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
    Column("id", Id, primary_key=True),
    Column("owner_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("name", String(128), nullable=False, unique=True),  # "<owner login>:<name>", as VoipSwitch does
    Column("currency", String(3), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("minimal_time", Integer, nullable=False),
    Column("resolution", Integer, nullable=False),
    Column("grace_period", Integer, nullable=False),
    Column("base_tariff_id", Id, ForeignKey("tariffs.id"), nullable=True),
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
    Column("id", Id, primary_key=True),
    Column("tariff_id", Id, ForeignKey("tariffs.id"), nullable=False),
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
    Column("node_id", Id, ForeignKey("nodes.id"), primary_key=True),
    Column("tariff_id", Id, ForeignKey("tariffs.id"), nullable=False),
    Column("assigned_at", UtcDateTime, nullable=False),
)
Index("ix_tariff_assignments_tariff_id", tariff_assignments.c.tariff_id)

dial_plans = Table(
    "dial_plans",
    metadata,
    Column("node_id", Id, ForeignKey("nodes.id"), primary_key=True),
    Column("country_code", String(3), nullable=False),
    Column("international_prefix", String(4), nullable=False),
    Column("national_prefix", String(2), nullable=False),
)

plans = Table(
    "plans",
    metadata,
    Column("id", Id, primary_key=True),
    Column("owner_id", Id, ForeignKey("nodes.id"), nullable=False),
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
    Column("id", Id, primary_key=True),
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("plan_id", Id, ForeignKey("plans.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("seconds_left", Integer, nullable=False),
    Column("period_end", UtcDateTime, nullable=True),  # NULL: the first period's fee is not charged yet
    Column("status_reason", String(48), nullable=True),  # why the plan is suspended (plan_unpaid)
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("status IN ('active', 'suspended', 'ended')", name="status"),
    CheckConstraint("seconds_left >= 0", name="seconds_left_not_negative"),
    UniqueConstraint("node_id", "plan_id"),
)
Index("ix_subscriptions_period_end", subscriptions.c.period_end)  # the renewals due

switches = Table(
    "switches",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column(
        "api_key_id", Id, ForeignKey("api_keys.id"), nullable=False, unique=True
    ),  # the key the switch authenticates with
    Column("notify_kind", String(16), nullable=False),  # how a disconnect is pushed to it
    Column("notify_url", String(400), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # Charge the durations it reports as they are, even past the grant (below a floor): only for switches
    # the provider runs and trusts; any other switch's durations are capped at what was granted.
    Column("trusted_durations", Boolean, nullable=False, server_default=false()),
)

# One row per call attempt the engine was asked about, refused ones included: the switch's call id is
# the idempotency key, and the row keeps the first answer to every request so a retry gets it again.
calls = Table(
    "calls",
    metadata,
    Column("id", Id, primary_key=True),
    Column("call_id", String(128), nullable=False),  # the switch's id: unique per tenant, not across tenants
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=True),  # NULL: the account is unknown
    Column("path", String(400), nullable=True),  # the account's path, to count calls per subtree
    Column("switch_id", Id, ForeignKey("switches.id"), nullable=True),
    Column("account", String(63), nullable=False),
    Column("caller", String(64), nullable=False),
    Column("callee", String(64), nullable=False),
    Column("number", String(32), nullable=True),  # the callee in E.164, as rated
    Column("state", String(16), nullable=False),
    Column("reason", String(48), nullable=True),  # why it was refused, or why the engine ended it
    Column("level", String(63), nullable=True),  # the level that refused or ended it
    Column("limited_by", String(63), nullable=True),  # the level whose funds set the longest duration
    Column("max_seconds", Integer, nullable=False, default=0),
    Column("grant_seconds", Integer, nullable=False, default=0),
    Column("final", Boolean, nullable=False, default=False),
    Column("extensions", Integer, nullable=False, default=0),
    Column("update_sequence", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("answered_at", UtcDateTime, nullable=True),
    Column("grant_expires_at", UtcDateTime, nullable=True),  # when to extend or close it; NULL once ended
    Column("ended_at", UtcDateTime, nullable=True),
    Column("duration_seconds", Integer, nullable=True),
    Column("overshoot_seconds", Integer, nullable=False, default=0),
    Column("end_reason", String(48), nullable=True),  # the switch's reason, or "stale"
    Column("disconnect_reason", String(48), nullable=True),  # set when the engine wants the call ended
    Column("disconnect_state", String(8), nullable=True),  # due, sent, failed
    Column("disconnect_attempts", Integer, nullable=False, default=0),
    Column("disconnect_next_at", UtcDateTime, nullable=True),
    Column("authorize_answer", Text, nullable=False),  # the first answers, as JSON, for repeated requests
    Column("update_answer", Text, nullable=True),
    CheckConstraint("state IN ('authorized', 'answered', 'ended', 'refused')", name="state"),
    CheckConstraint("disconnect_state IN ('due', 'sent', 'failed')", name="disconnect_state"),
    # The node of the principal that authorized it (a switch's node; the provider for the command line):
    # a call id names a call within its tenant only, so one tenant can neither see nor pre-claim another's.
    Column("tenant_id", Id, ForeignKey("nodes.id"), nullable=False),
    UniqueConstraint("call_id", "tenant_id"),  # call_id first: also the index of lookups by call id alone
    Column("reported_duration_seconds", Integer, nullable=True),  # what the switch said; duration_seconds: charged
    Column("overshoot_reason", String(24), nullable=True),  # why a reported duration was not believed
)
Index(
    "ix_calls_grant_expires_at",
    calls.c.grant_expires_at,
    sqlite_where=calls.c.grant_expires_at.is_not(None),
    postgresql_where=calls.c.grant_expires_at.is_not(None),
)
Index(
    "ix_calls_active_path",
    calls.c.path,
    sqlite_where=calls.c.state.in_(("authorized", "answered")),
    postgresql_where=calls.c.state.in_(("authorized", "answered")),
)
Index(
    "ix_calls_disconnect_due",
    calls.c.disconnect_next_at,
    sqlite_where=calls.c.disconnect_state == "due",
    postgresql_where=calls.c.disconnect_state == "due",
)
Index("ix_calls_node_id_created_at", calls.c.node_id, calls.c.created_at)
Index("ix_calls_created_at", calls.c.created_at)  # a period of a subtree's calls (tollway/calls/report_store.py)

# One line per level of a call: the rate fixed at authorization, what is reserved, and at the end the charge.
call_charges = Table(
    "call_charges",
    metadata,
    Column("call_id", Id, ForeignKey("calls.id"), primary_key=True),
    Column("position", Integer, primary_key=True),  # 0: the client, then each owner up the chain
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("account", String(63), nullable=False),
    Column("wallet_account_id", Id, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("revenue_account_id", Id, ForeignKey("ledger_accounts.id"), nullable=False),
    Column("tariff", String(128), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("prefix", String(20), nullable=False),
    Column("description", String(200), nullable=False),
    Column("price_micros", BigInteger, nullable=False),
    Column("connect_fee_micros", BigInteger, nullable=False),
    Column("minimal_time", Integer, nullable=False),
    Column("resolution", Integer, nullable=False),
    Column("grace_period", Integer, nullable=False),
    Column("free_seconds", Integer, nullable=False),
    Column("subscription_id", Id, ForeignKey("subscriptions.id"), nullable=True),
    Column("plan_seconds_reserved", Integer, nullable=False, default=0),
    Column("reserved_micros", BigInteger, nullable=False, default=0),
    Column("reservation", Integer, nullable=False, default=0),  # number of the open pending transfer
    Column("billed_seconds", Integer, nullable=True),
    Column("plan_seconds", Integer, nullable=True),
    Column("amount_micros", BigInteger, nullable=True),
    Column("overshoot_micros", BigInteger, nullable=False, default=0),
)

# What an agent's reseller (or the provider) agreed with it: commission on its clients' deposits, and
# the fees it pays per deposit and per new account. Agents are never charged per call.
agent_terms = Table(
    "agent_terms",
    metadata,
    Column("node_id", Id, ForeignKey("nodes.id"), primary_key=True),  # the agent
    Column("commission_ppm", Integer, nullable=False),  # parts per million of each deposit: 10 % = 100000
    Column("topup_fee_micros", BigInteger, nullable=False),
    Column("account_fee_micros", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("commission_ppm BETWEEN 0 AND 1000000", name="commission_in_range"),
    CheckConstraint("topup_fee_micros >= 0 AND account_fee_micros >= 0", name="fees_not_negative"),
)

# A template for new client accounts, owned by a reseller (or the provider): what batch creation and
# agents create from. Agents may use only the profiles their terms list.
customer_profiles = Table(
    "customer_profiles",
    metadata,
    Column("id", Id, primary_key=True),
    Column("owner_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("name", String(63), nullable=False),
    Column("client_type", String(16), nullable=False),
    Column("tariff_id", Id, ForeignKey("tariffs.id"), nullable=True),
    Column("plan_id", Id, ForeignKey("plans.id"), nullable=True),
    Column("language", String(8), nullable=True),  # NULL: the owner's
    Column("time_zone", String(64), nullable=True),
    Column("credit_limit_micros", BigInteger, nullable=False),
    Column("concurrent_calls_limit", Integer, nullable=True),
    Column("max_call_seconds", Integer, nullable=True),
    Column("login_prefix", String(40), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("owner_id", "name"),
)

agent_profiles = Table(
    "agent_profiles",
    metadata,
    Column("agent_id", Id, ForeignKey("nodes.id"), primary_key=True),
    Column("profile_id", Id, ForeignKey("customer_profiles.id"), primary_key=True),
)

# Low-balance notices: armed until the balance falls below the threshold (one notice), re-armed when
# it rises back above it. No row: armed.
low_balance_alerts = Table(
    "low_balance_alerts",
    metadata,
    Column("node_id", Id, ForeignKey("nodes.id"), primary_key=True),
    Column("armed", Boolean, nullable=False),
    Column("crossings", Integer, nullable=False),  # how many times it fell below: the notice's key
    Column("changed_at", UtcDateTime, nullable=False),
)

# Outgoing email, kept: what was sent, to whom, when, and the attempts. ``key`` makes queuing idempotent.
emails = Table(
    "emails",
    metadata,
    Column("id", Id, primary_key=True),
    Column("key", String(128), nullable=False, unique=True),
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=True),
    Column("kind", String(32), nullable=False),
    Column("sender", String(320), nullable=False),
    Column("recipient", String(254), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(8), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_at", UtcDateTime, nullable=True),
    Column("last_error", String(400), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    CheckConstraint("state IN ('due', 'sent', 'failed')", name="state"),
)
Index("ix_emails_due", emails.c.next_at, sqlite_where=emails.c.state == "due", postgresql_where=emails.c.state == "due")
Index("ix_emails_node_id_created_at", emails.c.node_id, emails.c.created_at)

# The online shop (tollway.payments). A node's payment gateways: its own Stripe account (secrets sealed at
# rest, only their last characters shown again) and its bank details for transfers.
payment_gateways = Table(
    "payment_gateways",
    metadata,
    Column("id", Id, primary_key=True),
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False),  # the seller: a reseller or the provider
    Column("kind", String(16), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("details", Text, nullable=False),  # JSON, shown to customers (bank details); never a secret
    Column("secret_key_sealed", Text, nullable=True),
    Column("secret_key_hint", String(8), nullable=True),
    Column("webhook_secret_sealed", Text, nullable=True),
    Column("webhook_secret_hint", String(8), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("node_id", "kind"),
    CheckConstraint("kind IN ('stripe', 'bank_transfer')", name="kind"),
)

# What a seller's shop offers as top-ups, per currency: fixed amounts and a free amount between bounds.
shop_topups = Table(
    "shop_topups",
    metadata,
    Column("node_id", Id, ForeignKey("nodes.id"), primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("amounts", Text, nullable=False),  # micro-units, space-separated
    Column("free_min_micros", BigInteger, nullable=True),
    Column("free_max_micros", BigInteger, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

# One payment attempt: who pays (its wallet is credited), through which gateway, for what, and its state.
payments = Table(
    "payments",
    metadata,
    Column("id", Id, primary_key=True),
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("gateway_id", Id, ForeignKey("payment_gateways.id"), nullable=False),
    Column("request_id", String(64), nullable=False),  # the payer's idempotency key
    Column("product", String(16), nullable=False),
    Column("plan_id", Id, ForeignKey("plans.id"), nullable=True),
    Column("amount_micros", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("state", String(16), nullable=False),
    Column("external_id", String(100), nullable=True),  # the gateway's id: a Stripe Checkout Session
    Column("external_payment_id", String(100), nullable=True),  # a Stripe PaymentIntent, once paid
    Column("checkout_url", String(2000), nullable=True),
    Column("payer_reference", String(140), nullable=True),  # a bank transfer's reference, as declared
    Column("transfer_id", String(128), nullable=True),  # the credit in the ledger, once confirmed
    Column("refunded_micros", BigInteger, nullable=False, default=0),
    Column("reason", String(64), nullable=True),  # why it failed or was canceled; what became of a product
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("confirmed_at", UtcDateTime, nullable=True),
    UniqueConstraint("node_id", "request_id"),
    UniqueConstraint("gateway_id", "external_id"),
    CheckConstraint("state IN ('created', 'pending', 'confirmed', 'failed', 'canceled', 'refunded')", name="state"),
    CheckConstraint("product IN ('topup', 'plan')", name="product"),
    CheckConstraint("amount_micros > 0", name="amount_positive"),
    CheckConstraint("refunded_micros >= 0 AND refunded_micros <= amount_micros", name="refunded_in_range"),
)
Index("ix_payments_node_id_created_at", payments.c.node_id, payments.c.created_at)
Index("ix_payments_gateway_id_created_at", payments.c.gateway_id, payments.c.created_at)
Index("ix_payments_external_payment_id", payments.c.external_payment_id)

# Every state change of a payment, who or what made it, and the gateway event behind it: its history.
payment_events = Table(
    "payment_events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("payment_id", Id, ForeignKey("payments.id"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("from_state", String(16), nullable=True),
    Column("to_state", String(16), nullable=False),
    Column("actor", String(40), nullable=False),  # "user:3", "api_key:2", "cli", "stripe"
    Column("gateway_event_id", String(100), nullable=True),
    Column("detail", String(400), nullable=True),
)
Index("ix_payment_events_payment_id", payment_events.c.payment_id)

# Every verified webhook event, recorded once, in the transaction that acts on it: a redelivery, or the
# same event at the same moment in another process, finds the row and changes nothing.
gateway_events = Table(
    "gateway_events",
    metadata,
    Column("gateway_id", Id, ForeignKey("payment_gateways.id"), primary_key=True),
    Column("event_id", String(100), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("payment_id", Id, ForeignKey("payments.id"), nullable=True),
    Column("received_at", UtcDateTime, nullable=False),
)

# Money given back on a payment: asked from Tollway (reserved first, then sent to the gateway) or made at
# the gateway and learned from its webhook.
payment_refunds = Table(
    "payment_refunds",
    metadata,
    Column("id", Id, primary_key=True),
    Column("payment_id", Id, ForeignKey("payments.id"), nullable=False),
    Column("key", String(80), nullable=False),  # the idempotency key: a request id, or the gateway total it records
    Column("amount_micros", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("external_id", String(100), nullable=True),  # the gateway's refund id
    Column("transfer_id", String(128), nullable=True),
    Column("reason", String(200), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("payment_id", "key"),
    CheckConstraint("state IN ('pending', 'succeeded', 'failed', 'refused')", name="state"),
    CheckConstraint("origin IN ('tollway', 'gateway')", name="origin"),
    CheckConstraint("amount_micros > 0", name="amount_positive"),
)
Index("ix_payment_refunds_payment_id", payment_refunds.c.payment_id)

# A seller's identity on its receipts and invoices, set by the seller, and its invoice counter: a number is
# taken in the transaction that issues the invoice, so a rollback gives it back and numbers have no gaps.
billing_profiles = Table(
    "billing_profiles",
    metadata,
    Column("node_id", Id, ForeignKey("nodes.id"), primary_key=True),
    Column("legal_name", String(200), nullable=False),
    Column("address", String(400), nullable=False),
    Column("tax_id", String(64), nullable=False),
    Column("tax_rate_ppm", Integer, nullable=False),  # included in the prices: 20 % = 200000
    Column("invoice_prefix", String(16), nullable=False),
    Column("next_invoice_number", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("tax_rate_ppm BETWEEN 0 AND 1000000", name="tax_rate_in_range"),
    CheckConstraint("next_invoice_number >= 1", name="next_number_positive"),
)

# Issued invoices: immutable once issued, their content kept as issued (JSON) so they render the same forever.
invoices = Table(
    "invoices",
    metadata,
    Column("id", Id, primary_key=True),
    Column("seller_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("label", String(40), nullable=False),  # the prefix and the number, as printed
    Column("customer_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("period_start", UtcDateTime, nullable=False),
    Column("period_end", UtcDateTime, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total_micros", BigInteger, nullable=False),
    Column("tax_micros", BigInteger, nullable=False),
    Column("content", Text, nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    UniqueConstraint("seller_id", "number"),
    UniqueConstraint("customer_id", "period_start"),
)
Index("ix_invoices_seller_id_period_start", invoices.c.seller_id, invoices.c.period_start)

# UC/PBX organizations (tollway/organizations): a pbx client's settings; its users are client nodes of type
# 'user' below it, each with its role and spending caps here; their extensions carry SIP credentials.
organizations = Table(
    "organizations",
    metadata,
    Column("node_id", Id, ForeignKey("nodes.id"), primary_key=True),
    Column("wallet", String(16), nullable=False),  # who pays for a user's calls: 'user' or 'organization'
    Column("extension_digits", Integer, nullable=False),  # the length of every extension number
    Column("sip_domain", String(253), nullable=False, unique=True),  # the extensions' SIP domain and digest realm
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("wallet IN ('user', 'organization')", name="wallet"),
    CheckConstraint("extension_digits BETWEEN 2 AND 6", name="extension_digits_in_range"),
)

# Limits on organizations, set by owners: on an organization its own, on a reseller the most any organization
# below it may be given. NULL: no limit at that level.
organization_limits = Table(
    "organization_limits",
    metadata,
    Column("node_id", Id, ForeignKey("nodes.id"), primary_key=True),
    Column("users_limit", Integer, nullable=True),
    Column("extensions_per_user_limit", Integer, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("users_limit >= 0 AND extensions_per_user_limit >= 0", name="limits_not_negative"),
)

organization_users = Table(
    "organization_users",
    metadata,
    Column("node_id", Id, ForeignKey("nodes.id"), primary_key=True),  # the user's own account
    Column("organization_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("daily_cap_micros", BigInteger, nullable=True),  # when the organization pays: what it may spend a day
    Column("monthly_cap_micros", BigInteger, nullable=True),
    Column("cap_day", String(10), nullable=True),  # the day (YYYY-MM-DD) its daily cap account counts
    Column("cap_month", String(7), nullable=True),  # the month (YYYY-MM) its monthly cap account counts
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("role IN ('admin', 'member')", name="role"),
    CheckConstraint("daily_cap_micros >= 0 AND monthly_cap_micros >= 0", name="caps_not_negative"),
)
Index("ix_organization_users_organization_id", organization_users.c.organization_id)

extensions = Table(
    "extensions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("user_node_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("number", String(6), nullable=False),
    Column("sip_username", String(64), nullable=False),
    Column("ha1", String(32), nullable=False),  # MD5(username:realm:secret), what digest authentication needs
    Column("secret_sealed", String(400), nullable=False),  # the secret itself, sealed (tollway/sealing.py)
    Column("voicemail", Boolean, nullable=False),
    Column("recording", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("secret_changed_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("organization_id", "number"),
    UniqueConstraint("organization_id", "sip_username"),
    CheckConstraint("status IN ('active', 'disabled')", name="status"),
)
Index("ix_extensions_user_node_id", extensions.c.user_node_id)

# Lines (tollway/lines): what a client account or an extension presents and where it rings. ``node_id`` is
# the client, or the organization of ``extension_id``.
caller_ids = Table(
    "caller_ids",
    metadata,
    Column("id", Id, primary_key=True),
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("extension_id", Id, ForeignKey("extensions.id"), nullable=True),
    Column("number", String(20), nullable=False),  # E.164 with its '+'
    Column("verified", Boolean, nullable=False),
    Column("is_default", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("verified_at", UtcDateTime, nullable=True),
)
Index("ix_caller_ids_node_id_extension_id", caller_ids.c.node_id, caller_ids.c.extension_id)

follow_me = Table(
    "follow_me",
    metadata,
    Column("id", Id, primary_key=True),
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("extension_id", Id, ForeignKey("extensions.id"), nullable=True),
    Column("position", Integer, nullable=False),  # 1, 2, 3 ...: the order the numbers ring in
    Column("number", String(32), nullable=False),
    Column("ring_seconds", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("ring_seconds BETWEEN 5 AND 120", name="ring_seconds_in_range"),
)
Index("ix_follow_me_node_id_extension_id", follow_me.c.node_id, follow_me.c.extension_id)

# Wholesale trunks recognised by the address their calls come from (one network belongs to one trunk).
trunk_addresses = Table(
    "trunk_addresses",
    metadata,
    Column("id", Id, primary_key=True),
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("network", String(43), nullable=False, unique=True),  # an IPv4 or IPv6 network, in CIDR form
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_trunk_addresses_node_id", trunk_addresses.c.node_id)

# Password attempts counted before each check, per login and per source address ("login:alice",
# "address:203.0.113.7"), shared by every process; see tollway.access.service.login_with_password.
login_throttles = Table(
    "login_throttles",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("failures", Integer, nullable=False),  # attempts not (yet) proven right, since the last success
    Column("blocked_until", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_sessions_user_id", sessions.c.user_id)  # a user's other sessions, closed when its password changes

# -- the portal: each reseller's brand and host names --------------------------------------------------

brands = Table(
    "brands",
    metadata,
    Column("node_id", Id, ForeignKey("nodes.id"), primary_key=True),  # the name is nodes.brand_name
    Column("colour_primary", String(7), nullable=True),  # '#1f4e79': the header, buttons, links
    Column("colour_accent", String(7), nullable=True),  # '#e8f0f8': highlights behind dark text
    Column("support_email", String(254), nullable=True),
    Column("support_phone", String(40), nullable=True),
    Column("support_url", String(300), nullable=True),
    Column("customer_language", String(8), nullable=True),  # default language of its portal and new clients
    Column("logo", LargeBinary, nullable=True),  # PNG, JPEG, WebP or drawing-only SVG, by its first bytes
    Column("logo_type", String(16), nullable=True),
    Column("logo_digest", String(64), nullable=True),  # SHA-256 of the logo: its address, cached for ever
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("(logo IS NULL) = (logo_digest IS NULL)", name="logo_with_digest"),
)
Index("ix_brands_logo_digest", brands.c.logo_digest)

brand_hosts = Table(
    "brand_hosts",
    metadata,
    Column("host", String(253), primary_key=True),  # lower case, no port: what the Host header names
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_brand_hosts_node_id", brand_hosts.c.node_id)

# -- calling cards (tollway/cards): batches of prepaid cards, each a client node of its reseller ----------

card_batches = Table(
    "card_batches",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(40), nullable=False, unique=True),  # the idempotency key the creator chose
    Column("owner_id", Id, ForeignKey("nodes.id"), nullable=False),  # the reseller whose cards they are
    Column("count", Integer, nullable=False),
    Column("face_value_micros", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("tariff_id", Id, ForeignKey("tariffs.id"), nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),  # a fixed date, or
    Column("expiry_days", Integer, nullable=True),  # days after activation (first use or sale)
    Column("pin_length", Integer, nullable=False),
    Column("serial_prefix", String(12), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # The owner's plan each card is given when it is activated (its included seconds), if any.
    Column("plan_id", Id, ForeignKey("plans.id"), nullable=True),
    # The agent who made (and paid for) the batch: its cards' face values moved from the agent's wallet
    # into them when they were made, so their activation moves no money.
    Column("agent_id", Id, ForeignKey("nodes.id"), nullable=True),
    CheckConstraint("face_value_micros > 0", name="face_value_positive"),
    CheckConstraint("(expires_at IS NULL) OR (expiry_days IS NULL)", name="one_expiry"),
)
Index("ix_card_batches_owner_id", card_batches.c.owner_id)

cards = Table(
    "cards",
    metadata,
    Column("id", Id, primary_key=True),
    Column("batch_id", Id, ForeignKey("card_batches.id"), nullable=False),
    Column("owner_id", Id, ForeignKey("nodes.id"), nullable=False),  # the batch's reseller (for serial ranges)
    Column("node_id", Id, ForeignKey("nodes.id"), nullable=False, unique=True),  # the card's client node
    Column("serial_number", BigInteger, nullable=False),  # per owner, consecutive within a batch
    # HMAC-SHA256 of the PIN under the installation's key (tollway/sealing.py): found by an index probe,
    # useless to whoever has the database alone. Unique: a PIN names one card in the whole system.
    Column("pin_digest", String(64), nullable=False, unique=True),
    Column("state", String(16), nullable=False),
    Column("activated_at", UtcDateTime, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("owner_id", "serial_number"),
    CheckConstraint("state IN ('new', 'active', 'depleted', 'expired', 'blocked', 'closed')", name="state"),
)
Index("ix_cards_batch_id", cards.c.batch_id)

# Keys the installation made for itself, sealed with its secret_key (tollway/sealing.py): the key of the
# calling cards' PIN digests lives here, so that rotating secret_key re-seals this key (`tollway card rekey`)
# and every PIN digest stays as it is.
sealed_keys = Table(
    "sealed_keys",
    metadata,
    Column("purpose", String(40), primary_key=True),
    Column("sealed", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The numbers card holders dial (DIDs), each owned by the provider or a reseller. An exclusive number serves
# only the cards of its owner's subtree; a card of anyone else is refused access_number_exclusive.
access_numbers = Table(
    "access_numbers",
    metadata,
    Column("number", String(32), primary_key=True),  # E.164 digits with their "+", as the switch sends them
    Column("owner_id", Id, ForeignKey("nodes.id"), nullable=False),
    Column("language", String(8), nullable=False),  # the prompts' language (h323-preferred-lang)
    Column("exclusive", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_access_numbers_owner_id", access_numbers.c.owner_id)

# Caller numbers (ANI) registered to a card: a call from one of them needs no PIN. One card per number.
card_callers = Table(
    "card_callers",
    metadata,
    Column("number", String(32), primary_key=True),  # E.164 with its "+"
    Column("card_id", Id, ForeignKey("cards.id"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_card_callers_card_id", card_callers.c.card_id)

# A secret file (a batch's passwords or PINs) held for one download by the login that made it
# (tollway/access/held_files.py): sealed with a key only the token its maker's browser holds opens; the
# token's digest finds it; the download deletes it.
held_files = Table(
    "held_files",
    metadata,
    Column("digest", String(64), primary_key=True),  # SHA-256 of the token, hex
    Column("kind", String(16), nullable=False),  # accounts, cards
    Column("name", String(64), nullable=False),  # the batch's
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),  # only its maker downloads it
    Column("sealed", Text, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_held_files_expires_at", held_files.c.expires_at)
Index("ix_held_files_user_id", held_files.c.user_id)

# One row: a counter bumped (by triggers, in the same transaction) by every change to what credit control
# caches per process: nodes, tariffs and their rates, tariff assignments, dial plans, plans, subscriptions'
# status, API keys and switches. A process compares it with the version of its cached rows (tollway.store.static).
static_versions = Table(
    "static_versions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("version", BigInteger, nullable=False),
)
