"""Pure rules of the ownership tree (docs/design.md section 1). No I/O.

provider ── L3 ── L2 ── L1 ── clients
                   └── pbx clients
agents belong to one reseller that can own clients (L2 or L1) and own nothing.
the provider may own resellers of any level and clients directly.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from tollway.errors import Refusal
from tollway.money import AMOUNT_MICROS_MAX

# \Z, not $: "$" also matches before a trailing newline, which would let "alice\n" through.
LOGIN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,62}\Z")
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?\Z")
# Control characters (C0, DEL, C1) and line/paragraph separators break one-line displays, CSV and logs.
NAME_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
NAME_LENGTH_MAX = 200
RESELLER_LEVELS = (1, 2, 3)
E = TypeVar("E", bound="StrEnum")


class NodeKind(StrEnum):
    PROVIDER = "provider"
    RESELLER = "reseller"
    AGENT = "agent"
    CLIENT = "client"


class ClientType(StrEnum):
    RETAIL = "retail"
    PBX = "pbx"
    WHOLESALE = "wholesale"
    CALLING_CARD = "calling_card"
    CALLSHOP = "callshop"
    USER = "user"  # a user of a pbx client (an organization): owned by it, never sold on its own


class Feature(StrEnum):
    """Things a reseller may sell; a reseller narrows what its sub-resellers may sell.

    All six exist and are enforced: without ``tariffs`` a reseller makes no tariffs of its own (so it sells
    no calls), without ``plans`` no plans, without ``agents`` no agents, without ``online_shop`` no
    payment gateways nor top-up offers (a shop for its customers), without ``branded_portal`` no brand
    of its own (name, logo, colours, host names on the portal), without ``calling_cards`` no card
    batches (tollway/cards).
    """

    TARIFFS = "tariffs"
    PLANS = "plans"
    CALLING_CARDS = "calling_cards"
    ONLINE_SHOP = "online_shop"
    AGENTS = "agents"
    BRANDED_PORTAL = "branded_portal"


class Status(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


# What resellers sell: every client type except an organization's users, which only organizations own.
ALL_CLIENT_TYPES = frozenset(ClientType) - {ClientType.USER}
ALL_FEATURES = frozenset(Feature)
FEATURES_AVAILABLE = frozenset(
    {
        Feature.TARIFFS,
        Feature.PLANS,
        Feature.AGENTS,
        Feature.ONLINE_SHOP,
        Feature.BRANDED_PORTAL,
        Feature.CALLING_CARDS,
    }
)
FEATURES_COMING = ALL_FEATURES - FEATURES_AVAILABLE  # granted and narrowed now, enforced once they exist


@dataclass(frozen=True, slots=True)
class Position:
    """Where a node stands in the tree: what it is, not who it is."""

    kind: NodeKind
    level: int | None = None  # reseller level 1..3
    client_type: ClientType | None = None

    def __str__(self) -> str:
        if self.kind is NodeKind.RESELLER:
            return f"reseller L{self.level}"
        if self.kind is NodeKind.CLIENT:
            return f"{self.client_type} client"
        return str(self.kind)


PROVIDER = Position(NodeKind.PROVIDER)
AGENT = Position(NodeKind.AGENT)


def reseller(level: int) -> Position:
    return Position(NodeKind.RESELLER, level=level)


def client(client_type: ClientType) -> Position:
    return Position(NodeKind.CLIENT, client_type=client_type)


def check_position(position: Position) -> None:
    """A position is well formed: a level only on resellers, a client type only on clients."""
    is_reseller = position.kind is NodeKind.RESELLER
    is_client = position.kind is NodeKind.CLIENT
    if is_reseller != (position.level is not None) or (is_reseller and position.level not in RESELLER_LEVELS):
        raise Refusal("level_invalid", "a reseller has a level of 1, 2 or 3; other nodes have none")
    if is_client != (position.client_type is not None):
        raise Refusal("client_type_invalid", "a client has a client type; other nodes have none")


def client_types_ownable(owner: Position) -> frozenset[ClientType]:
    """Client types a node may own directly, before any narrowing."""
    if owner.kind is NodeKind.PROVIDER or owner == reseller(1):
        return ALL_CLIENT_TYPES
    if owner == reseller(2):
        return frozenset({ClientType.PBX})
    if owner == client(ClientType.PBX):
        return frozenset({ClientType.USER})  # an organization owns the accounts of its users
    return frozenset()


def may_own(owner: Position, child: Position) -> bool:
    """The ownership rules of docs/design.md section 1, before narrowing and limits."""
    match child.kind:
        case NodeKind.PROVIDER:
            return False
        case NodeKind.RESELLER:
            if owner.kind is NodeKind.PROVIDER:
                return True
            return owner.kind is NodeKind.RESELLER and child.level is not None and owner.level == child.level + 1
        case NodeKind.AGENT:
            # An agent creates clients for its reseller, so that reseller must be able to own some.
            return owner.kind is NodeKind.RESELLER and bool(client_types_ownable(owner))
        case NodeKind.CLIENT:
            return child.client_type in client_types_ownable(owner)
    return False


def check_link(owner: Position, child: Position) -> None:
    check_position(child)
    if not may_own(owner, child):
        raise Refusal("ownership_refused", f"a {owner} may not own a {child}")


@dataclass(frozen=True, slots=True)
class Grants:
    """What a reseller (or the provider) lets the nodes below it sell."""

    client_types: frozenset[ClientType] = ALL_CLIENT_TYPES
    features: frozenset[Feature] = ALL_FEATURES


def check_narrowing(owner: Grants, child: Grants) -> None:
    """A reseller may narrow, never widen, what its sub-resellers may sell."""
    wider_types = child.client_types - owner.client_types
    if wider_types:
        names = ", ".join(sorted(wider_types))
        raise Refusal("client_types_wider_than_owner", f"the owner may not sell client types: {names}")
    wider_features = child.features - owner.features
    if wider_features:
        names = ", ".join(sorted(wider_features))
        raise Refusal("features_wider_than_owner", f"the owner may not sell features: {names}")


def check_feature_granted(owner: Grants, feature: Feature) -> None:
    """The owner may sell ``feature`` (its own grants, narrowed by everyone above it)."""
    if feature not in owner.features:
        raise Refusal("feature_not_granted", f"this owner may not sell {feature}")


def check_client_type_granted(owner: Grants, client_type: ClientType) -> None:
    if client_type not in owner.client_types:
        raise Refusal("client_type_not_allowed", f"this owner may not sell {client_type} clients")


def check_clients_limit(clients_limit: int | None, clients_count: int) -> None:
    """``clients_count`` is the open clients already in the owner's subtree."""
    if clients_limit is not None and clients_count >= clients_limit:
        raise Refusal("clients_limit_reached", f"the clients limit of {clients_limit} is reached")


def effective_status(chain: Sequence[Status]) -> Status:
    """Status of a node given the statuses from it up to the provider: the worst one wins.

    A suspended or closed node blocks its whole subtree.
    """
    if Status.CLOSED in chain:
        return Status.CLOSED
    if Status.SUSPENDED in chain:
        return Status.SUSPENDED
    return Status.ACTIVE


def check_status_change(
    current: Status, target: Status, *, open_children: int, balance_micros: int, reserved_micros: int = 0
) -> None:
    if current is Status.CLOSED:
        raise Refusal("node_closed", "a closed node stays closed")
    if current is target:
        raise Refusal("status_unchanged", f"the node is already {target}")
    if target is Status.CLOSED:
        if open_children:
            raise Refusal("node_has_open_children", f"{open_children} nodes below it are not closed")
        if balance_micros:
            raise Refusal("balance_not_zero", "settle the balance to zero before closing")
        if reserved_micros:
            raise Refusal("reservations_open", "money is still reserved (live calls): close after they end")


def check_login(login: str) -> str:
    if not LOGIN_PATTERN.match(login):
        raise Refusal(
            "login_invalid",
            "a login is 2-63 characters: lower-case letters, digits and . _ @ -, starting with a letter or digit",
        )
    return login


def check_name(name: str) -> str:
    forbidden = any(unicodedata.category(c) in NAME_FORBIDDEN_CATEGORIES for c in name)
    if not name.strip() or len(name) > NAME_LENGTH_MAX or forbidden:
        raise Refusal("name_invalid", f"a name is 1-{NAME_LENGTH_MAX} printable characters")
    return name


def check_language(language: str) -> str:
    if not LANGUAGE_PATTERN.match(language):
        raise Refusal("language_invalid", f"{language!r} is not a language code such as 'en' or 'pt_BR'")
    return language


@functools.cache
def _iana_time_zones() -> frozenset[str]:
    # Only real IANA names: not "localtime" (the host's), "Factory" or "posix/..." copies.
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "Factory"}


def check_time_zone(time_zone: str) -> str:
    if time_zone not in _iana_time_zones() or time_zone.startswith(("posix/", "right/")):
        raise Refusal("time_zone_invalid", f"{time_zone!r} is not an IANA time zone")
    return time_zone


PHONE_PATTERN = re.compile(r"^\+[1-9][0-9]{6,14}\Z")  # E.164: a country code, at most 15 digits
PHONE_SEPARATORS = " -.()/"


def check_phone(phone: str) -> str:
    """A contact number in international form; spaces, dashes, dots and brackets are dropped:
    '+1 (212) 555-0100' is stored as '+12125550100'."""
    number = "".join(c for c in phone if c not in PHONE_SEPARATORS)
    if not PHONE_PATTERN.match(number):
        raise Refusal("phone_invalid", f"{phone!r} is not a phone number in international form, such as +12125550100")
    return number


def check_credit_limit(credit_limit_micros: int) -> int:
    if not 0 <= credit_limit_micros <= AMOUNT_MICROS_MAX:
        raise Refusal("credit_limit_invalid", "a credit limit is zero (prepaid) or a positive amount")
    return credit_limit_micros


def check_limit(name: str, value: int | None) -> int | None:
    if value is not None and value < 0:
        raise Refusal(f"{name}_invalid", f"{name.replace('_', ' ')} cannot be negative")
    return value


def parse_enum_set(enum: type[E], values: Iterable[str], reason: str) -> frozenset[E]:
    try:
        return frozenset(enum(value) for value in values)
    except ValueError as error:
        raise Refusal(reason, str(error)) from None


@dataclass(frozen=True, slots=True)
class Node:
    """A node of the tree as the rules see it."""

    id: int
    parent_id: int | None
    path: str  # "/1/4/9/": ids from the provider down to this node
    position: Position
    login: str
    name: str
    currency: str
    status: Status
    language: str
    time_zone: str
    grants: Grants
    clients_limit: int | None
    concurrent_calls_limit: int | None
    managed_by_agent_id: int | None
    max_call_seconds: int | None = None  # the longest call an account may make; None: no own limit
    email: str | None = None  # contact address (the account's notices go there)
    phone: str | None = None  # contact number, E.164

    @property
    def ancestor_ids(self) -> list[int]:
        """Ids from the provider down to the parent."""
        return [int(part) for part in self.path.strip("/").split("/")][:-1]
