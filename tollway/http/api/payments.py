"""The online shop: a seller's gateways and offers, a payer's shop and payments, bank transfers confirmed
by hand, refunds, and Stripe's webhook. Every request that moves money carries an idempotency key (a
payment's and a refund's ``id``; a webhook event's own id)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from tollway.errors import Refusal
from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import PAGE_SIZE_DEFAULT, PageSize, PositiveAmount, Strict
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.http.limits import REQUEST_BODY_BYTES_MAX
from tollway.money import to_decimal, to_micros
from tollway.payments import refunds, webhooks
from tollway.payments import service as shop
from tollway.payments.gateways.bank_transfer import DETAIL_FIELDS
from tollway.payments.model import GatewayKind, PaymentState, ProductKind, TopupOffer
from tollway.payments.service import GatewayView, Order, PaymentRecord, PaymentSettings
from tollway.store.types import ID_MAX

router = APIRouter(tags=["shop"], responses=ERRORS)  # type: ignore[arg-type]
DbId = Annotated[int, Path(ge=1, le=ID_MAX)]
RequestId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$", description="idempotency key of the request")
]
Currency = Annotated[str, Path(pattern=r"^[A-Z]{3}$")]
WEBHOOK_BODY_BYTES_MAX = REQUEST_BODY_BYTES_MAX  # a Stripe event is a few kilobytes: 64 KiB is plenty


def payment_settings(request: Request) -> PaymentSettings:
    """The shop's settings, made from the configuration on first use unless the application was given them."""
    settings: PaymentSettings | None = request.app.state.payment_settings
    if settings is None:
        from tollway.config import Settings

        settings = request.app.state.payment_settings = PaymentSettings.of(Settings())
    return settings


class StripeGatewayIn(Strict):
    secret_key: Annotated[str | None, Field(max_length=255, description="sk_… or rk_…; null keeps the stored one")]
    webhook_secret: Annotated[str | None, Field(max_length=255, description="whsec_…; null keeps the stored one")]
    enabled: bool = True


class BankTransferIn(Strict):
    account_holder: Annotated[str, Field(min_length=1, max_length=400)]
    iban: Annotated[str, Field(max_length=400)] = ""
    bic: Annotated[str, Field(max_length=400)] = ""
    bank_name: Annotated[str, Field(max_length=400)] = ""
    account_number: Annotated[str, Field(max_length=400)] = ""
    routing_number: Annotated[str, Field(max_length=400)] = ""
    instructions: Annotated[str, Field(max_length=400)] = ""
    enabled: bool = True


class GatewayOut(BaseModel):
    id: int
    seller: str
    kind: GatewayKind
    enabled: bool
    details: dict[str, str]
    secret_key_hint: str | None = Field(description="the last 4 characters: the key itself is never shown again")
    webhook_secret_hint: str | None
    webhook_path: str | None = Field(description="where Stripe sends this gateway's events")


class TopupOfferIn(Strict):
    amounts: list[PositiveAmount] = Field(default_factory=list, max_length=12)
    free_min: PositiveAmount | None = None
    free_max: PositiveAmount | None = None


class TopupOfferOut(BaseModel):
    currency: str
    amounts: list[Decimal]
    free_min: Decimal | None
    free_max: Decimal | None


class PlanOfferOut(BaseModel):
    name: str
    fee: Decimal
    currency: str
    period: str
    included_minutes: Decimal


class ShopOut(BaseModel):
    payer: str
    seller: str
    seller_name: str
    currency: str
    gateways: list[GatewayKind]
    bank_details: dict[str, str] | None
    topups: TopupOfferOut | None
    plans: list[PlanOfferOut]


class PaymentIn(Strict):
    id: RequestId
    gateway: GatewayKind
    product: ProductKind = ProductKind.TOPUP
    amount: PositiveAmount | None = Field(default=None, description="a top-up's amount")
    plan: Annotated[str | None, Field(max_length=128, description="a plan's full name, owner:name")] = None
    reference: Annotated[str | None, Field(max_length=140, description="a bank transfer's reference")] = None


class PaymentEventOut(BaseModel):
    at: datetime
    from_state: str | None
    to_state: str
    actor: str
    detail: str | None


class PaymentOut(BaseModel):
    id: int
    request_id: str
    payer: str
    seller: str
    gateway: GatewayKind
    product: ProductKind
    plan: str | None
    amount: Decimal
    currency: str
    state: PaymentState
    reason: str | None
    checkout_url: str | None = Field(description="where to send the payer to pay (Stripe), while it is pending")
    reference: str | None
    refunded: Decimal
    transfer_id: str | None
    created_at: datetime
    confirmed_at: datetime | None
    history: list[PaymentEventOut]


class DecisionIn(Strict):
    note: Annotated[str, Field(max_length=200)] = ""


class RefundIn(Strict):
    id: RequestId
    amount: PositiveAmount
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class RefundOut(BaseModel):
    id: int
    request_id: str
    amount: Decimal
    state: str
    origin: str
    reason: str | None
    payment: PaymentOut


class WebhookOut(BaseModel):
    event_id: str
    event_type: str
    outcome: str
    payment_id: int | None
    repeated: bool


def gateway_out(view: GatewayView) -> GatewayOut:
    return GatewayOut(
        id=view.id,
        seller=view.seller,
        kind=view.kind,
        enabled=view.enabled,
        details=view.details,
        secret_key_hint=view.secret_key_hint,
        webhook_secret_hint=view.webhook_secret_hint,
        webhook_path=view.webhook_path,
    )


def offer_out(offer: TopupOffer) -> TopupOfferOut:
    return TopupOfferOut(
        currency=offer.currency,
        amounts=[to_decimal(amount) for amount in offer.amounts_micros],
        free_min=None if offer.free_min_micros is None else to_decimal(offer.free_min_micros),
        free_max=None if offer.free_max_micros is None else to_decimal(offer.free_max_micros),
    )


def payment_out(record: PaymentRecord) -> PaymentOut:
    payment = record.payment
    pending = payment.state in (PaymentState.CREATED, PaymentState.PENDING)
    return PaymentOut(
        id=payment.id,
        request_id=payment.request_id,
        payer=record.payer,
        seller=record.seller,
        gateway=payment.gateway_kind,
        product=payment.product,
        plan=record.plan,
        amount=to_decimal(payment.amount_micros),
        currency=payment.currency,
        state=payment.state,
        reason=payment.reason,
        checkout_url=payment.checkout_url if pending else None,
        reference=payment.payer_reference,
        refunded=to_decimal(payment.refunded_micros),
        transfer_id=payment.transfer_id,
        created_at=payment.created_at,
        confirmed_at=payment.confirmed_at,
        history=[
            PaymentEventOut(
                at=event.at,
                from_state=event.from_state,
                to_state=event.to_state,
                actor=event.actor,
                detail=event.detail,
            )
            for event in record.history
        ],
    )


@router.get("/nodes/{login}/gateways", summary="A seller's payment gateways (secrets never shown: their last 4)")
def list_gateways(login: str, database: DatabaseDep, principal: PrincipalDep) -> list[GatewayOut]:
    return [gateway_out(v) for v in shop.list_gateways(database, seller_login=login, principal=principal)]


@router.put("/nodes/{login}/gateways/stripe", summary="Set a seller's own Stripe account (sealed at rest)")
def put_stripe(
    login: str, body: StripeGatewayIn, request: Request, database: DatabaseDep, principal: PrincipalDep
) -> GatewayOut:
    view = shop.configure_stripe(
        database,
        payment_settings(request),
        seller_login=login,
        secret_key=body.secret_key,
        webhook_secret=body.webhook_secret,
        enabled=body.enabled,
        principal=principal,
    )
    return gateway_out(view)


@router.put("/nodes/{login}/gateways/bank-transfer", summary="Set the bank details a seller's payers pay into")
def put_bank_transfer(login: str, body: BankTransferIn, database: DatabaseDep, principal: PrincipalDep) -> GatewayOut:
    details = {name: getattr(body, name) for name in DETAIL_FIELDS}
    view = shop.configure_bank_transfer(
        database, seller_login=login, details=details, enabled=body.enabled, principal=principal
    )
    return gateway_out(view)


@router.put("/nodes/{login}/shop/topups/{currency}", summary="The top-ups a seller's shop offers in a currency")
def put_topups(
    login: str, currency: Currency, body: TopupOfferIn, database: DatabaseDep, principal: PrincipalDep
) -> TopupOfferOut:
    offer = TopupOffer(
        currency,
        tuple(to_micros(amount) for amount in body.amounts),
        None if body.free_min is None else to_micros(body.free_min),
        None if body.free_max is None else to_micros(body.free_max),
    )
    return offer_out(shop.put_topup_offer(database, seller_login=login, offer=offer, principal=principal))


@router.get("/nodes/{login}/shop", summary="What a payer may buy from its seller, and how it may pay")
def get_shop(login: str, database: DatabaseDep, principal: PrincipalDep) -> ShopOut:
    found = shop.shop_for(database, login=login, principal=principal)
    return ShopOut(
        payer=found.payer,
        seller=found.seller,
        seller_name=found.seller_name,
        currency=found.currency,
        gateways=list(found.gateways),
        bank_details=found.bank_details,
        topups=None if found.topups is None else offer_out(found.topups),
        plans=[
            PlanOfferOut(
                name=plan.name,
                fee=to_decimal(plan.fee_micros),
                currency=plan.currency,
                period=plan.period,
                included_minutes=Decimal(plan.included_seconds) / 60,
            )
            for plan in found.plans
        ],
    )


@router.post("/nodes/{login}/shop/payments", summary="Pay your seller: a Stripe checkout, or a declared transfer")
def start_payment(
    login: str, body: PaymentIn, request: Request, database: DatabaseDep, principal: PrincipalDep
) -> PaymentOut:
    order = Order(
        request_id=body.id,
        gateway=body.gateway,
        product=body.product,
        amount_micros=None if body.amount is None else to_micros(body.amount),
        plan=body.plan,
        payer_reference=body.reference,
    )
    record = shop.start_payment(database, payment_settings(request), login=login, order=order, principal=principal)
    return payment_out(record)


@router.get("/nodes/{login}/shop/payments", summary="A payer's payments, newest first")
def list_payments(
    login: str,
    database: DatabaseDep,
    principal: PrincipalDep,
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
    before_id: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
) -> list[PaymentOut]:
    found = shop.payments_of(database, login=login, limit=limit, before_id=before_id, principal=principal)
    return [payment_out(record) for record in found]


@router.get("/nodes/{login}/sales", summary="The payments made to a seller, newest first")
def list_sales(
    login: str,
    database: DatabaseDep,
    principal: PrincipalDep,
    state: PaymentState | None = None,
    limit: Annotated[PageSize, Query()] = PAGE_SIZE_DEFAULT,
    before_id: Annotated[int | None, Query(ge=1, le=ID_MAX)] = None,
) -> list[PaymentOut]:
    found = shop.sales_of(
        database, seller_login=login, state=state, limit=limit, before_id=before_id, principal=principal
    )
    return [payment_out(record) for record in found]


@router.get("/payments/{payment_id}", summary="A payment and its history (pending until its gateway confirms it)")
def get_payment(payment_id: DbId, database: DatabaseDep, principal: PrincipalDep) -> PaymentOut:
    return payment_out(shop.get_payment(database, payment_id=payment_id, principal=principal))


@router.post("/payments/{payment_id}/confirmation", summary="The seller confirms a bank transfer: credited once")
def confirm(payment_id: DbId, body: DecisionIn, database: DatabaseDep, principal: PrincipalDep) -> PaymentOut:
    record = shop.decide_bank_transfer(
        database, payment_id=payment_id, accept=True, note_text=body.note, principal=principal
    )
    return payment_out(record)


@router.post("/payments/{payment_id}/rejection", summary="The seller rejects a declared bank transfer")
def reject(payment_id: DbId, body: DecisionIn, database: DatabaseDep, principal: PrincipalDep) -> PaymentOut:
    record = shop.decide_bank_transfer(
        database, payment_id=payment_id, accept=False, note_text=body.note, principal=principal
    )
    return payment_out(record)


@router.post("/payments/{payment_id}/refunds", summary="Give back unspent money of a payment, through its gateway")
def refund(
    payment_id: DbId, body: RefundIn, request: Request, database: DatabaseDep, principal: PrincipalDep
) -> RefundOut:
    done = refunds.refund_payment(
        database,
        payment_settings(request),
        payment_id=payment_id,
        amount_micros=to_micros(body.amount),
        reason=body.reason,
        request_id=body.id,
        principal=principal,
    )
    return RefundOut(
        id=done.refund.id,
        request_id=done.refund.key,
        amount=to_decimal(done.refund.amount_micros),
        state=str(done.refund.state),
        origin=str(done.refund.origin),
        reason=done.refund.reason,
        payment=payment_out(done.payment),
    )


async def bounded_body(request: Request, limit_bytes: int) -> bytes:
    """The raw body, exactly as sent (a signature covers these bytes), refused past ``limit_bytes``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise Refusal("body_too_large", f"a webhook body is at most {limit_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise Refusal("body_too_large", f"a webhook body is at most {limit_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/payments/stripe/{gateway_id}/webhook",
    summary="Stripe's events for one seller's gateway (signed with its secret; no other credentials)",
)
async def stripe_webhook(gateway_id: DbId, request: Request) -> WebhookOut:
    payload = await bounded_body(request, WEBHOOK_BODY_BYTES_MAX)
    answer = await run_in_threadpool(
        webhooks.receive_stripe_event,
        request.app.state.database,
        payment_settings(request),
        gateway_id=gateway_id,
        payload=payload,
        signature=request.headers.get("stripe-signature"),
    )
    return WebhookOut(
        event_id=answer.event_id,
        event_type=answer.event_type,
        outcome=answer.outcome,
        payment_id=answer.payment_id,
        repeated=answer.repeated,
    )
