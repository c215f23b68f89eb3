"""Recording who changed what, in the same transaction as the change itself."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection

from tollway.access import store as access_store
from tollway.access.model import Principal
from tollway.clock import utc_now
from tollway.tree.model import Node

# Set by the interface handling the current request (the HTTP middleware), read when auditing.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def audit(
    connection: Connection,
    principal: Principal | None,
    *,
    action: str,
    target_type: str,
    target_id: object,
    node: Node | None,
    before: Any = None,
    after: Any = None,
    request_id: str | None = None,
    actor: str | None = None,
) -> None:
    """Append an audit entry; ``principal`` None is the operator at the command line ("cli"), or the outside
    system named by ``actor`` (a payment gateway's webhook: "stripe")."""
    access_store.insert_audit(
        connection,
        at=utc_now(),
        actor=principal.label if principal else (actor or "cli"),
        actor_node_id=principal.place.node_id if principal else None,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        node_path=node.path if node else None,
        before=before,
        after=after,
        request_id=request_id or current_request_id.get(),
    )
