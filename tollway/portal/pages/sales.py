"""A seller's side of the shop (the provider's and resellers' admins, for the node they act for): the bank
transfers its payers declared, to confirm (credited once) or reject (with a reason), every decision audited
by the service; its payments and their CSV for accounting; its monthly invoices; and its shop's settings:
its Stripe account (the secret key and the webhook's signing secret, sealed at rest and never shown again,
only their last four characters), its bank details, its top-ups per currency and its billing profile (legal
name, tax rate, tax id). Every change goes through the service the API calls, with the visitor's principal.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Response

from tollway.clock import utc_now
from tollway.errors import NotFound, Refusal
from tollway.http.errors import status_for
from tollway.payments import records, refunds
from tollway.payments import service as shop
from tollway.payments.gateways.bank_transfer import DETAIL_FIELDS
from tollway.payments.model import BillingProfile, GatewayKind, PaymentState, TopupOffer, tax_rate_ppm_of
from tollway.portal import staff
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.pages.settings import parse_amount
from tollway.portal.pages.shop import (
    BANK_FIELDS,
    GATEWAY_WORDS,
    PAYMENT_ID_MAX,
    STATE_WORDS,
    payment_page,
    payment_settings,
)
from tollway.portal.web import StaffDep, Visitor, redirect, render

router = APIRouter()
NAVIGATION = (
    NavItem("/sales", N_("Sales"), staff.ADMIN_ROLES, order=60),
    NavItem("/shop/setup", N_("Shop setup"), staff.ADMIN_ROLES, order=61),
)
RECENT_PAYMENTS = 50
INVOICES_SHOWN = 50
PENDING_SHOWN = 100
TAX_PPM_PER_PERCENT = 10_000
SAVED = {
    "confirmed": N_("The transfer is confirmed: the payer's balance is credited."),
    "rejected": N_("The transfer is rejected."),
    "invoices": N_("The month's invoices are issued."),
    "stripe": N_("Stripe is set."),
    "bank": N_("The bank details are saved."),
    "topups": N_("The top-ups are saved."),
    "billing": N_("The billing profile is saved."),
}
Text = Annotated[str, Form(max_length=400)]
Secret = Annotated[str, Form(max_length=255)]


def _admin(visitor: Visitor) -> Visitor:
    if visitor.role not in staff.ADMIN_ROLES:  # an agent sells nothing: for it these pages do not exist
        raise NotFound("page", visitor.request.url.path)
    return visitor


def _saved(visitor: Visitor) -> str | None:
    return SAVED.get(visitor.request.query_params.get("saved", ""))


def _sales_page(visitor: Visitor, *, status_code: int = 200, error: Refusal | None = None) -> Response:
    database, principal, seller = visitor.database, visitor.principal, visitor.login
    pending = [
        record
        for record in shop.sales_of(
            database, seller_login=seller, state=PaymentState.PENDING, limit=PENDING_SHOWN, principal=principal
        )
        if record.payment.gateway_kind is GatewayKind.BANK_TRANSFER
    ]
    return render(
        visitor,
        "sales.html",
        status_code=status_code,
        values={
            "pending": pending,
            "payments": shop.sales_of(database, seller_login=seller, limit=RECENT_PAYMENTS, principal=principal),
            "invoices": records.invoices_of_seller(
                database, seller_login=seller, limit=INVOICES_SHOWN, principal=principal
            ),
            "state_words": STATE_WORDS,
            "gateway_words": GATEWAY_WORDS,
            "last_month": (utc_now().date().replace(day=1) - timedelta(days=1)).strftime("%Y-%m"),
            "saved": _saved(visitor),
            "error": refusal_text(visitor, error) if error else None,
        },
    )


@router.get("/sales")
def sales(visitor: StaffDep) -> Response:
    return _sales_page(_admin(visitor))


@router.post("/sales/payments/{payment_id}/refund")  # before the route below, whose {decision} would match it
def refund(
    visitor: StaffDep,
    payment_id: Annotated[int, Path(ge=1, le=PAYMENT_ID_MAX)],
    key: Annotated[str, Form(max_length=100)] = "",
    amount: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Give back unspent money of a confirmed payment, through the gateway it came by (Stripe's SDK)."""
    _admin(visitor)
    try:
        refunds.refund_payment(
            visitor.database,
            payment_settings(visitor),
            payment_id=payment_id,
            amount_micros=parse_amount(amount, visitor.language),
            reason=reason,
            request_id=key,
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return payment_page(visitor, payment_id, status_code=status_for(refusal), error=refusal)
    return redirect(f"/shop/payments/{payment_id}?saved=refunded")


@router.post("/sales/payments/{payment_id}/{decision}")
def decide(
    visitor: StaffDep,
    payment_id: Annotated[int, Path(ge=1, le=PAYMENT_ID_MAX)],
    decision: Annotated[str, Path(pattern="^(confirm|reject)$")],
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Confirm (the money arrived) or reject (with the reason) a bank transfer a payer declared."""
    _admin(visitor)
    try:
        shop.decide_bank_transfer(
            visitor.database,
            payment_id=payment_id,
            accept=decision == "confirm",
            note_text=note,
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return _sales_page(visitor, status_code=status_for(refusal), error=refusal)
    return redirect("/sales?saved=" + ("confirmed" if decision == "confirm" else "rejected"))


def _month(text: str) -> date:
    try:
        return date.fromisoformat(f"{text}-01")
    except ValueError:
        raise Refusal("month_invalid", "a month is YYYY-MM") from None


@router.post("/sales/invoices")
def issue_invoices(visitor: StaffDep, month: Annotated[str, Form(max_length=7)] = "") -> Response:
    _admin(visitor)
    try:
        records.issue_invoices(
            visitor.database, month=_month(month), seller_login=visitor.login, principal=visitor.principal
        )
    except Refusal as refusal:
        return _sales_page(visitor, status_code=status_for(refusal), error=refusal)
    return redirect("/sales?saved=invoices")


# --- the shop's settings ---------------------------------------------------------------------------------


def _setup_page(
    visitor: Visitor, *, status_code: int = 200, error: Refusal | None = None, typed: dict[str, str] | None = None
) -> Response:
    database, principal, seller = visitor.database, visitor.principal, visitor.login
    gateways = {view.kind: view for view in shop.list_gateways(database, seller_login=seller, principal=principal)}
    profile = records.get_billing_profile(database, seller_login=seller, principal=principal)
    return render(
        visitor,
        "shop_setup.html",
        status_code=status_code,
        values={
            "stripe": gateways.get(GatewayKind.STRIPE),
            "bank": gateways.get(GatewayKind.BANK_TRANSFER),
            "bank_fields": {name: BANK_FIELDS[name] for name in DETAIL_FIELDS},
            "offers": shop.topup_offers(database, seller_login=seller, principal=principal),
            "profile": profile,
            "tax_rate_percent": (Decimal(profile.tax_rate_ppm) / TAX_PPM_PER_PERCENT).normalize(),
            "public_url": payment_settings(visitor).public_url,
            "currency": visitor.signed_in.node.currency,
            "typed": typed or {},
            "saved": _saved(visitor),
            "error": refusal_text(visitor, error) if error else None,
        },
    )


@router.get("/shop/setup")
def setup(visitor: StaffDep) -> Response:
    return _setup_page(_admin(visitor))


def _saving(visitor: Visitor, what: str, change: Any, typed: dict[str, str] | None = None) -> Response:
    """Run the change; its refusal shows the settings again with what was typed (never a secret)."""
    _admin(visitor)
    try:
        change()
    except Refusal as refusal:
        return _setup_page(visitor, status_code=status_for(refusal), error=refusal, typed=typed)
    return redirect(f"/shop/setup?saved={what}")


@router.post("/shop/setup/stripe")
def set_stripe(
    visitor: StaffDep,
    secret_key: Secret = "",
    webhook_secret: Secret = "",
    enabled: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    """A secret left empty keeps the stored one; neither is ever shown again."""
    return _saving(
        visitor,
        "stripe",
        lambda: shop.configure_stripe(
            visitor.database,
            payment_settings(visitor),
            seller_login=visitor.login,
            secret_key=secret_key.strip() or None,
            webhook_secret=webhook_secret.strip() or None,
            enabled=enabled == "yes",
            principal=visitor.principal,
        ),
    )


@router.post("/shop/setup/bank")
async def set_bank(visitor: StaffDep) -> Response:
    form = await visitor.request.form()
    details = {name: staff_text(form.get(name)) for name in DETAIL_FIELDS}
    enabled = form.get("enabled") == "yes"
    return _saving(
        visitor,
        "bank",
        lambda: shop.configure_bank_transfer(
            visitor.database, seller_login=visitor.login, details=details, enabled=enabled, principal=visitor.principal
        ),
        typed=details,
    )


def staff_text(value: object) -> str:
    text = value if isinstance(value, str) else ""
    if len(text) > 400:
        raise Refusal("field_invalid", "a field is too long")
    return text


def _offer(visitor: Visitor, currency: str, amounts: str, free_min: str, free_max: str) -> TopupOffer:
    language = visitor.language
    fixed = tuple(parse_amount(part.strip(), language) for part in amounts.split(";") if part.strip())
    if bool(free_min.strip()) != bool(free_max.strip()):
        raise Refusal("offer_invalid", "a free amount has both a minimum and a maximum, or neither")
    low = parse_amount(free_min.strip(), language) if free_min.strip() else None
    high = parse_amount(free_max.strip(), language) if free_max.strip() else None
    return TopupOffer(currency.strip().upper(), fixed, low, high)


@router.post("/shop/setup/topups")
def set_topups(
    visitor: StaffDep,
    currency: Annotated[str, Form(max_length=3)] = "",
    amounts: Annotated[str, Form(max_length=400)] = "",
    free_min: Annotated[str, Form(max_length=40)] = "",
    free_max: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Fixed amounts separated by semicolons (a comma is a decimal sign in many languages)."""
    typed = {"currency": currency, "amounts": amounts, "free_min": free_min, "free_max": free_max}
    return _saving(
        visitor,
        "topups",
        lambda: shop.put_topup_offer(
            visitor.database,
            seller_login=visitor.login,
            offer=_offer(visitor, currency, amounts, free_min, free_max),
            principal=visitor.principal,
        ),
        typed=typed,
    )


@router.post("/shop/setup/billing")
def set_billing(
    visitor: StaffDep,
    legal_name: Annotated[str, Form(max_length=200)] = "",
    address: Text = "",
    tax_id: Annotated[str, Form(max_length=64)] = "",
    tax_rate: Annotated[str, Form(max_length=10)] = "0",
    invoice_prefix: Annotated[str, Form(max_length=16)] = "INV",
) -> Response:
    typed = {"legal_name": legal_name, "address": address, "tax_id": tax_id, "tax_rate": tax_rate}

    def change() -> None:
        profile = BillingProfile(
            legal_name=legal_name.strip(),
            address=address.strip().replace("\r\n", "\n"),
            tax_id=tax_id.strip(),
            tax_rate_ppm=tax_rate_ppm_of(tax_rate.strip().replace(",", ".") or "0"),
            invoice_prefix=invoice_prefix.strip() or "INV",
        )
        records.set_billing_profile(
            visitor.database, seller_login=visitor.login, profile=profile, principal=visitor.principal
        )

    return _saving(visitor, "billing", change, typed=typed)
