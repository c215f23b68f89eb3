"""Use cases on the ownership tree; each runs in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from babel import localedata
from sqlalchemy import Connection

from tollway.access.audit import audit
from tollway.access.model import (
    Action,
    Forbidden,
    NodeField,
    Principal,
    Role,
    authorize,
    check_mint,
    hidden_from,
    node_creation_needs,
    scope_of,
)
from tollway.branding import store as brand_store
from tollway.clock import utc_now
from tollway.errors import NotFound, Refusal, present
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose
from tollway.money import check_currency
from tollway.notifications.model import check_email
from tollway.store.database import Database
from tollway.tree import model
from tollway.tree import store as tree_store
from tollway.tree.model import ClientType, Grants, Node, NodeKind, Position, Status

SEARCH_LENGTH_MAX = 100  # characters of a search in the nodes' logins and names


@dataclass(frozen=True, slots=True)
class NewNode:
    """What an owner says when it creates a node below itself."""

    position: Position
    login: str
    name: str
    currency: str | None = None  # default: the owner's
    language: str | None = None  # default: the owner's default for its customers, else its own
    time_zone: str | None = None  # default: the owner's
    credit_limit_micros: int = 0
    grants: Grants | None = None  # resellers only; default: the owner's
    clients_limit: int | None = None
    concurrent_calls_limit: int | None = None
    managed_by_agent_login: str | None = None  # a client created by an agent of its reseller


def require_node(connection: Connection, login: str, *, lock: bool = False) -> Node:
    node = tree_store.find_node(connection, login, lock=lock)
    if node is None:
        raise NotFound("node", login)
    return node


def open_accounts(connection: Connection, node: Node, *, credit_limit_micros: int, now: datetime) -> None:
    """Every node has a wallet, a revenue and an issuance account; agents also a commission one.

    The provider's wallet has no floor: the house's own balance is unlimited.
    """
    wallet_floor = node.position.kind is not NodeKind.PROVIDER
    purposes = [
        (AccountPurpose.WALLET, wallet_floor),
        (AccountPurpose.REVENUE, False),
        (AccountPurpose.ISSUANCE, False),
    ]
    if node.position.kind is NodeKind.AGENT:
        purposes.append((AccountPurpose.COMMISSION, True))
    for purpose, floor in purposes:
        ledger_store.create_account(
            connection,
            node_id=node.id,
            purpose=purpose,
            currency=node.currency,
            floor=floor,
            now=now,
            credit_limit_micros=credit_limit_micros if purpose is AccountPurpose.WALLET else 0,
        )


def create_provider(
    database: Database, *, login: str, name: str, currency: str, language: str = "en", time_zone: str = "UTC"
) -> Node:
    now = utc_now()

    def use_case(connection: Connection) -> Node:
        if tree_store.find_provider(connection) is not None:
            raise Refusal("provider_exists", "there is already a provider: the tree has one root")
        _check_unique_login(connection, login)
        node = tree_store.insert_node(
            connection,
            parent=None,
            position=model.PROVIDER,
            login=model.check_login(login),
            name=model.check_name(name),
            currency=check_currency(currency),
            language=model.check_language(language),
            time_zone=model.check_time_zone(time_zone),
            grants=Grants(),
            clients_limit=None,
            concurrent_calls_limit=None,
            managed_by_agent_id=None,
            now=now,
        )
        open_accounts(connection, node, credit_limit_micros=0, now=now)
        return node

    return database.run(use_case)


def create_node(database: Database, *, owner_login: str, new: NewNode, principal: Principal | None = None) -> Node:
    now = utc_now()
    return database.run(
        lambda connection: create_node_in(connection, owner_login=owner_login, new=new, now=now, principal=principal)
    )


def create_node_in(
    connection: Connection,
    *,
    owner_login: str,
    new: NewNode,
    now: datetime,
    principal: Principal | None = None,
    organization_user: bool = False,
) -> Node:
    """``organization_user``: the caller is the organizations' use case, which checks the organization's
    own limits; a user of an organization is made by it only (tollway/organizations)."""
    # Lock the owner: two creations racing for the last place under a clients limit queue here.
    owner = require_node(connection, owner_login, lock=True)
    authorize(principal, Action.NODE_CREATE, owner)
    if principal is not None and principal.role is Role.AGENT and new.position.kind is not NodeKind.CLIENT:
        raise Forbidden(Action.NODE_CREATE)
    check_mint(principal, node_creation_needs(fields_set(owner, new, principal)))
    model.check_link(owner.position, new.position)
    owners = tree_store.chain(connection, owner)
    if model.effective_status([n.status for n in owners]) is not Status.ACTIVE:
        raise Refusal("owner_not_active", f"{owner.login} or a node above it is suspended or closed")
    grants = _grants_for(owner, new)
    if new.position.kind is NodeKind.AGENT:
        model.check_feature_granted(owner.grants, model.Feature.AGENTS)
    if new.position.client_type is ClientType.USER and not organization_user:
        raise Refusal("user_through_organization", "an organization's users are created through its organization")
    if new.position.kind is NodeKind.CLIENT and new.position.client_type is not ClientType.USER:
        model.check_client_type_granted(owner.grants, present(new.position.client_type, "client type"))
        for ancestor in owners:
            if ancestor.clients_limit is None:
                continue
            # Lock each limited ancestor, bottom-up like every creation, so two creations under
            # different owners cannot both count the same last place of a shared limit.
            limited = present(tree_store.get_node(connection, ancestor.id, lock=True), f"node {ancestor.login}")
            model.check_clients_limit(limited.clients_limit, tree_store.count_open_clients_below(connection, limited))
    _check_unique_login(connection, new.login)
    node = tree_store.insert_node(
        connection,
        parent=owner,
        position=new.position,
        login=model.check_login(new.login),
        name=model.check_name(new.name),
        currency=check_currency(new.currency or owner.currency),
        # The owner's default for its customers (its brand's), else its own language.
        language=check_known_language(
            new.language or brand_store.customer_language(connection, owner.id) or owner.language
        ),
        time_zone=model.check_time_zone(new.time_zone or owner.time_zone),
        grants=grants,
        clients_limit=model.check_limit("clients_limit", new.clients_limit),
        concurrent_calls_limit=model.check_limit("concurrent_calls_limit", new.concurrent_calls_limit),
        managed_by_agent_id=_managing_agent_id(connection, owner, new, principal),
        now=now,
    )
    open_accounts(connection, node, credit_limit_micros=model.check_credit_limit(new.credit_limit_micros), now=now)
    audit(
        connection,
        principal,
        action="node.create",
        target_type="node",
        target_id=node.login,
        node=node,
        after=summary(node) | {"credit_limit_micros": new.credit_limit_micros},
    )
    return node


def fields_set(owner: Node, new: NewNode, principal: Principal | None) -> list[NodeField]:
    """The fields a creation sets beyond their defaults (the owner's language and time zone, no credit, no
    limits, the owner's grants); each asks the creator for the action that changing it later needs."""
    chosen = {
        NodeField.CREDIT_LIMIT: new.credit_limit_micros != 0,
        NodeField.CLIENTS_LIMIT: new.clients_limit is not None,
        NodeField.CONCURRENT_CALLS_LIMIT: new.concurrent_calls_limit is not None,
        NodeField.GRANTS: new.grants is not None,
        NodeField.LANGUAGE: new.language is not None and new.language != owner.language,
        NodeField.TIME_ZONE: new.time_zone is not None and new.time_zone != owner.time_zone,
        # An agent's clients are its own to manage: naming itself sets nothing.
        NodeField.MANAGED_BY_AGENT: new.managed_by_agent_login is not None
        and not (principal is not None and principal.role is Role.AGENT),
    }
    return [field for field, is_set in chosen.items() if is_set]


def summary(node: Node) -> dict[str, object]:
    """What the audit log records of a node."""
    return {
        "login": node.login,
        "name": node.name,
        "position": str(node.position),
        "currency": node.currency,
        "status": str(node.status),
        "language": node.language,
        "time_zone": node.time_zone,
        "client_types": sorted(node.grants.client_types),
        "features": sorted(node.grants.features),
        "clients_limit": node.clients_limit,
        "concurrent_calls_limit": node.concurrent_calls_limit,
        "max_call_seconds": node.max_call_seconds,
    }


def _grants_for(owner: Node, new: NewNode) -> Grants:
    if new.position.kind is not NodeKind.RESELLER:
        if new.grants is not None:
            raise Refusal("grants_only_on_resellers", "only resellers have client types and features to sell")
        return Grants(frozenset(), frozenset())
    grants = new.grants or owner.grants
    model.check_narrowing(owner.grants, grants)
    return grants


def _managing_agent_id(connection: Connection, owner: Node, new: NewNode, principal: Principal | None) -> int | None:
    if principal is not None and principal.role is Role.AGENT:
        me = present(tree_store.get_node(connection, principal.place.node_id), "the principal's node")
        if new.managed_by_agent_login not in (None, me.login):
            raise NotFound("node", new.managed_by_agent_login)  # another agent: out of its sight
        return me.id  # an agent's clients are managed by that agent
    if new.managed_by_agent_login is None:
        return None
    agent = require_node(connection, new.managed_by_agent_login)
    authorize(principal, Action.NODE_READ, agent)  # an agent out of sight is not found, as a missing one
    if new.position.kind is not NodeKind.CLIENT:
        raise Refusal("agent_manages_clients_only", "an agent manages client accounts only")
    if agent.position.kind is not NodeKind.AGENT or agent.parent_id != owner.id:
        raise Refusal("agent_not_of_owner", f"{agent.login} is not an agent of {owner.login}")
    return agent.id


def _check_unique_login(connection: Connection, login: str) -> None:
    if tree_store.find_node(connection, login) is not None:
        raise Refusal("login_taken", f"the login {login!r} is taken")


def set_status(database: Database, *, login: str, status: Status, principal: Principal | None = None) -> Node:
    now = utc_now()

    def use_case(connection: Connection) -> Node:
        node = require_node(connection, login, lock=True)
        authorize(principal, Action.NODE_UPDATE, node)
        return apply_status(connection, node, status, now=now, principal=principal)

    return database.run(use_case)


def apply_status(
    connection: Connection, node: Node, status: Status, *, now: datetime, principal: Principal | None
) -> Node:
    """Change a locked node's status, once the caller has authorized it (an owner, or for an organization's
    user its organization's admin)."""
    if node.position.kind is NodeKind.PROVIDER:
        raise Refusal("provider_status_fixed", "the provider is always active")
    wallet_id = ledger_store.find_account_id(
        connection, node_id=node.id, purpose=AccountPurpose.WALLET, currency=node.currency
    )
    wallet = ledger_store.get_account(connection, wallet_id or 0)
    model.check_status_change(
        node.status,
        status,
        open_children=tree_store.count_open_children(connection, node),
        balance_micros=wallet.balance_micros if wallet else 0,
        reserved_micros=wallet.debits_pending if wallet else 0,
    )
    tree_store.update_node(connection, node.id, status=status, now=now)
    return _audited(connection, principal, "node.status", node)


def set_grants(database: Database, *, login: str, grants: Grants, principal: Principal | None = None) -> Node:
    """Change what a reseller may sell: never wider than its owner, never narrower than its sub-resellers."""
    now = utc_now()

    def use_case(connection: Connection) -> Node:
        node = require_node(connection, login, lock=True)
        authorize(principal, Action.NODE_UPDATE, node)
        if node.position.kind is not NodeKind.RESELLER:
            raise Refusal("grants_only_on_resellers", "only resellers have client types and features to sell")
        owner = present(tree_store.get_node(connection, node.parent_id or 0), f"owner of {node.login}")
        model.check_narrowing(owner.grants, grants)
        for child_login, child_grants in tree_store.widest_children_grants(connection, node):
            try:
                model.check_narrowing(grants, child_grants)
            except Refusal as refusal:
                raise Refusal(
                    "sub_reseller_wider", f"sub-reseller {child_login} still sells more: narrow it first"
                ) from refusal
        tree_store.update_node(connection, node.id, grants=grants, now=now)
        return _audited(connection, principal, "node.grants", node)

    return database.run(use_case)


def set_limits(
    database: Database,
    *,
    login: str,
    clients_limit: int | None,
    concurrent_calls_limit: int | None,
    max_call_seconds: int | None = None,
    principal: Principal | None = None,
) -> Node:
    now = utc_now()

    def use_case(connection: Connection) -> Node:
        node = require_node(connection, login, lock=True)
        authorize(principal, Action.NODE_UPDATE, node)
        tree_store.update_node(
            connection,
            node.id,
            clients_limit=model.check_limit("clients_limit", clients_limit),
            concurrent_calls_limit=model.check_limit("concurrent_calls_limit", concurrent_calls_limit),
            max_call_seconds=model.check_limit("max_call_seconds", max_call_seconds),
            now=now,
        )
        return _audited(connection, principal, "node.limits", node)

    return database.run(use_case)


def _audited(connection: Connection, principal: Principal | None, action: str, before: Node) -> Node:
    after = require_node(connection, before.login)
    audit(
        connection,
        principal,
        action=action,
        target_type="node",
        target_id=after.login,
        node=after,
        before=summary(before),
        after=summary(after),
    )
    return after


def effective_status(database: Database, *, login: str) -> Status:
    with database.reading() as connection:
        node = require_node(connection, login)
        return model.effective_status([n.status for n in tree_store.chain(connection, node)])


def visible_nodes(
    database: Database,
    principal: Principal,
    *,
    kind: NodeKind | None = None,
    status: Status | None = None,
    limit: int,
    after_id: int = 0,
    within_login: str | None = None,
    search: str | None = None,
    below_only: bool = False,
    client_type: ClientType | None = None,
) -> list[Node]:
    """The nodes the principal may see, one page at a time: the query form of ``access.model.sees``.

    ``within_login``: only that node's subtree (a node the principal may see, else NotFound); ``search``:
    text its login or name contains (any case); ``below_only``: without the principal's own node."""
    scope = scope_of(principal)
    if search is not None and len(search) > SEARCH_LENGTH_MAX:
        raise Refusal("search_invalid", f"a search is at most {SEARCH_LENGTH_MAX} characters")
    with database.reading() as connection:
        within = None
        if within_login is not None:
            within = require_node(connection, within_login)
            authorize(principal, Action.NODE_READ, within)
        return tree_store.page(
            connection,
            path_prefix=scope.path_prefix,
            managed_by_agent_id=scope.agent_id,
            node_id=scope.node_id,
            kind=kind,
            status=status,
            limit=limit,
            after_id=after_id,
            within_path=None if within is None else within.path,
            search=search or None,
            exclude_node_id=principal.place.node_id if below_only else None,
            client_type=client_type,
        )


def get_node(database: Database, principal: Principal | None, *, login: str) -> Node:
    """One node, if the principal may see it (NotFound otherwise, exactly as if it did not exist)."""
    with database.reading() as connection:
        node = require_node(connection, login)
    authorize(principal, Action.NODE_READ, node)
    return node


def get_owner(database: Database, principal: Principal | None, *, login: str) -> Node | None:
    """The owner of a node the principal may see, if the principal may see that owner too (None: the
    provider, which has none, or an owner out of the principal's sight)."""
    with database.reading() as connection:
        node = require_node(connection, login)
        authorize(principal, Action.NODE_READ, node)
        owner = None if node.parent_id is None else tree_store.get_node(connection, node.parent_id)
    if owner is None or (principal is not None and hidden_from(principal, owner)):
        return None
    return owner


def check_known_language(language: str) -> str:
    """A language code Tollway knows the names, numbers and dates of (Babel's locales: 'en', 'pt_BR')."""
    if not localedata.exists(model.check_language(language)):
        raise Refusal("language_invalid", f"{language!r} is not a language Tollway knows, such as 'en' or 'pt_BR'")
    return language


class Keep(Enum):
    """A field a caller leaves as it is (``None`` clears a field that may be empty)."""

    KEEP = "keep"


KEEP = Keep.KEEP


def edit_node(
    database: Database,
    *,
    login: str,
    principal: Principal | None = None,
    name: str | Keep = KEEP,
    language: str | Keep = KEEP,
    time_zone: str | Keep = KEEP,
    email: str | Keep | None = KEEP,
    phone: str | Keep | None = KEEP,
) -> Node:
    """Change a node's name, language, time zone, contact email or phone (``node:edit``: its owners, its
    agent, and the node itself). Only the fields given change; ``None`` clears the email or the phone.
    Each change is checked (a known language, an IANA time zone, an address, an E.164 number) and audited."""
    wanted: dict[str, Any] = {
        "name": name if name is KEEP else model.check_name(name),
        "language": language if language is KEEP else check_known_language(language),
        "time_zone": time_zone if time_zone is KEEP else model.check_time_zone(time_zone),
        "email": email if email in (KEEP, None) else check_email(str(email)),
        "phone": phone if phone in (KEEP, None) else model.check_phone(str(phone)),
    }
    now = utc_now()

    def use_case(connection: Connection) -> Node:
        node = require_node(connection, login, lock=True)
        authorize(principal, Action.NODE_EDIT, node)
        changes = {field: value for field, value in wanted.items() if value is not KEEP}
        before = {field: getattr(node, field) for field in changes}
        if not changes or before == changes:
            return node
        tree_store.update_node(connection, node.id, now=now, **changes)
        audit(
            connection,
            principal,
            action="node.edit",
            target_type="node",
            target_id=node.login,
            node=node,
            before=before,
            after=changes,
        )
        return require_node(connection, login)

    return database.run(use_case)
