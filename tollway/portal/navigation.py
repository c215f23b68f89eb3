"""The menu: each page module lists its entries (``NAVIGATION``); each visitor sees those of its role."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tollway.access.model import Role


@dataclass(frozen=True, slots=True)
class NavItem:
    path: str
    label: str  # in English, marked with N_(): translated when the menu is shown
    roles: frozenset[Role]
    order: int = 100  # smaller first


def navigation_for(role: Role | None, items: Iterable[NavItem]) -> list[NavItem]:
    if role is None:
        return []
    return sorted((item for item in items if role in item.roles), key=lambda item: (item.order, item.path))
