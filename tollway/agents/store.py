"""Persistence of agents' terms, customer profiles and the commission statement. No rules here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import aliased

from tollway.agents.model import AgentTerms, CommissionLine, CustomerProfile
from tollway.ledger.model import TransferKind
from tollway.store.schema import (
    agent_profiles,
    agent_terms,
    audit_log,
    customer_profiles,
    ledger_accounts,
    nodes,
    tariffs,
    transfers,
    users,
)


def get_terms(connection: Connection, agent_id: int) -> AgentTerms | None:
    row = connection.execute(select(agent_terms).where(agent_terms.c.node_id == agent_id)).first()
    if row is None:
        return None
    return AgentTerms(row.commission_ppm, row.topup_fee_micros, row.account_fee_micros)


def put_terms(connection: Connection, agent_id: int, terms: AgentTerms, *, now: datetime) -> None:
    values = {
        "commission_ppm": terms.commission_ppm,
        "topup_fee_micros": terms.topup_fee_micros,
        "account_fee_micros": terms.account_fee_micros,
        "updated_at": now,
    }
    changed = connection.execute(update(agent_terms).where(agent_terms.c.node_id == agent_id).values(**values))
    if not changed.rowcount:
        connection.execute(insert(agent_terms).values(node_id=agent_id, **values))


def set_agent_profiles(connection: Connection, agent_id: int, profile_ids: list[int]) -> None:
    connection.execute(delete(agent_profiles).where(agent_profiles.c.agent_id == agent_id))
    if profile_ids:
        connection.execute(insert(agent_profiles), [{"agent_id": agent_id, "profile_id": p} for p in profile_ids])


def agent_profile_names(connection: Connection, agent_id: int) -> list[str]:
    rows = connection.execute(
        select(customer_profiles.c.name)
        .join(agent_profiles, agent_profiles.c.profile_id == customer_profiles.c.id)
        .where(agent_profiles.c.agent_id == agent_id)
        .order_by(customer_profiles.c.name)
    )
    return [row.name for row in rows]


def agent_may_use(connection: Connection, agent_id: int, profile_id: int) -> bool:
    row = connection.execute(
        select(agent_profiles.c.agent_id).where(
            agent_profiles.c.agent_id == agent_id, agent_profiles.c.profile_id == profile_id
        )
    ).first()
    return row is not None


def _profile(row: Any) -> CustomerProfile:
    return CustomerProfile(
        name=row.name,
        client_type=row.client_type,
        login_prefix=row.login_prefix,
        tariff=row.tariff_name,
        language=row.language,
        time_zone=row.time_zone,
        credit_limit_micros=row.credit_limit_micros,
        concurrent_calls_limit=row.concurrent_calls_limit,
        max_call_seconds=row.max_call_seconds,
    )


def _profiles_query() -> Any:
    return select(customer_profiles, tariffs.c.name.label("tariff_name")).outerjoin(
        tariffs, tariffs.c.id == customer_profiles.c.tariff_id
    )


def find_profile(connection: Connection, owner_id: int, name: str) -> tuple[int, CustomerProfile, int | None] | None:
    """(id, profile, tariff id) of the owner's profile called ``name``."""
    if "\x00" in name:  # never stored, and PostgreSQL refuses it in text
        return None
    row = connection.execute(
        _profiles_query().where(customer_profiles.c.owner_id == owner_id, customer_profiles.c.name == name)
    ).first()
    return None if row is None else (row.id, _profile(row), row.tariff_id)


def list_profiles(connection: Connection, owner_id: int, *, limit: int) -> list[CustomerProfile]:
    rows = connection.execute(
        _profiles_query()
        .where(customer_profiles.c.owner_id == owner_id)
        .order_by(customer_profiles.c.name)
        .limit(limit)
    )
    return [_profile(row) for row in rows]


def profile_ids(connection: Connection, owner_id: int, names: list[str]) -> dict[str, int]:
    names = [name for name in names if "\x00" not in name]
    rows = connection.execute(
        select(customer_profiles.c.name, customer_profiles.c.id).where(
            customer_profiles.c.owner_id == owner_id, customer_profiles.c.name.in_(names)
        )
    )
    return {row.name: row.id for row in rows}


def put_profile(
    connection: Connection, owner_id: int, profile: CustomerProfile, tariff_id: int | None, *, now: datetime
) -> None:
    values = {
        "client_type": profile.client_type,
        "tariff_id": tariff_id,
        "plan_id": None,
        "language": profile.language,
        "time_zone": profile.time_zone,
        "credit_limit_micros": profile.credit_limit_micros,
        "concurrent_calls_limit": profile.concurrent_calls_limit,
        "max_call_seconds": profile.max_call_seconds,
        "login_prefix": profile.login_prefix,
        "updated_at": now,
    }
    changed = connection.execute(
        update(customer_profiles)
        .where(customer_profiles.c.owner_id == owner_id, customer_profiles.c.name == profile.name)
        .values(**values)
    )
    if not changed.rowcount:
        connection.execute(
            insert(customer_profiles).values(owner_id=owner_id, name=profile.name, created_at=now, **values)
        )


def logins_taken(connection: Connection, logins: list[str]) -> set[str]:
    """The logins already used by a node or by a user (a batch account gets both)."""
    if connection.dialect.name == "postgresql":
        # Joined with the candidates as a set: an "= ANY" or "IN" list is searched row by row when a table
        # has just grown by a batch (the planner's statistics still say it is small): 0.1 s a query.
        wanted = (
            func.unnest(bindparam("wanted", value=list(logins), type_=ARRAY(String)))
            .table_valued("login")
            .render_derived(name="wanted")
        )
        taken = connection.execute(select(nodes.c.login).join(wanted, wanted.c.login == nodes.c.login)).scalars()
        used = connection.execute(select(users.c.login).join(wanted, wanted.c.login == users.c.login)).scalars()
        return set(taken) | set(used)
    taken = connection.execute(select(nodes.c.login).where(nodes.c.login.in_(logins))).scalars()
    used = connection.execute(select(users.c.login).where(users.c.login.in_(logins))).scalars()
    return set(taken) | set(used)


def batch_recorded(connection: Connection, batch_id: str) -> bool:
    row = connection.execute(
        select(audit_log.c.id).where(audit_log.c.target_type == "batch", audit_log.c.target_id == batch_id).limit(1)
    ).first()
    return row is not None


def commission_lines(
    connection: Connection, commission_account_id: int, *, since: datetime, until: datetime, limit: int
) -> list[CommissionLine]:
    """The commissions credited to the account in [since, until), with the deposit each came from."""
    deposit = aliased(transfers)
    client_account = aliased(ledger_accounts)
    rows = connection.execute(
        select(
            transfers.c.reference.label("deposit_id"),
            transfers.c.amount_micros.label("commission"),
            transfers.c.created_at,
            deposit.c.amount_micros.label("deposit"),
            nodes.c.login,
        )
        .join(deposit, deposit.c.id == transfers.c.reference)
        .join(client_account, client_account.c.id == deposit.c.credit_account_id)
        .join(nodes, nodes.c.id == client_account.c.node_id)
        .where(
            transfers.c.credit_account_id == commission_account_id,
            transfers.c.kind == str(TransferKind.COMMISSION),
            transfers.c.created_at >= since,
            transfers.c.created_at < until,
        )
        .order_by(transfers.c.created_at, transfers.c.id)
        .limit(limit)
    )
    return [
        CommissionLine(row.deposit_id, row.login, row.deposit, row.commission, row.created_at.isoformat())
        for row in rows
    ]


def withdrawn(connection: Connection, commission_account_id: int, *, since: datetime, until: datetime) -> int:
    total = connection.execute(
        select(func.coalesce(func.sum(transfers.c.amount_micros), 0)).where(
            transfers.c.debit_account_id == commission_account_id,
            transfers.c.created_at >= since,
            transfers.c.created_at < until,
        )
    ).scalar_one()
    return int(total)
