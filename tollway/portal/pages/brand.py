"""A brand as its reseller (or the provider) edits it: what its customers see on every page.

- **Its own brand** (``/brand``, the provider's and resellers' admins) and **a reseller's below it**
  (``/accounts/<login>/brand``, its owners): the name, the colours (each kept readable: a contrast of 4.5:1
  with the text on it, or refused with the contrast it has), the support contact, the customers' default
  language, and the logo (PNG, JPEG, WebP or drawing-only SVG, at most 256 KiB; shown through ``<img>`` and
  served in a sandbox: tollway/branding/model.py).
- **Its host names and its email sender** claim a domain: its owners set them (``node:update``), so they are
  forms on a reseller's page seen from above, and facts on its own.

Everything goes through ``tollway.branding.service`` and ``notifications.set_notices`` with the visitor's
principal (audited there: ``node.brand``, ``node.brand_hosts``, ``node.notices``). A customer sees a change on
its next page: the brand is read with every request.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from tollway.branding import model as brand_model
from tollway.branding import service as branding
from tollway.branding.model import HostTaken
from tollway.branding.service import BrandChanges
from tollway.errors import NotFound, Refusal
from tollway.http.errors import status_for
from tollway.notifications import service as notices
from tollway.notifications.service import NoticeChanges
from tollway.portal import i18n
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.web import ADMIN_ROLES, AdminDep, Visitor, redirect, render
from tollway.tree import service as tree
from tollway.tree.model import Node, NodeKind

router = APIRouter()
NAVIGATION = (NavItem("/brand", N_("Brand"), ADMIN_ROLES, order=85),)
BRANDED_KINDS = (NodeKind.PROVIDER, NodeKind.RESELLER)
LOGO_TYPES = "image/png,image/jpeg,image/webp,image/svg+xml"
HOSTS_TYPED_MAX = 2_000  # 20 host names of up to 63 characters, and their separators
SAVED = {
    "brand": N_("The brand is saved. Customers see it on their next page."),
    "logo": N_("The logo is saved."),
    "logo_removed": N_("The logo is removed."),
    "hosts": N_("The host names are saved."),
    "sender": N_("The email sender is saved."),
}
CONTRAST_TOO_LOW = N_(
    "The %(which)s colour %(colour)s has a contrast of %(contrast)s:1 with the text on it; it needs at least "
    "%(minimum)s:1. Choose a darker primary colour or a lighter accent colour."
)
HOSTS_TAKEN = N_("Another brand already has %(hosts)s: a host name belongs to one brand only. Choose another.")
COLOUR_NAMES = {"primary": N_("primary"), "accent": N_("accent")}
Text = Annotated[str, Form(max_length=300)]
CONTRAST_SHOWN = Decimal("0.01")  # 4.496:1 is shown 4.49:1, never rounded up to the rule it misses


def _branded_node(visitor: Visitor, login: str) -> Node:
    """The node whose brand this is: a reseller or the provider the visitor sees; else no such page."""
    node = tree.get_node(visitor.database, visitor.principal, login=login)
    if node.position.kind not in BRANDED_KINDS:
        raise NotFound("page", visitor.request.url.path)
    return node


def _contrast_error(visitor: Visitor, typed: dict[str, str]) -> str | None:
    """Which typed colour leaves its text unreadable, with the contrast it has and the one it needs."""
    for which, against in (("primary", brand_model.WHITE), ("accent", brand_model.TEXT)):
        colour = typed.get(f"colour_{which}", "").strip().lower()
        if brand_model.COLOUR.fullmatch(colour) and brand_model.contrast(colour, against) < brand_model.CONTRAST_MIN:
            ratio = Decimal(str(brand_model.contrast(colour, against))).quantize(CONTRAST_SHOWN, rounding=ROUND_DOWN)
            return visitor.gettext(
                CONTRAST_TOO_LOW,
                which=visitor.gettext(COLOUR_NAMES[which]),
                colour=colour,
                contrast=visitor.formats.number(ratio),
                minimum=visitor.formats.number(Decimal(str(brand_model.CONTRAST_MIN))),
            )
    return None


def _error_text(visitor: Visitor, refusal: Refusal, typed: dict[str, str]) -> str:
    """What a refusal says; for a colour refused for its contrast, the contrast it has (never rounded up)."""
    if refusal.reason == "colour_contrast_too_low":
        return _contrast_error(visitor, typed) or refusal_text(visitor, refusal)
    if isinstance(refusal, HostTaken) and refusal.hosts:
        return visitor.gettext(HOSTS_TAKEN, hosts=", ".join(refusal.hosts))
    return refusal_text(visitor, refusal)


def _typed_details(settings: branding.BrandSettings) -> dict[str, str]:
    row = settings.row
    return {
        "name": settings.brand_name or "",
        "colour_primary": row.colour_primary or "",
        "colour_accent": row.colour_accent or "",
        "support_email": row.support_email or "",
        "support_phone": row.support_phone or "",
        "support_url": row.support_url or "",
        "customer_language": row.customer_language or "",
    }


def _page(
    visitor: Visitor, login: str, *, error: Refusal | None = None, typed: dict[str, str] | None = None
) -> Response:
    node = _branded_node(visitor, login)
    settings = branding.get_brand(visitor.database, visitor.principal, login=login)
    own = node.id == visitor.principal.place.node_id
    sender = notices.get_notices(visitor.database, visitor.principal, login=login).email_from
    saved = visitor.request.query_params.get("saved", "")
    return render(
        visitor,
        "brand.html",
        status_code=status_for(error) if error else 200,
        values={
            "node": node,
            "settings": settings,
            "own": own,
            "action": f"/accounts/{login}/brand",
            "typed": {**_typed_details(settings), "hosts": "\n".join(settings.hosts), "sender": sender or ""}
            | (typed or {}),
            "sender": sender,
            "saved": SAVED.get(saved),
            "error": _error_text(visitor, error, typed or {}) if error else None,
            "logo_types": LOGO_TYPES,
            "logo_kib_max": brand_model.LOGO_BYTES_MAX // 1024,
            "default_primary": brand_model.DEFAULT_PRIMARY,
            "default_accent": brand_model.DEFAULT_ACCENT,
        },
    )


def _done(visitor: Visitor, login: str, saved: str) -> Response:
    own = login == visitor.login
    return redirect(f"/brand?saved={saved}" if own else f"/accounts/{login}/brand?saved={saved}")


@router.get("/brand")
def own_brand(visitor: AdminDep, saved: Annotated[str, Query(max_length=40)] = "") -> Response:
    return _page(visitor, visitor.login)


@router.get("/accounts/{login}/brand")
def brand_page(visitor: AdminDep, login: str, saved: Annotated[str, Query(max_length=40)] = "") -> Response:
    return _page(visitor, login)


def _set_or_clear(text: str) -> str | None:
    return text.strip() or None


@router.post("/accounts/{login}/brand")
def save_brand(
    visitor: AdminDep,
    login: str,
    name: Text = "",
    colour_primary: Text = "",
    colour_accent: Text = "",
    support_email: Text = "",
    support_phone: Text = "",
    support_url: Text = "",
    customer_language: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """The brand's details as typed: an empty field clears the setting (the default applies again)."""
    typed = {
        "name": name,
        "colour_primary": colour_primary,
        "colour_accent": colour_accent,
        "support_email": support_email,
        "support_phone": support_phone,
        "support_url": support_url,
        "customer_language": customer_language,
    }
    _branded_node(visitor, login)
    try:
        if customer_language and customer_language not in i18n.LANGUAGES:
            raise Refusal("language_invalid", customer_language)
        changes = BrandChanges(
            name=_set_or_clear(name),
            colour_primary=_set_or_clear(colour_primary),
            colour_accent=_set_or_clear(colour_accent),
            support_email=_set_or_clear(support_email),
            support_phone=_set_or_clear(support_phone),
            support_url=_set_or_clear(support_url),
            customer_language=_set_or_clear(customer_language),
        )
        branding.set_brand(visitor.database, visitor.principal, login=login, changes=changes)
    except Refusal as refusal:
        return _page(visitor, login, error=refusal, typed=typed)
    return _done(visitor, login, "brand")


@router.post("/accounts/{login}/brand/logo")
def upload_logo(visitor: AdminDep, login: str, logo: Annotated[UploadFile | None, File()] = None) -> Response:
    """A new logo, checked by its bytes (its declared type and name are not believed)."""
    _branded_node(visitor, login)
    content = b"" if logo is None else logo.file.read(brand_model.LOGO_BYTES_MAX + 1)
    try:
        branding.set_brand(visitor.database, visitor.principal, login=login, changes=BrandChanges(logo=content))
    except Refusal as refusal:
        return _page(visitor, login, error=refusal)
    return _done(visitor, login, "logo")


@router.post("/accounts/{login}/brand/logo/remove")
def remove_logo(visitor: AdminDep, login: str) -> Response:
    _branded_node(visitor, login)
    try:
        branding.set_brand(visitor.database, visitor.principal, login=login, changes=BrandChanges(logo=None))
    except Refusal as refusal:
        return _page(visitor, login, error=refusal)
    return _done(visitor, login, "logo_removed")


@router.post("/accounts/{login}/brand/hosts")
def save_hosts(visitor: AdminDep, login: str, hosts: Annotated[str, Form(max_length=HOSTS_TYPED_MAX)] = "") -> Response:
    """The host names, one a line (or separated by commas or spaces); a host another brand has is refused."""
    _branded_node(visitor, login)
    names = [name for name in re.split(r"[\s,]+", hosts) if name]
    try:
        branding.set_hosts(visitor.database, visitor.principal, login=login, hosts=names)
    except Refusal as refusal:
        return _page(visitor, login, error=refusal, typed={"hosts": hosts})
    return _done(visitor, login, "hosts")


@router.post("/accounts/{login}/brand/sender")
def save_sender(visitor: AdminDep, login: str, sender: Annotated[str, Form(max_length=254)] = "") -> Response:
    """The address its customers' emails come from (empty: the nearest sender above it)."""
    _branded_node(visitor, login)
    try:
        changes = NoticeChanges(email_from=_set_or_clear(sender))
        notices.set_notices(visitor.database, login=login, changes=changes, principal=visitor.principal)
    except Refusal as refusal:
        return _page(visitor, login, error=refusal, typed={"sender": sender})
    return _done(visitor, login, "sender")
