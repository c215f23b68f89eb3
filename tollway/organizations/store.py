"""Persistence of organizations, their limits, users and extensions. No rules here."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from tollway.organizations.model import (
    Caps,
    Extension,
    ExtensionStatus,
    Limits,
    OrganizationRole,
    Settings,
    Wallet,
)
from tollway.store.schema import (
    extensions,
    nodes,
    organization_limits,
    organization_users,
    organizations,
    trunk_addresses,
)
from tollway.tree.model import Status

PAGE_SIZE_MAX = 500
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Member:
    """A user of an organization, as stored beside its account node."""

    node_id: int
    organization_id: int
    role: OrganizationRole
    caps: Caps
    cap_day: str | None
    cap_month: str | None


# -- organizations ------------------------------------------------------------------------------


def get_settings(connection: Connection, node_id: int, *, lock: bool = False) -> Settings | None:
    query = select(organizations).where(organizations.c.node_id == node_id)
    row = connection.execute(query.with_for_update() if lock else query).first()
    return None if row is None else Settings(Wallet(row.wallet), row.extension_digits, row.sip_domain)


def find_by_domain(connection: Connection, domain: str) -> tuple[int, Settings] | None:
    row = connection.execute(select(organizations).where(organizations.c.sip_domain == domain)).first()
    if row is None:
        return None
    return row.node_id, Settings(Wallet(row.wallet), row.extension_digits, row.sip_domain)


def domain_taken(connection: Connection, domain: str, *, other_than: int) -> bool:
    query = select(organizations.c.node_id).where(
        organizations.c.sip_domain == domain, organizations.c.node_id != other_than
    )
    return connection.execute(query).first() is not None


def put_settings(connection: Connection, node_id: int, settings: Settings, *, now: datetime) -> None:
    values = {
        "wallet": str(settings.wallet),
        "extension_digits": settings.extension_digits,
        "sip_domain": settings.sip_domain,
        "updated_at": now,
    }
    changed = connection.execute(update(organizations).where(organizations.c.node_id == node_id).values(**values))
    if not changed.rowcount:
        connection.execute(insert(organizations).values(node_id=node_id, created_at=now, **values))


def limits_of(connection: Connection, node_ids: Sequence[int]) -> dict[int, Limits]:
    rows = connection.execute(select(organization_limits).where(organization_limits.c.node_id.in_(list(node_ids))))
    return {row.node_id: Limits(row.users_limit, row.extensions_per_user_limit) for row in rows}


def put_limits(connection: Connection, node_id: int, limits: Limits, *, now: datetime) -> None:
    values = {"users_limit": limits.users, "extensions_per_user_limit": limits.extensions_per_user, "updated_at": now}
    changed = connection.execute(
        update(organization_limits).where(organization_limits.c.node_id == node_id).values(**values)
    )
    if not changed.rowcount:
        connection.execute(insert(organization_limits).values(node_id=node_id, **values))


# -- users ----------------------------------------------------------------------------------------


def _member(row: Row[Any]) -> Member:
    return Member(
        node_id=row.node_id,
        organization_id=row.organization_id,
        role=OrganizationRole(row.role),
        caps=Caps(row.daily_cap_micros, row.monthly_cap_micros),
        cap_day=row.cap_day,
        cap_month=row.cap_month,
    )


def insert_member(
    connection: Connection, *, node_id: int, organization_id: int, role: OrganizationRole, caps: Caps, now: datetime
) -> None:
    connection.execute(
        insert(organization_users).values(
            node_id=node_id,
            organization_id=organization_id,
            role=str(role),
            daily_cap_micros=caps.day_micros,
            monthly_cap_micros=caps.month_micros,
            created_at=now,
            updated_at=now,
        )
    )


def get_member(connection: Connection, node_id: int, *, lock: bool = False) -> Member | None:
    query = select(organization_users).where(organization_users.c.node_id == node_id)
    row = connection.execute(query.with_for_update() if lock else query).first()
    return None if row is None else _member(row)


def members_of(connection: Connection, node_ids: Iterable[int]) -> dict[int, Member]:
    rows = connection.execute(select(organization_users).where(organization_users.c.node_id.in_(list(node_ids))))
    return {row.node_id: _member(row) for row in rows}


def update_member(connection: Connection, node_id: int, *, now: datetime, **values: Any) -> None:
    connection.execute(
        update(organization_users).where(organization_users.c.node_id == node_id).values(updated_at=now, **values)
    )


def page_members(connection: Connection, organization_id: int, *, limit: int, after_id: int = 0) -> list[int]:
    """Node ids of an organization's users, ascending."""
    rows = connection.execute(
        select(organization_users.c.node_id)
        .where(organization_users.c.organization_id == organization_id, organization_users.c.node_id > after_id)
        .order_by(organization_users.c.node_id)
        .limit(min(limit, PAGE_SIZE_MAX))
    )
    return [row.node_id for row in rows]


def count_open_members(connection: Connection, organization_id: int) -> int:
    return int(
        connection.execute(
            select(func.count())
            .select_from(organization_users.join(nodes, nodes.c.id == organization_users.c.node_id))
            .where(organization_users.c.organization_id == organization_id, nodes.c.status != str(Status.CLOSED))
        ).scalar_one()
    )


# -- extensions -----------------------------------------------------------------------------------


def _extension(row: Row[Any]) -> Extension:
    return Extension(
        id=row.id,
        organization_id=row.organization_id,
        user_node_id=row.user_node_id,
        number=row.number,
        sip_username=row.sip_username,
        ha1=row.ha1,
        secret_sealed=row.secret_sealed,
        voicemail=row.voicemail,
        recording=row.recording,
        status=ExtensionStatus(row.status),
    )


def insert_extension(connection: Connection, *, now: datetime, **values: Any) -> Extension:
    result = connection.execute(
        insert(extensions).values(secret_changed_at=now, created_at=now, updated_at=now, **values)
    )
    pk = int(result.inserted_primary_key[0])  # type: ignore[index]
    return _extension(connection.execute(select(extensions).where(extensions.c.id == pk)).one())


def find_extension(
    connection: Connection, organization_id: int, number: str, *, lock: bool = False
) -> Extension | None:
    query = select(extensions).where(extensions.c.organization_id == organization_id, extensions.c.number == number)
    row = connection.execute(query.with_for_update() if lock else query).first()
    return None if row is None else _extension(row)


def get_extension(connection: Connection, extension_id: int) -> Extension | None:
    row = connection.execute(select(extensions).where(extensions.c.id == extension_id)).first()
    return None if row is None else _extension(row)


def find_by_username(connection: Connection, organization_id: int, username: str) -> Extension | None:
    row = connection.execute(
        select(extensions).where(extensions.c.organization_id == organization_id, extensions.c.sip_username == username)
    ).first()
    return None if row is None else _extension(row)


def username_taken(connection: Connection, organization_id: int, username: str) -> bool:
    return find_by_username(connection, organization_id, username) is not None


def extensions_of(
    connection: Connection,
    organization_id: int,
    *,
    user_node_id: int | None = None,
    limit: int = PAGE_SIZE_MAX,
    after: str = "",
) -> list[Extension]:
    """An organization's extensions (or one user's) by number."""
    query = select(extensions).where(extensions.c.organization_id == organization_id, extensions.c.number > after)
    if user_node_id is not None:
        query = query.where(extensions.c.user_node_id == user_node_id)
    rows = connection.execute(query.order_by(extensions.c.number).limit(min(limit, PAGE_SIZE_MAX)))
    return [_extension(row) for row in rows]


def count_extensions_of_user(connection: Connection, user_node_id: int) -> int:
    query = select(func.count()).select_from(extensions).where(extensions.c.user_node_id == user_node_id)
    return int(connection.execute(query).scalar_one())


def count_extensions(connection: Connection, organization_id: int) -> int:
    query = select(func.count()).select_from(extensions).where(extensions.c.organization_id == organization_id)
    return int(connection.execute(query).scalar_one())


def update_extension(connection: Connection, extension_id: int, *, now: datetime, **values: Any) -> None:
    connection.execute(update(extensions).where(extensions.c.id == extension_id).values(updated_at=now, **values))


def delete_extension(connection: Connection, extension_id: int) -> None:
    connection.execute(delete(extensions).where(extensions.c.id == extension_id))


# -- trunks -----------------------------------------------------------------------------------------


def trunk_networks(connection: Connection) -> list[tuple[int, IPNetwork]]:
    """Every trunk's networks, as (node id, network)."""
    rows = connection.execute(select(trunk_addresses.c.node_id, trunk_addresses.c.network))
    return [(row.node_id, ipaddress.ip_network(row.network)) for row in rows]


def networks_of_trunk(connection: Connection, node_id: int) -> list[str]:
    rows = connection.execute(
        select(trunk_addresses.c.network).where(trunk_addresses.c.node_id == node_id).order_by(trunk_addresses.c.id)
    )
    return [row.network for row in rows]


def replace_trunk_networks(connection: Connection, node_id: int, networks: Sequence[str], *, now: datetime) -> None:
    connection.execute(delete(trunk_addresses).where(trunk_addresses.c.node_id == node_id))
    if networks:
        rows = [{"node_id": node_id, "network": network, "created_at": now} for network in networks]
        connection.execute(insert(trunk_addresses), rows)
