"""Tree persistence: nodes as rows, inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tollway.errors import Refusal, present
from tollway.store.schema import nodes
from tollway.tree.model import (
    ClientType,
    Feature,
    Grants,
    Node,
    NodeKind,
    Position,
    Status,
)

LIST_PAGE_SIZE_MAX = 500


def _join(values: frozenset[Any]) -> str:
    return ",".join(sorted(str(value) for value in values))


def _node(row: Row[Any]) -> Node:
    return Node(
        id=row.id,
        parent_id=row.parent_id,
        path=row.path,
        position=Position(
            NodeKind(row.kind),
            level=row.level,
            client_type=ClientType(row.client_type) if row.client_type else None,
        ),
        login=row.login,
        name=row.name,
        currency=row.currency,
        status=Status(row.status),
        language=row.language,
        time_zone=row.time_zone,
        grants=Grants(
            client_types=frozenset(ClientType(v) for v in row.allowed_client_types.split(",") if v),
            features=frozenset(Feature(v) for v in row.allowed_features.split(",") if v),
        ),
        clients_limit=row.clients_limit,
        concurrent_calls_limit=row.concurrent_calls_limit,
        managed_by_agent_id=row.managed_by_agent_id,
        max_call_seconds=row.max_call_seconds,
        email=row.email,
        phone=row.phone,
    )


def insert_node(
    connection: Connection,
    *,
    parent: Node | None,
    position: Position,
    login: str,
    name: str,
    currency: str,
    language: str,
    time_zone: str,
    grants: Grants,
    clients_limit: int | None,
    concurrent_calls_limit: int | None,
    managed_by_agent_id: int | None,
    now: datetime,
) -> Node:
    try:
        node_id = _insert_row(
            connection,
            parent_id=parent.id if parent else None,
            path=f"/new/{login}/",
            kind=str(position.kind),
            level=position.level,
            client_type=str(position.client_type) if position.client_type else None,
            login=login,
            name=name,
            currency=currency,
            status=str(Status.ACTIVE),
            language=language,
            time_zone=time_zone,
            allowed_client_types=_join(grants.client_types),
            allowed_features=_join(grants.features),
            clients_limit=clients_limit,
            concurrent_calls_limit=concurrent_calls_limit,
            managed_by_agent_id=managed_by_agent_id,
            created_at=now,
            updated_at=now,
        )
    except IntegrityError as error:
        # The checks before the insert lost a race: the unique indexes answer, as a refusal.
        if "one_provider" in str(error.orig) or "nodes.kind" in str(error.orig):
            raise Refusal("provider_exists", "there is already a provider: the tree has one root") from None
        if "login" in str(error.orig):
            raise Refusal("login_taken", f"the login {login!r} is taken") from None
        raise
    path = f"{parent.path if parent else '/'}{node_id}/"
    connection.execute(update(nodes).where(nodes.c.id == node_id).values(path=path))
    return present(get_node(connection, node_id), f"node {node_id} just inserted")


def _insert_row(connection: Connection, **values: Any) -> int:
    result = connection.execute(insert(nodes).values(**values))
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def get_node(connection: Connection, node_id: int, *, lock: bool = False) -> Node | None:
    query = select(nodes).where(nodes.c.id == node_id)
    row = connection.execute(query.with_for_update() if lock else query).first()
    return None if row is None else _node(row)


def find_node(connection: Connection, login: str, *, lock: bool = False) -> Node | None:
    if "\x00" in login:  # never stored, and PostgreSQL refuses it in text: nothing to look up
        return None
    query = select(nodes).where(nodes.c.login == login)
    row = connection.execute(query.with_for_update() if lock else query).first()
    return None if row is None else _node(row)


def find_provider(connection: Connection) -> Node | None:
    row = connection.execute(select(nodes).where(nodes.c.kind == str(NodeKind.PROVIDER))).first()
    return None if row is None else _node(row)


def chain(connection: Connection, node: Node) -> list[Node]:
    """The node and its ancestors, from the node up to the provider."""
    ids = node.ancestor_ids
    if not ids:
        return [node]
    rows = connection.execute(select(nodes).where(nodes.c.id.in_(ids)))
    by_id = {row.id: _node(row) for row in rows}
    return [node, *(by_id[i] for i in reversed(ids))]


def nodes_by_id(connection: Connection, ids: Iterable[int]) -> dict[int, Node]:
    """The nodes of ``ids`` that exist, by id, in one query."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {row.id: _node(row) for row in connection.execute(select(nodes).where(nodes.c.id.in_(wanted)))}


def children(connection: Connection, node: Node, *, limit: int = LIST_PAGE_SIZE_MAX, after_id: int = 0) -> list[Node]:
    rows = connection.execute(
        select(nodes)
        .where(nodes.c.parent_id == node.id, nodes.c.id > after_id)
        .order_by(nodes.c.id)
        .limit(min(limit, LIST_PAGE_SIZE_MAX))
    )
    return [_node(row) for row in rows]


def subtree(connection: Connection, node: Node, *, limit: int = LIST_PAGE_SIZE_MAX, after_id: int = 0) -> list[Node]:
    rows = connection.execute(
        select(nodes)
        .where(nodes.c.path.startswith(node.path, autoescape=True), nodes.c.id > after_id)
        .order_by(nodes.c.id)
        .limit(min(limit, LIST_PAGE_SIZE_MAX))
    )
    return [_node(row) for row in rows]


def page(
    connection: Connection,
    *,
    path_prefix: str | None = None,
    managed_by_agent_id: int | None = None,
    node_id: int | None = None,
    kind: NodeKind | None = None,
    status: Status | None = None,
    limit: int = LIST_PAGE_SIZE_MAX,
    after_id: int = 0,
    within_path: str | None = None,
    search: str | None = None,
    exclude_node_id: int | None = None,
    client_type: ClientType | None = None,
) -> list[Node]:
    """One page of nodes, by ascending id, filtered; every filter is a bound parameter.

    ``within_path``: only that subtree (beside the principal's scope); ``search``: text the login or the name
    contains, in any case; ``exclude_node_id``: leave that node out (the reader's own)."""
    query = select(nodes).where(nodes.c.id > after_id)
    if path_prefix is not None:
        query = query.where(nodes.c.path.startswith(path_prefix, autoescape=True))
    if within_path is not None:
        query = query.where(nodes.c.path.startswith(within_path, autoescape=True))
    if search:
        text = search.lower()
        query = query.where(
            func.lower(nodes.c.login).contains(text, autoescape=True)
            | func.lower(nodes.c.name).contains(text, autoescape=True)
        )
    if exclude_node_id is not None:
        query = query.where(nodes.c.id != exclude_node_id)
    if managed_by_agent_id is not None:
        query = query.where((nodes.c.managed_by_agent_id == managed_by_agent_id) | (nodes.c.id == managed_by_agent_id))
    if node_id is not None:
        query = query.where(nodes.c.id == node_id)
    if kind is not None:
        query = query.where(nodes.c.kind == str(kind))
    if status is not None:
        query = query.where(nodes.c.status == str(status))
    if client_type is not None:
        query = query.where(nodes.c.client_type == str(client_type))
    rows = connection.execute(query.order_by(nodes.c.id).limit(min(limit, LIST_PAGE_SIZE_MAX)))
    return [_node(row) for row in rows]


def count_open_clients_below(connection: Connection, node: Node) -> int:
    return int(
        connection.execute(
            select(func.count())
            .select_from(nodes)
            .where(
                nodes.c.path.startswith(node.path, autoescape=True),
                nodes.c.kind == str(NodeKind.CLIENT),
                nodes.c.client_type != str(ClientType.USER),  # an organization's users are not clients of a reseller
                nodes.c.status != str(Status.CLOSED),
            )
        ).scalar_one()
    )


def count_open_children(connection: Connection, node: Node) -> int:
    return int(
        connection.execute(
            select(func.count())
            .select_from(nodes)
            .where(nodes.c.parent_id == node.id, nodes.c.status != str(Status.CLOSED))
        ).scalar_one()
    )


def widest_children_grants(connection: Connection, node: Node) -> Sequence[tuple[str, Grants]]:
    rows = connection.execute(select(nodes).where(nodes.c.parent_id == node.id, nodes.c.kind == str(NodeKind.RESELLER)))
    return [(row.login, _node(row).grants) for row in rows]


def update_node(connection: Connection, node_id: int, *, now: datetime, **values: Any) -> None:
    if "status" in values:
        values["status"] = str(values["status"])
    if "grants" in values:
        grants: Grants = values.pop("grants")
        values["allowed_client_types"] = _join(grants.client_types)
        values["allowed_features"] = _join(grants.features)
    connection.execute(update(nodes).where(nodes.c.id == node_id).values(updated_at=now, **values))
