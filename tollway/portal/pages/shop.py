"""The shop in the portal, for those who pay their seller (clients, agents, resellers' admins): what the
seller sells (top-ups of its fixed amounts or a free amount within its limits, plans with their first period),
paying by card (Stripe's hosted checkout, through the seller's own account) or by bank transfer (the seller's
details, and a declared transfer with its reference), the payer's payments with their receipts, and its
invoices.

A card payment leaves the portal for Stripe's page and comes back to the payment's page (``RETURN_PAGE`` in
``tollway/payments/service.py``), which shows "pending" until the gateway's webhook confirms it, and
updates itself (htmx) until then. The form posts to this portal and is sent on to Stripe by a page of its
own (``/shop/payments/{id}/checkout``): the portal's Content-Security-Policy lets a form go to this origin
only, so the step out to Stripe is a plain navigation, never a form's redirect.

Every form carries an idempotency key drawn when it is shown: sent twice, it starts one payment.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Response

from tollway.access.model import ROLE_ACTIONS, Action, Role
from tollway.errors import NotFound, Refusal
from tollway.http.errors import status_for
from tollway.payments import records
from tollway.payments import service as shop
from tollway.payments.model import CREDITED_STATES, GatewayKind, PaymentState, ProductKind
from tollway.payments.service import PaymentSettings
from tollway.portal import staff
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.pages.settings import parse_amount
from tollway.portal.staff import ADMIN_ROLES
from tollway.portal.web import SignedInDep, Visitor, redirect, render

router = APIRouter()
# Who pays its owner through the shop: the roles the access rule lets pay (the provider has nobody to pay).
PAYER_ROLES = frozenset(role for role, actions in ROLE_ACTIONS.items() if Action.SHOP_PAY in actions) - {
    Role.PROVIDER_ADMIN
}
NAVIGATION = (NavItem("/shop", N_("Shop"), PAYER_ROLES, order=45),)
STATE_WORDS = {
    PaymentState.CREATED: N_("Not sent to the payment page yet"),
    PaymentState.PENDING: N_("Waiting for confirmation"),
    PaymentState.CONFIRMED: N_("Confirmed"),
    PaymentState.FAILED: N_("Failed"),
    PaymentState.CANCELED: N_("Canceled"),
    PaymentState.REFUNDED: N_("Refunded"),
}
GATEWAY_WORDS = {GatewayKind.STRIPE: N_("Card"), GatewayKind.BANK_TRANSFER: N_("Bank transfer")}
PERIOD_WORDS = {"month": N_("a month"), "week": N_("a week"), "day": N_("a day")}
BANK_FIELDS = {
    "account_holder": N_("Account holder"),
    "iban": N_("IBAN"),
    "bic": N_("BIC"),
    "bank_name": N_("Bank"),
    "account_number": N_("Account number"),
    "routing_number": N_("Routing number"),
    "instructions": N_("Instructions"),
}
OTHER_AMOUNT = "other"
POLL_SECONDS = 3  # how often a pending payment's page asks again
PAYMENT_ID_MAX = 2**63 - 1  # ids are 64-bit
RECENT_PAYMENTS = 20


def payment_settings(visitor: Visitor) -> PaymentSettings:
    """The shop's settings the application was given, else made once from the configuration."""
    given = visitor.settings.payments
    if given is not None:
        return given
    state = visitor.request.app.state
    made: PaymentSettings | None = getattr(state, "payment_settings", None)
    if made is None:
        from tollway.config import Settings

        made = state.payment_settings = PaymentSettings.of(Settings())
    return made


def _shop_page(visitor: Visitor, *, status_code: int = 200, error: Refusal | None = None, **typed: str) -> Response:
    database, principal = visitor.database, visitor.principal
    offer = shop.shop_for(database, login=visitor.login, principal=principal)
    recent = shop.payments_of(database, login=visitor.login, limit=RECENT_PAYMENTS, principal=principal)
    return render(
        visitor,
        "shop.html",
        status_code=status_code,
        values={
            "shop": offer,
            "by_card": GatewayKind.STRIPE in offer.gateways,
            "by_bank": GatewayKind.BANK_TRANSFER in offer.gateways,
            "bank_fields": BANK_FIELDS,
            "period_words": PERIOD_WORDS,
            "payments": recent,
            "state_words": STATE_WORDS,
            "gateway_words": GATEWAY_WORDS,
            "credited": CREDITED_STATES,
            "invoices": records.invoices_for(database, login=visitor.login, principal=principal),
            "key": staff.idempotency_key(),
            "other": OTHER_AMOUNT,
            "typed": typed,
            "error": refusal_text(visitor, error) if error else None,
        },
    )


def _payer(visitor: Visitor) -> Visitor:
    """The shop's own pages are for those who may pay; for anyone else they do not exist."""
    if visitor.role not in PAYER_ROLES:
        raise NotFound("page", visitor.request.url.path)
    return visitor


@router.get("/shop")
def shop_page(visitor: SignedInDep) -> Response:
    return _shop_page(_payer(visitor))


def _order(
    visitor: Visitor, *, key: str, gateway: str, amount: str, other_amount: str, plan: str, reference: str
) -> shop.Order:
    try:
        kind = GatewayKind(gateway)
    except ValueError:
        raise Refusal("request_invalid", "choose how to pay") from None
    if kind is GatewayKind.BANK_TRANSFER and not reference:
        raise Refusal("reference_required", "say what you wrote on the transfer")
    common: dict[str, Any] = {"request_id": key, "gateway": kind, "payer_reference": reference or None}
    if plan:
        return shop.Order(product=ProductKind.PLAN, plan=plan, **common)
    typed = other_amount if amount == OTHER_AMOUNT else amount
    if not typed:
        raise Refusal("amount_required", "choose an amount")
    return shop.Order(amount_micros=parse_amount(typed, visitor.language), **common)


@router.post("/shop/pay")
def pay(
    visitor: SignedInDep,
    key: Annotated[str, Form(max_length=100)] = "",
    gateway: Annotated[str, Form(max_length=20)] = "",
    amount: Annotated[str, Form(max_length=40)] = "",
    other_amount: Annotated[str, Form(max_length=40)] = "",
    plan: Annotated[str, Form(max_length=200)] = "",
    reference: Annotated[str, Form(max_length=140)] = "",
) -> Response:
    """Start paying: a card payment goes on to Stripe's page, a declared transfer to its payment's page."""
    _payer(visitor)
    fields = {"amount": amount, "other_amount": other_amount, "reference": reference}
    try:
        order = _order(
            visitor, key=key, gateway=gateway, amount=amount, other_amount=other_amount, plan=plan, reference=reference
        )
        record = shop.start_payment(
            visitor.database, payment_settings(visitor), login=visitor.login, order=order, principal=visitor.principal
        )
    except Refusal as refusal:
        return _shop_page(visitor, status_code=status_for(refusal), error=refusal, **fields)
    if record.payment.gateway_kind is GatewayKind.STRIPE and record.payment.state is PaymentState.PENDING:
        return redirect(f"/shop/payments/{record.payment.id}/checkout")
    return redirect(f"/shop/payments/{record.payment.id}")


PaymentId = Annotated[int, Path(ge=1, le=PAYMENT_ID_MAX)]


@router.get("/shop/payments/{payment_id}/checkout")
def checkout(payment_id: PaymentId, visitor: SignedInDep) -> Response:
    """On to Stripe's page (a refresh, and a link for whoever has refreshes off); once paid, the payment's page."""
    record = shop.get_payment(visitor.database, payment_id=payment_id, principal=visitor.principal)
    url = record.payment.checkout_url
    if record.payment.state is not PaymentState.PENDING or not url or record.payer != visitor.login:
        return redirect(f"/shop/payments/{payment_id}")
    return render(visitor, "shop_checkout.html", values={"payment": record.payment, "checkout_url": url})


def payment_page(
    visitor: Visitor,
    payment_id: int,
    *,
    status_code: int = 200,
    error: Refusal | None = None,
    outcome: str | None = None,
) -> Response:
    """A payment's state for whoever may read it; to its seller's admins, a confirmed payment's refund form."""
    record = shop.get_payment(visitor.database, payment_id=payment_id, principal=visitor.principal)
    state = record.payment.state
    sellers_admin = visitor.role in ADMIN_ROLES and record.seller == visitor.login
    return render(
        visitor,
        "shop_payment.html",
        status_code=status_code,
        values={
            "payment": record.payment,
            "state_words": STATE_WORDS[state],
            "by_bank": record.payment.gateway_kind is GatewayKind.BANK_TRANSFER,
            "waiting": state in (PaymentState.CREATED, PaymentState.PENDING),
            "credited": state in CREDITED_STATES,
            "left_the_page": outcome == "canceled",
            "poll_seconds": POLL_SECONDS,
            "may_refund": sellers_admin and state is PaymentState.CONFIRMED,
            "refundable_micros": record.payment.amount_micros - record.payment.refunded_micros,
            "key": staff.idempotency_key(),
            "saved": visitor.request.query_params.get("saved") == "refunded",
            "error": refusal_text(visitor, error) if error else None,
        },
    )


@router.get("/shop/payments/{payment_id}")
def payment(payment_id: PaymentId, visitor: SignedInDep, outcome: str | None = None) -> Response:
    return payment_page(visitor, payment_id, outcome=outcome)
