"""The portal's pages, one module per noun. To add a page: see docs/portal.md, "How to add a page".

Each module has a ``router`` (FastAPI routes returning ``render(...)``) and may have ``NAVIGATION`` (its
menu entries, per role). List the module in ``PAGES``: its routes are served, with the CSRF check on every
POST, and its menu entries shown to the roles they name.
"""

from __future__ import annotations

from types import ModuleType

from fastapi import APIRouter

from tollway.portal.navigation import NavItem
from tollway.portal.pages import (
    accounts,
    agent,
    audit,
    auth,
    batches,
    brand,
    calls,
    cards,
    exchange_rates,
    home,
    lines,
    live_calls,
    logins,
    money,
    organizations,
    plans,
    reports,
    sales,
    settings,
    shop,
    switches,
    tariffs,
)

PAGES: tuple[ModuleType, ...] = (auth, home, live_calls, calls, money, settings, shop)
PAGES += (accounts, batches, logins, sales)  # the staff pages: accounts, batches of them, their logins; a shop
PAGES += (agent,)  # an agent's commission and statement
PAGES += (organizations, lines)  # organizations, their users and extensions; caller ids and FollowMe
PAGES += (tariffs, plans)  # a seller's tariffs, rate sheets and plans
PAGES += (reports,)  # a seller's reports on calls (and the Margin page's old address)
PAGES += (cards,)  # calling cards: a seller's batches and cards, a holder's card with its PIN
PAGES += (brand,)  # a seller's brand
PAGES += (switches, exchange_rates, audit)  # the provider's: switches and RADIUS clients, rates, audit log

ROUTERS: tuple[APIRouter, ...] = tuple(page.router for page in PAGES)
NAVIGATION: tuple[NavItem, ...] = tuple(item for page in PAGES for item in getattr(page, "NAVIGATION", ()))
