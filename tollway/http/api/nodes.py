"""Nodes of the tree: list what you may see, read one, create below you, change status, limits, grants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tollway.access.model import limited_view, place_of
from tollway.agents import service as agents
from tollway.errors import Refusal
from tollway.http.api.schemas import (
    PAGE_SIZE_DEFAULT,
    AfterId,
    NodeEditIn,
    NodeGrantsIn,
    NodeIn,
    NodeLimitsIn,
    NodeOut,
    NodePage,
    NodeStatusIn,
    PageSize,
    Problem,
)
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.money import to_micros
from tollway.tree import service as tree
from tollway.tree.model import Grants, NodeKind, Position, Status

ERRORS = {status: {"model": Problem} for status in (400, 401, 403, 404, 409, 422, 429, 503)}
router = APIRouter(prefix="/nodes", tags=["nodes"], responses=ERRORS)  # type: ignore[arg-type]


@router.get("", summary="List the nodes you may see, by ascending id")
def list_nodes(
    database: DatabaseDep,
    principal: PrincipalDep,
    kind: NodeKind | None = None,
    status: Status | None = None,
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
    after_id: Annotated[AfterId, Query()] = 0,
) -> NodePage:
    nodes = tree.visible_nodes(database, principal, kind=kind, status=status, limit=limit, after_id=after_id)
    items = [NodeOut.of(n, limited=limited_view(principal, place_of(n))) for n in nodes]
    return NodePage(items=items, next_after_id=nodes[-1].id if len(nodes) == limit else None)


@router.get("/{login}", summary="Read one node")
def get_node(login: str, database: DatabaseDep, principal: PrincipalDep) -> NodeOut:
    node = tree.get_node(database, principal, login=login)
    return NodeOut.of(node, limited=limited_view(principal, place_of(node)))


@router.post("", status_code=201, summary="Create a reseller, agent or client below a node you own")
def create_node(body: NodeIn, database: DatabaseDep, principal: PrincipalDep) -> NodeOut:
    grants = None
    if body.client_types is not None or body.features is not None:
        grants = Grants(frozenset(body.client_types or ()), frozenset(body.features or ()))
    new = tree.NewNode(
        position=Position(body.kind, level=body.level, client_type=body.client_type),
        login=body.login,
        name=body.name,
        currency=body.currency,
        language=body.language,
        time_zone=body.time_zone,
        credit_limit_micros=to_micros(body.credit_limit),
        grants=grants,
        clients_limit=body.clients_limit,
        concurrent_calls_limit=body.concurrent_calls_limit,
        managed_by_agent_login=body.managed_by_agent,
    )
    node = agents.create_node(database, owner_login=body.owner, new=new, principal=principal)  # an agent's fee
    return NodeOut.of(node, limited=limited_view(principal, place_of(node)))


@router.put("/{login}/status", summary="Suspend, reactivate or close a node below you")
def set_status(login: str, body: NodeStatusIn, database: DatabaseDep, principal: PrincipalDep) -> NodeOut:
    return NodeOut.of(tree.set_status(database, login=login, status=body.status, principal=principal))


@router.put("/{login}/limits", summary="Set the clients and concurrent-calls limits of a node below you")
def set_limits(login: str, body: NodeLimitsIn, database: DatabaseDep, principal: PrincipalDep) -> NodeOut:
    node = tree.set_limits(
        database,
        login=login,
        clients_limit=body.clients_limit,
        concurrent_calls_limit=body.concurrent_calls_limit,
        max_call_seconds=body.max_call_seconds,
        principal=principal,
    )
    return NodeOut.of(node)


@router.put("/{login}/grants", summary="Narrow (or widen, within yours) what a sub-reseller may sell")
def set_grants(login: str, body: NodeGrantsIn, database: DatabaseDep, principal: PrincipalDep) -> NodeOut:
    grants = Grants(frozenset(body.client_types), frozenset(body.features))
    return NodeOut.of(tree.set_grants(database, login=login, grants=grants, principal=principal))


@router.patch("/{login}", summary="Change a node's name, language, time zone, contact email or phone")
def edit_node(login: str, body: NodeEditIn, database: DatabaseDep, principal: PrincipalDep) -> NodeOut:
    sent = body.model_fields_set
    for required in ("name", "language", "time_zone"):
        if required in sent and getattr(body, required) is None:
            raise Refusal(
                f"{required}_invalid", f"a node always has a {required.replace('_', ' ')}: it cannot be cleared"
            )
    changes = {field: getattr(body, field) for field in sent}
    node = tree.edit_node(database, login=login, principal=principal, **changes)
    return NodeOut.of(node, limited=limited_view(principal, place_of(node)))
