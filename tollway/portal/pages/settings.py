"""A login's own settings: its language, its account's low-balance warning, two-step verification."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import segno
from babel.numbers import NumberFormatError, parse_decimal
from fastapi import APIRouter, Form, Query, Response
from markupsafe import Markup

from tollway.access import second_factor
from tollway.access import service as access
from tollway.access.model import Action
from tollway.display import locale_for
from tollway.errors import Refusal
from tollway.http.client import client_address
from tollway.http.errors import status_for
from tollway.money import to_micros
from tollway.notifications import service as notices
from tollway.notifications.service import NoticeChanges
from tollway.portal import i18n
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.web import (
    CUSTOMER_ROLES,
    SESSION_COOKIE,
    STAFF_ROLES,
    SignedInDep,
    StaffDep,
    Visitor,
    redirect,
    render,
)

router = APIRouter()
NAVIGATION = (NavItem("/settings", N_("Settings"), CUSTOMER_ROLES | STAFF_ROLES, order=90),)
SAVED = {
    "language": N_("Your language is saved."),
    "notices": N_("Your low-balance warning is saved."),
    "second_factor_on": N_("Two-step verification is on."),
    "second_factor_off": N_("Two-step verification is off."),
    "password": N_("Your password is changed. Your other sessions are closed."),
}
QR_SCALE = 4


def parse_number(text: str, language: str, *, reason: str = "amount_invalid") -> Decimal:
    """A number typed in the visitor's way ('7,50' in Polish, '7.50' in English); else refused with ``reason``."""
    try:
        return parse_decimal(text, locale=locale_for(language), strict=True)
    except NumberFormatError:
        try:
            return Decimal(text)
        except InvalidOperation:
            raise Refusal(reason, f"{text!r} is not a number") from None


def parse_amount(text: str, language: str) -> int:
    """An amount typed in the visitor's way ('7,50' in Polish, '7.50' in English) in micro-units."""
    return to_micros(parse_number(text, language))


def _page(visitor: Visitor, *, status_code: int = 200, error: Refusal | None = None, **values: Any) -> Response:
    principal = visitor.principal
    warning = None
    if visitor.role in CUSTOMER_ROLES:
        warning = notices.get_notices(visitor.database, principal, login=visitor.login)
    factor = None
    if visitor.role in second_factor.ROLES_WITH_SECOND_FACTOR:
        factor = second_factor.status(visitor.database, principal)
    saved = visitor.request.query_params.get("saved", "")
    return render(
        visitor,
        "settings.html",
        status_code=status_for(error) if error else status_code,
        values={
            "warning": warning,
            "may_set_warning": Action.USER_MANAGE in principal.actions,
            "factor": factor,
            "sealer_ready": visitor.settings.sealer is not None,
            "saved": SAVED.get(saved),
            "error": refusal_text(visitor, error) if error else None,
            "enrolment": None,
            "qr_code": None,
            **values,
        },
    )


@router.get("/settings")
def settings_page(visitor: SignedInDep, saved: Annotated[str, Query(max_length=40)] = "") -> Response:
    return _page(visitor)


@router.post("/settings/language")
def set_language(visitor: SignedInDep, language: Annotated[str, Form(max_length=8)] = "") -> Response:
    if language not in i18n.LANGUAGES:
        return _page(visitor, error=Refusal("language_invalid", language))
    access.set_login_language(visitor.database, visitor.principal, language=language)
    return redirect("/settings?saved=language")


@router.post("/settings/notices")
def set_notices(
    visitor: SignedInDep,
    email: Annotated[str, Form(max_length=254)] = "",
    threshold: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    try:
        changes = NoticeChanges(
            email=email.strip() or None,
            threshold_micros=parse_amount(threshold.strip(), visitor.language) if threshold.strip() else None,
        )
        notices.set_notices(visitor.database, login=visitor.login, changes=changes, principal=visitor.principal)
    except Refusal as refusal:
        return _page(visitor, error=refusal, typed_email=email, typed_threshold=threshold)
    return redirect("/settings?saved=notices")


def _sealer(visitor: Visitor) -> second_factor.Seal:
    if visitor.settings.sealer is None:
        raise Refusal("second_factor_unavailable", "no secret key is configured")
    return visitor.settings.sealer


@router.post("/settings/second-factor/start")
def start_second_factor(visitor: StaffDep) -> Response:
    """A new secret, shown once as text and as a QR code for the authenticator app."""
    enrolment = second_factor.enrol(
        visitor.database, visitor.principal, sealer=_sealer(visitor), issuer=visitor.brand.name
    )
    qr_code = Markup(segno.make(enrolment.uri, error="m").svg_inline(scale=QR_SCALE, omitsize=False))  # noqa: S704
    return _page(visitor, enrolment=enrolment, qr_code=qr_code)


@router.post("/settings/second-factor/confirm")
def confirm_second_factor(visitor: StaffDep, code: Annotated[str, Form(max_length=20)] = "") -> Response:
    try:
        second_factor.confirm(visitor.database, visitor.principal, sealer=_sealer(visitor), code=code)
    except Refusal as refusal:
        return _page(visitor, error=refusal)
    return redirect("/settings?saved=second_factor_on")


@router.post("/settings/second-factor/off")
def turn_off_second_factor(visitor: StaffDep, code: Annotated[str, Form(max_length=20)] = "") -> Response:
    try:
        second_factor.turn_off(visitor.database, visitor.principal, sealer=_sealer(visitor), code=code)
    except Refusal as refusal:
        return _page(visitor, error=refusal)
    return redirect("/settings?saved=second_factor_off")


@router.post("/settings/password")
def change_password(
    visitor: SignedInDep,
    current_password: Annotated[str, Form(max_length=256)] = "",
    new_password: Annotated[str, Form(max_length=256)] = "",
    new_password_again: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """The login's own password; every other session of it is closed, this one kept."""
    try:
        if new_password != new_password_again:
            raise Refusal("password_mismatch", "the two new passwords differ")
        access.change_password(
            visitor.database,
            visitor.principal,
            login=visitor.signed_in.login,
            current_password=current_password,
            new_password=new_password,
            keep_session_token=visitor.request.cookies.get(SESSION_COOKIE),
            address=client_address(visitor.request),
        )
    except Refusal as refusal:
        return _page(visitor, error=refusal)
    return redirect("/settings?saved=password")
