"""What every page shares: who is visiting (session, brand, language), rendering, forms and their CSRF check.

A page is a FastAPI route that takes a ``Visitor`` (through ``VisitorDep``, ``SignedInDep``,
``CustomerDep`` or ``StaffDep``), calls the same service functions the API calls with
``visitor.principal``, and returns ``render(visitor, "template.html", ...)``. Refusals raised by a
service become an error page with the status the API would give (``tollway/portal/app.py``).

CSRF: every form carries ``csrf_token`` in a hidden field (``{{ csrf_field() }}``); every POST is checked
against it before its handler runs (``check_csrf``, a dependency of every page router). A signed-in
visitor's token is its session's; before logging in it is a random value also kept in an HttpOnly cookie
(the double-submit pattern), so a login form cannot be posted from another site either.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup
from starlette.datastructures import FormData

from tollway.access import service as access
from tollway.access.model import Principal, Role
from tollway.access.second_factor import Seal
from tollway.branding import service as branding
from tollway.branding.model import Brand, host_of_header
from tollway.config import RadiusClient
from tollway.display import (
    Rounding,
    format_clock,
    format_day,
    format_duration,
    format_instant,
    format_money,
    format_month,
    format_price,
    format_rate,
    format_weekday,
    rounded,
)
from tollway.display import format_number as _format_number
from tollway.errors import NotFound, Refusal, refuse_nul
from tollway.payments.service import PaymentSettings
from tollway.portal import i18n
from tollway.portal.assets import static_url
from tollway.portal.navigation import navigation_for
from tollway.store.database import Database

SESSION_COOKIE = "tollway_session"  # the API's (tollway/http/auth.py): one session for the portal and the API
CSRF_COOKIE = "tollway_csrf"  # before logging in only
LANGUAGE_COOKIE = "tollway_language"  # a visitor's choice before logging in
CSRF_FIELD = "csrf_token"
CSRF_TOKEN_BYTES = 32
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CUSTOMER_ROLES = frozenset({Role.CLIENT, Role.ORGANIZATION_ADMIN, Role.ORGANIZATION_USER})
STAFF_ROLES = frozenset({Role.PROVIDER_ADMIN, Role.RESELLER_ADMIN, Role.AGENT})
ADMIN_ROLES = frozenset({Role.PROVIDER_ADMIN, Role.RESELLER_ADMIN})  # the tree's admins (agents are staff too)
PROVIDER_ROLES = frozenset({Role.PROVIDER_ADMIN})
AGENT_ROLES = frozenset({Role.AGENT})
CALL_READER_ROLES = CUSTOMER_ROLES | ADMIN_ROLES  # an agent sees totals, never calls


@dataclass(frozen=True, slots=True)
class PortalSettings:
    database: Database
    cookie_secure: bool
    sealer: Seal | None  # None: no secret key configured, so no second factor can be enrolled
    payments: PaymentSettings | None = None  # None: made from the configuration when the shop first needs them
    radius_clients: Mapping[str, RadiusClient] = field(default_factory=dict)  # by address, as configured


class LoginRequired(Exception):
    """The page needs a signed-in visitor: the application answers with a redirect to the login page."""


class CsrfRefused(Refusal):
    def __init__(self) -> None:
        super().__init__("csrf_failed", "the form was not sent from this portal, or it expired: reload and retry")


@dataclass(frozen=True, slots=True)
class Formats:
    """Money, numbers and instants for one visitor: its language's way, its time zone."""

    language: str
    time_zone: str

    def money(self, micros: int, currency: str) -> str:
        """A cost or a payment, at the currency's precision, rounded half-up."""
        return format_money(micros, currency, self.language)

    def held(self, micros: int, currency: str) -> str:
        """What an account has (a balance, available credit): rounded down, never more than it has."""
        return format_money(micros, currency, self.language, Rounding.DOWN)

    def amount(self, micros: int, currency: str) -> str:
        """The number alone, as a form field shows it for editing: '7,50' in Polish."""
        return _format_number(rounded(micros, currency), self.language)

    def price(self, micros: int, currency: str) -> str:
        """A price per minute, every digit of it ('$0.027688'): rate sheets are not rounded for show."""
        return format_price(micros, currency, self.language)

    def weekday(self, day: int) -> str:
        """'Mon' for 0, 'Sun' for 6, in the visitor's language."""
        return format_weekday(day, self.language)

    def number(self, value: int | Decimal) -> str:
        return _format_number(value, self.language)

    def rate(self, value: Decimal) -> str:
        """An exchange rate, every digit of it."""
        return format_rate(value, self.language)

    def instant(self, value: datetime) -> str:
        return format_instant(value, self.language, self.time_zone)

    def day(self, value: datetime) -> str:
        return format_day(value, self.language, self.time_zone)

    def month(self, value: date) -> str:
        """'December 2026', 'grudzień 2026'."""
        return format_month(value, self.language)

    def clock(self, value: datetime) -> str:
        return format_clock(value, self.language, self.time_zone)

    def duration(self, seconds: int) -> str:
        return format_duration(seconds)

    def minutes(self, seconds: int) -> str:
        return _format_number(seconds // 60, self.language)


@dataclass(slots=True)
class Visitor:
    """Who is asking, with what they see: the brand, the language, the CSRF token of their forms."""

    request: Request
    settings: PortalSettings
    holder: access.SessionHolder | None
    brand: Brand
    language: str
    time_zone: str
    csrf_token: str
    new_csrf_cookie: bool = False  # an anonymous visitor's first form: set its cookie with the answer

    @property
    def database(self) -> Database:
        return self.settings.database

    @property
    def signed_in(self) -> access.SessionHolder:
        if self.holder is None:
            raise LoginRequired
        return self.holder

    @property
    def principal(self) -> Principal:
        return self.signed_in.principal

    @property
    def login(self) -> str:
        """The login of the node the visitor acts for (a client's account, a reseller)."""
        return self.signed_in.node.login

    @property
    def role(self) -> Role | None:
        return None if self.holder is None else self.holder.principal.role

    @property
    def formats(self) -> Formats:
        return Formats(self.language, self.time_zone)

    def gettext(self, message: str, **values: Any) -> str:
        text = i18n.translations(self.language).gettext(message)
        return text % values if values else text


def _settings(request: Request) -> PortalSettings:
    settings: PortalSettings = request.app.state.portal
    return settings


def _holder(request: Request, database: Database) -> access.SessionHolder | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return access.session_holder(database, token)
    except Refusal:  # expired, closed, or its account blocked: as if signed out
        return None


def _language(request: Request, holder: access.SessionHolder | None, brand: Brand) -> str:
    if holder is not None:
        return i18n.spoken(holder.language) or i18n.spoken(holder.node.language) or i18n.SOURCE_LANGUAGE
    return (
        i18n.spoken(request.cookies.get(LANGUAGE_COOKIE))
        or i18n.negotiate(request.headers.get("accept-language", ""))
        or i18n.spoken(brand.language)
        or i18n.SOURCE_LANGUAGE
    )


def visitor_of(request: Request) -> Visitor:
    settings = _settings(request)
    holder = _holder(request, settings.database)
    if holder is not None:
        brand = branding.brand_seen_by(settings.database, holder.principal)
    else:
        brand = branding.brand_for_host(settings.database, host=host_of_header(request.headers.get("host", "")))
    csrf_token = holder.csrf_token if holder else request.cookies.get(CSRF_COOKIE, "")
    new_cookie = not csrf_token
    visitor = Visitor(
        request=request,
        settings=settings,
        holder=holder,
        brand=brand,
        language=_language(request, holder, brand),
        time_zone=holder.node.time_zone if holder else "UTC",
        csrf_token=csrf_token or secrets.token_urlsafe(CSRF_TOKEN_BYTES),
        new_csrf_cookie=new_cookie,
    )
    request.state.visitor = visitor  # the error pages render with it too
    return visitor


VisitorDep = Annotated[Visitor, Depends(visitor_of)]


def signed_in(visitor: VisitorDep) -> Visitor:
    visitor.signed_in  # noqa: B018 - raises LoginRequired
    return visitor


SignedInDep = Annotated[Visitor, Depends(signed_in)]


def customer(visitor: SignedInDep) -> Visitor:
    """Customer pages: a client or an organization user; for anyone else they do not exist."""
    if visitor.role not in CUSTOMER_ROLES:
        raise NotFound("page", visitor.request.url.path)
    return visitor


CustomerDep = Annotated[Visitor, Depends(customer)]


def staff(visitor: SignedInDep) -> Visitor:
    """Pages of the provider's and resellers' admins and of agents."""
    if visitor.role not in STAFF_ROLES:
        raise NotFound("page", visitor.request.url.path)
    return visitor


StaffDep = Annotated[Visitor, Depends(staff)]


def _of_roles(visitor: Visitor, roles: frozenset[Role]) -> Visitor:
    if visitor.role not in roles:
        raise NotFound("page", visitor.request.url.path)
    return visitor


def admin(visitor: SignedInDep) -> Visitor:
    """Pages of the provider's and resellers' admins (not agents)."""
    return _of_roles(visitor, ADMIN_ROLES)


AdminDep = Annotated[Visitor, Depends(admin)]


def provider(visitor: SignedInDep) -> Visitor:
    """Pages of the provider's admins only (switches, exchange rates, the audit log): 404 for anyone else."""
    return _of_roles(visitor, PROVIDER_ROLES)


ProviderDep = Annotated[Visitor, Depends(provider)]


def agent(visitor: SignedInDep) -> Visitor:
    """An agent's own pages (its commission, its statement): 404 for anyone else."""
    return _of_roles(visitor, AGENT_ROLES)


AgentDep = Annotated[Visitor, Depends(agent)]


def call_reader(visitor: SignedInDep) -> Visitor:
    """The calls pages: a customer's own calls, an admin's subtree's."""
    return _of_roles(visitor, CALL_READER_ROLES)


CallReaderDep = Annotated[Visitor, Depends(call_reader)]


async def refuse_nul_text(request: Request) -> None:
    """No path, query or form text with a NUL character reaches a use case (PostgreSQL cannot store one)."""
    refuse_nul("path", request.url.path)
    for name, value in request.query_params.multi_items():
        refuse_nul(f"query {name}", value)
    if request.method not in SAFE_METHODS:
        for name, sent in (await request.form()).multi_items():
            if isinstance(sent, str):
                refuse_nul(f"field {name}", sent)


async def check_csrf(request: Request, visitor: VisitorDep) -> None:
    """Every POST (and any other change) carries the visitor's CSRF token in its form: or it is refused."""
    if request.method in SAFE_METHODS:
        return
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = visitor.csrf_token if not visitor.new_csrf_cookie else ""
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfRefused


def text_field(form: FormData, name: str, *, length_max: int = 200) -> str:
    """A text field of a form, trimmed; a missing field is empty. Longer than ``length_max``: refused."""
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if len(text) > length_max or "\x00" in text:
        raise Refusal("field_invalid", f"{name} is too long or holds a NUL character")
    return text


def safe_next(path: str | None) -> str:
    """Where to go after logging in: a path of this portal only, never another site."""
    if not path:
        return "/"
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def redirect(path: str) -> RedirectResponse:
    """After a POST: see the result with a GET (303), so a reload does not post again."""
    return RedirectResponse(path, status_code=303)


def csrf_field(token: str) -> Markup:
    """The hidden field every form carries (the token escaped like any value)."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)


def render(
    visitor: Visitor, template: str, *, status_code: int = 200, values: Mapping[str, Any] | None = None
) -> HTMLResponse:
    environment = i18n.environment(visitor.language)
    context = {
        "visitor": visitor,
        "brand": visitor.brand,
        "language": visitor.language,
        "languages": i18n.LANGUAGES,
        "fmt": visitor.formats,
        "csrf_token": visitor.csrf_token,
        "csrf_field": lambda: Markup('<input type="hidden" name="{}" value="{}">').format(
            CSRF_FIELD, visitor.csrf_token
        ),
        "navigation": navigation_for(visitor.role, visitor.request.app.state.navigation),
        "current_path": visitor.request.url.path,
        "static": static_url,
        **(values or {}),
    }
    html = environment.get_template(template).render(context)
    response = HTMLResponse(html, status_code=status_code)
    response.headers["cache-control"] = "no-store"  # personal pages stay out of shared caches
    if visitor.new_csrf_cookie:
        response.set_cookie(
            CSRF_COOKIE,
            visitor.csrf_token,
            httponly=True,
            secure=visitor.settings.cookie_secure,
            samesite="strict",
            path="/",
        )
    return response
