"""What the staff pages (provider, resellers, agents) share: the words for the tree's positions and statuses,
idempotency keys for forms that move money, and form values typed in the visitor's language.

Words are marked with ``N_()`` here and translated where they are shown (``_()`` in a template).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

from tollway.errors import Refusal
from tollway.portal.i18n import N_
from tollway.portal.web import ADMIN_ROLES as ADMIN_ROLES  # defined with the other roles' sets
from tollway.portal.web import PROVIDER_ROLES as PROVIDER_ROLES
from tollway.tree.model import ClientType, NodeKind, Position, Status

IDEMPOTENCY_KEY_BYTES = 12  # 96 random bits: a form's key is never drawn twice
IDEMPOTENCY_KEY_PREFIX = "portal-"

STATUSES = {
    Status.ACTIVE: N_("Active"),
    Status.SUSPENDED: N_("Suspended"),
    Status.CLOSED: N_("Closed"),
}
KINDS = {
    NodeKind.PROVIDER: N_("Provider"),
    NodeKind.RESELLER: N_("Resellers"),
    NodeKind.AGENT: N_("Agents"),
    NodeKind.CLIENT: N_("Clients"),
}
CLIENT_TYPES = {
    ClientType.RETAIL: N_("Retail client"),
    ClientType.PBX: N_("Organization (PBX)"),
    ClientType.WHOLESALE: N_("Wholesale client"),
    ClientType.CALLING_CARD: N_("Calling cards"),
    ClientType.CALLSHOP: N_("Callshop"),
    ClientType.USER: N_("Organization user"),
}
RESELLER_OF_LEVEL = N_("Reseller, level %(level)s")


def position_words(position: Position) -> tuple[str, dict[str, int]]:
    """The words for a position (to translate) and their values: ('Reseller, level %(level)s', {'level': 2})."""
    if position.kind is NodeKind.RESELLER:
        return RESELLER_OF_LEVEL, {"level": position.level or 0}
    if position.kind is NodeKind.CLIENT and position.client_type is not None:
        return CLIENT_TYPES[position.client_type], {}
    if position.kind is NodeKind.AGENT:
        return N_("Agent"), {}
    return KINDS[position.kind], {}


def position_key(position: Position) -> str:
    """A position as a form's value: 'reseller:2', 'agent', 'client:retail'."""
    if position.kind is NodeKind.RESELLER:
        return f"reseller:{position.level}"
    if position.kind is NodeKind.CLIENT:
        return f"client:{position.client_type}"
    return str(position.kind)


def position_of_key(key: str) -> Position:
    kind, _, detail = key.partition(":")
    try:
        if kind == NodeKind.RESELLER:
            return Position(NodeKind.RESELLER, level=int(detail))
        if kind == NodeKind.CLIENT:
            return Position(NodeKind.CLIENT, client_type=ClientType(detail))
        if kind == NodeKind.AGENT and not detail:
            return Position(NodeKind.AGENT)
    except ValueError:
        pass
    raise Refusal("position_invalid", f"{key!r} is not a kind of account")


def idempotency_key() -> str:
    """A new key for a form that moves money: sent twice (a double click, a retry), it moves it once."""
    return IDEMPOTENCY_KEY_PREFIX + secrets.token_urlsafe(IDEMPOTENCY_KEY_BYTES)


def day_of(text: str, default: date) -> date:
    """A day typed in a date field (YYYY-MM-DD); empty: ``default``."""
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise Refusal("day_invalid", f"{text!r} is not a day (YYYY-MM-DD)") from None


def query(**values: object) -> str:
    """A query string of the values that are set, escaped: for links that keep a list's filters."""
    return urlencode({name: value for name, value in values.items() if value not in (None, "", 0)})


@dataclass(frozen=True, slots=True)
class Paging:
    """Where a page of a filtered list stands, and the links to its first and next pages (every filter kept)."""

    first_page: bool
    filtered: bool
    first_page_query: str  # the filters alone: the first page
    next_page: str | None  # the filters and where the next page starts; None: this is the last


def paging(filters: Mapping[str, str], *, first_page: bool, next_start: tuple[str, int] | None) -> Paging:
    """``next_start``: the name and value of the parameter the next page starts from ('after_id', 1234)."""
    return Paging(
        first_page=first_page,
        filtered=any(filters.values()),
        first_page_query=query(**filters),
        next_page=query(**filters, **dict([next_start])) if next_start else None,
    )
