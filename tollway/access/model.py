"""The one authorization rule (pure). Every endpoint asks ``decide``; none has an ``if`` of its own.

Two questions, in this order:
1. May the principal *see* the target at all? If not, the answer is NOT_FOUND, exactly as for a
   target that does not exist, so ids cannot be probed across tenants.
     - provider and reseller admins see their own node and everything below it;
     - an agent sees itself and the clients it manages (never other agents' clients);
     - an organization's admin sees its organization and the accounts of its users;
     - a client or an organization user sees its own node only.
2. May it *do* this to what it sees? If not, FORBIDDEN. Its role must grant the action, an API key
   may narrow that further, and actions an owner takes on a node (top up, suspend, change limits)
   apply only strictly below the principal's own node: nobody tops itself up.

And one rule for what a principal *creates* (``check_mint``): a user, an API key, a session or a node
with settings holds no action its creator does not hold itself. A user of role R needs every action R
grants, a key every action it is given, a node every action that changing each field it sets would
later need (``NODE_FIELD_ACTIONS``); a field left at its default needs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from tollway.errors import NotFound, Refusal
from tollway.tree.model import Node, NodeKind


class Role(StrEnum):
    PROVIDER_ADMIN = "provider_admin"
    RESELLER_ADMIN = "reseller_admin"
    AGENT = "agent"
    CLIENT = "client"
    ORGANIZATION_USER = "organization_user"
    ORGANIZATION_ADMIN = "organization_admin"  # at an organization: its users, extensions, caller ids, FollowMe


class Action(StrEnum):
    NODE_READ = "node:read"
    NODE_CREATE = "node:create"  # the target is the would-be owner
    NODE_UPDATE = "node:update"  # status, limits, grants
    BALANCE_READ = "balance:read"
    MONEY_TOPUP = "money:topup"
    MONEY_ADJUST = "money:adjust"  # adjustments, refunds, credit limits
    USER_MANAGE = "user:manage"  # users and API keys of the target node
    EXCHANGE_RATES_READ = "exchange_rates:read"
    EXCHANGE_RATES_WRITE = "exchange_rates:write"
    TARIFFS_READ = "tariffs:read"  # tariffs and plans a node owns, or the one it pays at
    TARIFFS_WRITE = "tariffs:write"  # tariffs, rate rows and plans a node owns
    AUDIT_READ = "audit:read"
    CALLS_READ = "calls:read"  # call details (agents see totals only)
    CALLS_CONTROL = "calls:control"  # a switch: authorize, answer, update and end calls below its node
    SECRETS_READ = "secrets:read"  # SIP credentials and the like
    COMMISSION_WITHDRAW = "commission:withdraw"  # an agent moves its accrued commission to its wallet
    SHOP_MANAGE = "shop:manage"  # a seller's gateways, offers, billing profile; confirm, reject, refund payments
    SHOP_PAY = "shop:pay"  # pay one's own owner through its shop (a card, a bank transfer)
    ORGANIZATION_MANAGE = "organization:manage"  # an organization's settings, users and extensions
    LINES_WRITE = "lines:write"  # the caller ids and FollowMe of a client's line or of an extension
    NODE_EDIT = "node:edit"  # name, language, time zone, contact email and phone: a node's own too
    BRAND_WRITE = "brand:write"  # the name, colours, logo and support contact a reseller shows its customers


class Decision(StrEnum):
    ALLOWED = "allowed"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"


ROLE_KINDS: dict[Role, frozenset[NodeKind]] = {
    Role.PROVIDER_ADMIN: frozenset({NodeKind.PROVIDER}),
    Role.RESELLER_ADMIN: frozenset({NodeKind.RESELLER}),
    Role.AGENT: frozenset({NodeKind.AGENT}),
    Role.CLIENT: frozenset({NodeKind.CLIENT}),
    Role.ORGANIZATION_USER: frozenset({NodeKind.CLIENT}),
    Role.ORGANIZATION_ADMIN: frozenset({NodeKind.CLIENT}),
}

_ADMIN = frozenset(Action)
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.PROVIDER_ADMIN: _ADMIN,
    Role.RESELLER_ADMIN: _ADMIN - {Action.EXCHANGE_RATES_WRITE},
    Role.AGENT: frozenset(
        {
            Action.NODE_READ,
            Action.NODE_CREATE,
            Action.BALANCE_READ,
            Action.MONEY_TOPUP,  # for an agent, a top-up is a deposit from its own wallet
            Action.COMMISSION_WITHDRAW,
            Action.EXCHANGE_RATES_READ,
            Action.TARIFFS_READ,
            Action.SHOP_PAY,  # its own wallet, through its reseller's shop
            Action.NODE_EDIT,  # its own details and its clients' (their contact, language, time zone)
        }
    ),
    Role.CLIENT: frozenset(
        {
            Action.NODE_READ,
            Action.BALANCE_READ,
            Action.CALLS_READ,
            Action.SECRETS_READ,
            Action.USER_MANAGE,
            Action.TARIFFS_READ,
            Action.SHOP_PAY,
            Action.LINES_WRITE,
            Action.NODE_EDIT,
        }
    ),
    Role.ORGANIZATION_USER: frozenset({Action.NODE_READ, Action.BALANCE_READ, Action.CALLS_READ, Action.LINES_WRITE}),
    Role.ORGANIZATION_ADMIN: frozenset(
        {
            Action.NODE_READ,
            Action.NODE_CREATE,  # its users' accounts, through the organization (tree refuses anything else)
            Action.BALANCE_READ,
            Action.CALLS_READ,
            Action.SECRETS_READ,
            Action.USER_MANAGE,
            Action.TARIFFS_READ,
            Action.LINES_WRITE,
            Action.ORGANIZATION_MANAGE,
            Action.NODE_EDIT,
        }
    ),
}

# Actions an owner takes on a node: never on the principal's own node.
OWNER_ACTIONS = frozenset({Action.NODE_UPDATE, Action.MONEY_TOPUP, Action.MONEY_ADJUST})
# Actions a principal takes only on its own node: nobody pays into someone else's wallet by card.
SELF_ACTIONS = frozenset({Action.SHOP_PAY})
# Actions that are not about one node of the tree.
GLOBAL_ACTIONS = frozenset({Action.EXCHANGE_RATES_READ, Action.EXCHANGE_RATES_WRITE})


@dataclass(frozen=True, slots=True)
class Place:
    """Where a node stands, as far as access is concerned."""

    node_id: int
    path: str
    kind: NodeKind
    parent_id: int | None = None
    managed_by_agent_id: int | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Someone acting: a user or an API key, at a node, with a role and its (possibly narrowed) actions."""

    place: Place
    role: Role
    actions: frozenset[Action]
    user_id: int | None = None
    api_key_id: int | None = None

    @property
    def label(self) -> str:
        return f"user:{self.user_id}" if self.user_id is not None else f"api_key:{self.api_key_id}"


def role_fits(role: Role, kind: NodeKind) -> bool:
    return kind in ROLE_KINDS[role]


@dataclass(frozen=True, slots=True)
class Scope:
    """What a principal may see, in the one shape that applies; stores turn it into a query."""

    path_prefix: str | None = None  # admins: their node and everything below it
    agent_id: int | None = None  # agents: themselves and the clients they manage
    node_id: int | None = None  # clients and organization users: their own node


def scope_of(principal: Principal) -> Scope:
    me = principal.place
    if principal.role in (Role.PROVIDER_ADMIN, Role.RESELLER_ADMIN, Role.ORGANIZATION_ADMIN):
        return Scope(path_prefix=me.path)  # an organization's admin: the organization and its users
    if principal.role is Role.AGENT:
        return Scope(agent_id=me.node_id)
    return Scope(node_id=me.node_id)


def sees(principal: Principal, target: Place) -> bool:
    scope = scope_of(principal)
    if scope.path_prefix is not None:
        return target.path.startswith(scope.path_prefix)
    if scope.agent_id is not None:
        return target.node_id == scope.agent_id or (
            target.kind is NodeKind.CLIENT and target.managed_by_agent_id == scope.agent_id
        )
    return target.node_id == scope.node_id


def decide(principal: Principal, action: Action, target: Place | None = None) -> Decision:
    """The rule. ``target`` is None only for actions that are not about a node (exchange rates)."""
    if target is None:
        if action not in GLOBAL_ACTIONS:
            raise ValueError(f"{action} needs a target node")
        return Decision.ALLOWED if action in principal.actions else Decision.FORBIDDEN
    if action is Action.NODE_CREATE and principal.role is Role.AGENT:
        # An agent creates clients for its reseller: the owner it names is its own reseller.
        if target.node_id != principal.place.parent_id:
            return Decision.NOT_FOUND
        return Decision.ALLOWED if action in principal.actions else Decision.FORBIDDEN
    if not sees(principal, target):
        return Decision.NOT_FOUND
    if action not in principal.actions:
        return Decision.FORBIDDEN
    if action in OWNER_ACTIONS and target.node_id == principal.place.node_id:
        return Decision.FORBIDDEN
    if action in SELF_ACTIONS and target.node_id != principal.place.node_id:
        return Decision.FORBIDDEN
    return Decision.ALLOWED


def sees_charge(principal: Principal | None, payer: Place) -> bool:
    """Whether a principal may see one level's charge for a call: what ``payer`` pays its owner.

    A call is charged at every level of its chain, each level paying its owner at its own price. A principal
    sees the charges of its own node and of the nodes below it, never those of its owners: a customer sees
    its own charge, a reseller what its customers pay it and what it pays its owner, never what its owner
    pays further up; the provider (and the command line, ``principal`` None) sees every level. A quote, a
    call record, a listing, an export: every view of charges keeps only the lines this answers True for.
    """
    return principal is None or sees(principal, payer)


def limited_view(principal: Principal, target: Place) -> bool:
    """Agents see their clients without call details beyond totals and without secrets."""
    return principal.role is Role.AGENT and target.node_id != principal.place.node_id


class Forbidden(Refusal):
    """403: the principal sees the target but may not do this to it."""

    def __init__(self, action: Action, *, reason: str = "forbidden", message: str | None = None) -> None:
        super().__init__(reason, message or f"not allowed to {action}")


def place_of(node: Node) -> Place:
    return Place(node.id, node.path, node.position.kind, node.parent_id, node.managed_by_agent_id)


def hidden_from(principal: Principal | None, target: Node) -> bool:
    """True when the principal may not even know ``target`` exists: what it names there (a tariff, a plan,
    an API key of that node) must then be answered "not found", exactly as a thing that does not exist."""
    if principal is None:
        return False
    return decide(principal, Action.NODE_READ, place_of(target)) is Decision.NOT_FOUND


def authorize(principal: Principal | None, action: Action, target: Node | None) -> None:
    """Apply the rule: NotFound for what the principal may not see, Forbidden for what it may not do.

    ``principal`` None is the operator at the machine's command line, who may do everything.
    """
    if principal is None:
        return
    decision = decide(principal, action, None if target is None else place_of(target))
    if decision is Decision.NOT_FOUND:
        raise NotFound("node", target.login if target else "")
    if decision is Decision.FORBIDDEN:
        raise Forbidden(action)


class NodeField(StrEnum):
    """What a creator may set on a new node beyond its place, login and name (which creation itself is)."""

    CREDIT_LIMIT = "credit_limit"
    CLIENTS_LIMIT = "clients_limit"
    CONCURRENT_CALLS_LIMIT = "concurrent_calls_limit"
    GRANTS = "grants"  # a reseller's client types and features
    MANAGED_BY_AGENT = "managed_by_agent"  # the agent pays the account's fee and earns on it
    LANGUAGE = "language"
    TIME_ZONE = "time_zone"
    MAX_CALL_SECONDS = "max_call_seconds"
    TARIFF = "tariff"  # the tariff it pays at (a profile's)


# The action that changing each field later requires: setting it at creation requires the same.
NODE_FIELD_ACTIONS: dict[NodeField, Action] = {
    NodeField.CREDIT_LIMIT: Action.MONEY_ADJUST,
    NodeField.CLIENTS_LIMIT: Action.NODE_UPDATE,
    NodeField.CONCURRENT_CALLS_LIMIT: Action.NODE_UPDATE,
    NodeField.GRANTS: Action.NODE_UPDATE,
    NodeField.MANAGED_BY_AGENT: Action.MONEY_ADJUST,  # as spending an agent's wallet does
    NodeField.LANGUAGE: Action.NODE_EDIT,
    NodeField.TIME_ZONE: Action.NODE_EDIT,
    NodeField.MAX_CALL_SECONDS: Action.NODE_UPDATE,
    NodeField.TARIFF: Action.NODE_UPDATE,
}


class MintForbidden(Forbidden):
    """403: what would be created holds an action its creator does not; ``reason`` names what asked for it."""

    def __init__(self, what: str, missing: frozenset[Action]) -> None:
        Refusal.__init__(
            self,
            f"{what}_forbidden",
            f"setting {what} needs {', '.join(sorted(missing))}, which you do not hold",
        )


def check_mint(principal: Principal | None, needs: Mapping[str, Iterable[Action]]) -> None:
    """Never mint more than you hold. ``needs`` maps each thing asked for (``role``, ``actions``, a node's
    field) to the actions it would carry; the first one holding an action the principal lacks is refused.

    ``principal`` None is the operator at the machine's command line, who holds everything.
    """
    if principal is None:
        return
    for what, actions in needs.items():
        missing = frozenset(actions) - principal.actions
        if missing:
            raise MintForbidden(what, missing)


def node_creation_needs(fields: Iterable[NodeField]) -> dict[str, frozenset[Action]]:
    """What creating a node that sets ``fields`` asks of its creator, field by field (beyond ``node:create``
    on the owner, which ``decide`` checks)."""
    return {str(field): frozenset({NODE_FIELD_ACTIONS[field]}) for field in fields}
