"""Brands and their host names as rows, inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tollway.branding.model import BrandRow, HostTaken, Logo
from tollway.store.schema import brand_hosts, brands, nodes


@dataclass(frozen=True, slots=True)
class BrandedNode:
    """What a brand needs of its node: its names and language."""

    node_id: int
    name: str
    brand_name: str | None
    language: str


def branded_node(connection: Connection, node_id: int) -> BrandedNode | None:
    row = connection.execute(
        select(nodes.c.id, nodes.c.name, nodes.c.brand_name, nodes.c.language).where(nodes.c.id == node_id)
    ).first()
    return None if row is None else BrandedNode(row.id, row.name, row.brand_name, row.language)


def get_row(connection: Connection, node_id: int) -> BrandRow | None:
    row = connection.execute(
        select(
            brands.c.node_id,
            brands.c.colour_primary,
            brands.c.colour_accent,
            brands.c.support_email,
            brands.c.support_phone,
            brands.c.support_url,
            brands.c.customer_language,
            brands.c.logo_digest,
        ).where(brands.c.node_id == node_id)
    ).first()
    return None if row is None else BrandRow(**row._mapping)


def save_row(connection: Connection, node_id: int, *, now: datetime, **values: Any) -> None:
    """Write ``values`` into the node's brand, making its row on first use."""
    found = connection.execute(select(brands.c.node_id).where(brands.c.node_id == node_id).with_for_update()).first()
    if found is None:
        connection.execute(insert(brands).values(node_id=node_id, updated_at=now, **values))
    else:
        connection.execute(update(brands).where(brands.c.node_id == node_id).values(updated_at=now, **values))


def node_for_host(connection: Connection, host: str) -> int | None:
    if "\x00" in host:
        return None
    return connection.execute(select(brand_hosts.c.node_id).where(brand_hosts.c.host == host)).scalar()


def hosts_of(connection: Connection, node_id: int) -> list[str]:
    query = select(brand_hosts.c.host).where(brand_hosts.c.node_id == node_id).order_by(brand_hosts.c.host)
    return list(connection.execute(query).scalars())


def replace_hosts(connection: Connection, node_id: int, hosts: Sequence[str], *, now: datetime) -> None:
    connection.execute(delete(brand_hosts).where(brand_hosts.c.node_id == node_id))
    if not hosts:
        return
    try:
        with connection.begin_nested():
            connection.execute(insert(brand_hosts), [{"host": h, "node_id": node_id, "created_at": now} for h in hosts])
    except IntegrityError:
        taken = connection.execute(
            select(brand_hosts.c.host).where(brand_hosts.c.host.in_(list(hosts))).order_by(brand_hosts.c.host)
        ).scalars()
        raise HostTaken(list(taken)) from None


def find_logo(connection: Connection, digest: str) -> Logo | None:
    if len(digest) != 64:
        return None
    row = connection.execute(
        select(brands.c.logo, brands.c.logo_type).where(brands.c.logo_digest == digest).limit(1)
    ).first()
    return None if row is None else Logo(bytes(row.logo), row.logo_type, digest)


def customer_language(connection: Connection, node_id: int) -> str | None:
    """The language a node gives the customers it creates, if it set one."""
    return connection.execute(select(brands.c.customer_language).where(brands.c.node_id == node_id)).scalar()
