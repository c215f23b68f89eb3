"""Use cases of the online shop: a seller's gateways and top-up offers, what a payer's shop offers, payments
from their start to their confirmation, and bank transfers confirmed or rejected by hand.

One use case is one transaction. A gateway is asked between two transactions, never inside one, so no lock
is held while Stripe answers; what was decided before the call is recorded first, so a crash in between
leaves a payment a retry (with the same id) takes up where it stopped.

Money moves only through the ledger: confirming a payment moves its amount from the seller's clearing account
for that gateway (no floor: its balance, negative, is what the gateway took for the seller) to the payer's
wallet, kind ``payment``, with a transfer id derived from the gateway's own id for the payment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from tollway.access.audit import audit
from tollway.access.model import Action, Principal, authorize
from tollway.agents.service import commission_on_payment
from tollway.balances.service import account_id
from tollway.clock import utc_now
from tollway.config import Settings
from tollway.errors import NotFound, Refusal, present
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose, Applied, TransferKind, TransferRequest
from tollway.logs import get_logger
from tollway.money import check_currency, format_amount
from tollway.payments import store
from tollway.payments.gateways import Checkout, CheckoutRequest, Gateway, GatewayFailed
from tollway.payments.gateways.bank_transfer import BankTransferGateway, check_details
from tollway.payments.gateways.stripe import SECRET_KEY_PREFIXES, WEBHOOK_SECRET_PREFIXES, StripeGateway
from tollway.payments.model import (
    REFERENCE_LENGTH_MAX,
    GatewayConfig,
    GatewayKind,
    Payment,
    PaymentEvent,
    PaymentState,
    ProductKind,
    TopupOffer,
    check_request_id,
    check_secret,
    check_topup,
    check_transition,
    minor_from_micros,
    payment_transfer_id,
    secret_hint,
)
from tollway.rating import store as rating_store
from tollway.rating.plans import SubscriptionStatus
from tollway.rating.subscriptions import subscribe_in
from tollway.sealing import SealBroken, Sealer
from tollway.store.database import Database
from tollway.tree import store as tree_store
from tollway.tree.model import Feature, Node, NodeKind, Status, check_feature_granted
from tollway.tree.service import require_node

log = get_logger("tollway.payments")

PAYMENTS_PAGE_MAX = 500
NOTE_LENGTH_MAX = 200
RETURN_PAGE = "/shop/payments/{payment_id}"  # the portal page that shows a payment's state to its payer
WEBHOOK_PATH = "/api/v1/payments/stripe/{gateway_id}/webhook"
CHECKOUT_IDEMPOTENCY_PREFIX = "tollway-checkout-"
CLEARING_PURPOSES = {
    GatewayKind.STRIPE: AccountPurpose.CLEARING_STRIPE,
    GatewayKind.BANK_TRANSFER: AccountPurpose.CLEARING_BANK,
}
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    """What the shop needs from the configuration: the key that opens gateways' secrets, where payers come
    back after paying, and (in tests) where Stripe's API is."""

    sealer: Sealer
    public_url: str = "http://127.0.0.1:8080"
    stripe_api_base: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> PaymentSettings:
        return cls(Sealer.from_settings(settings), settings.shop_public_url.rstrip("/"), settings.stripe_api_base)


@dataclass(frozen=True, slots=True)
class GatewayView:
    """A gateway as its seller sees it: never a secret, only their last characters."""

    id: int
    seller: str
    kind: GatewayKind
    enabled: bool
    details: dict[str, str]
    secret_key_hint: str | None
    webhook_secret_hint: str | None
    webhook_path: str | None


@dataclass(frozen=True, slots=True)
class PlanOffer:
    name: str
    fee_micros: int
    currency: str
    period: str
    included_seconds: int


@dataclass(frozen=True, slots=True)
class Shop:
    """What a payer may buy from its seller, and how it may pay."""

    payer: str
    seller: str
    seller_name: str
    currency: str
    gateways: tuple[GatewayKind, ...]
    bank_details: dict[str, str] | None
    topups: TopupOffer | None
    plans: tuple[PlanOffer, ...]


@dataclass(frozen=True, slots=True)
class Order:
    """What a payer asks to pay for: the payer's id for the request makes a retry harmless."""

    request_id: str
    gateway: GatewayKind
    product: ProductKind = ProductKind.TOPUP
    amount_micros: int | None = None  # a top-up's amount
    plan: str | None = None  # a plan's full name (``owner:name``)
    payer_reference: str | None = None  # a bank transfer's reference, as the payer wrote it


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    payment: Payment
    payer: str
    seller: str
    plan: str | None = None
    history: tuple[PaymentEvent, ...] = field(default_factory=tuple)


def unsealed(settings: PaymentSettings, sealed: str | None, what: str) -> str:
    """A gateway's secret in the clear, for the call that needs it; a key that cannot open it is the
    installation's misconfiguration (``secret_key`` changed without ``secret_keys_retired``), said plainly."""
    try:
        return settings.sealer.unseal(present(sealed, what))
    except SealBroken:
        log.error("gateway_secret_unreadable", what=what)
        raise Refusal("gateway_secret_unreadable", f"{what} does not open with this installation's key") from None


def gateway_of(config: GatewayConfig, settings: PaymentSettings) -> Gateway:
    if config.kind is GatewayKind.STRIPE:
        key = unsealed(settings, config.secret_key_sealed, "a Stripe gateway's secret key")
        return StripeGateway(key, api_base=settings.stripe_api_base)
    return BankTransferGateway()


def retried_once_on_conflict(database: Database, use_case: Callable[[Connection], T]) -> T:
    """Run ``use_case``; if a concurrent twin inserted the same unique row first, run it again: it then
    finds that row (the twin's payment, the clearing account it opened) instead of inserting its own."""
    try:
        return database.run(use_case)
    except IntegrityError:
        return database.run(use_case)


# --- the seller's side: gateways and offers --------------------------------------------------------------


def require_seller(connection: Connection, login: str, principal: Principal | None, *, selling: bool = False) -> Node:
    """The seller ``login``; ``selling``: it is about to set up its shop, which its grants must allow."""
    seller = require_node(connection, login)
    authorize(principal, Action.SHOP_MANAGE, seller)
    if seller.position.kind not in (NodeKind.PROVIDER, NodeKind.RESELLER):
        raise Refusal("seller_invalid", "only the provider and resellers run a shop")
    if selling:
        check_feature_granted(seller.grants, Feature.ONLINE_SHOP)
    return seller


def _view(seller: Node, config: GatewayConfig) -> GatewayView:
    return GatewayView(
        id=config.id,
        seller=seller.login,
        kind=config.kind,
        enabled=config.enabled,
        details=config.details,
        secret_key_hint=config.secret_key_hint,
        webhook_secret_hint=config.webhook_secret_hint,
        webhook_path=WEBHOOK_PATH.format(gateway_id=config.id) if config.kind is GatewayKind.STRIPE else None,
    )


def _put_gateway(
    connection: Connection, principal: Principal | None, seller: Node, config: GatewayConfig
) -> GatewayView:
    before = store.find_gateway(connection, seller.id, config.kind)
    gateway_id = store.put_gateway(connection, config, now=utc_now())
    saved = present(store.get_gateway(connection, gateway_id), "the gateway just saved")
    summary = {
        "kind": str(saved.kind),
        "enabled": saved.enabled,
        "details": saved.details,
        "secret_key_hint": saved.secret_key_hint,
        "webhook_secret_hint": saved.webhook_secret_hint,
    }
    audit(
        connection,
        principal,
        action="shop.gateway",
        target_type="gateway",
        target_id=f"{seller.login}:{saved.kind}",
        node=seller,
        before=None if before is None else {"enabled": before.enabled, "secret_key_hint": before.secret_key_hint},
        after=summary,
    )
    return _view(seller, saved)


def configure_stripe(
    database: Database,
    settings: PaymentSettings,
    *,
    seller_login: str,
    secret_key: str | None,
    webhook_secret: str | None,
    enabled: bool = True,
    principal: Principal | None = None,
) -> GatewayView:
    """The seller's own Stripe account: its secret key and its webhook's signing secret, sealed at rest and
    never shown again (only their last 4 characters). A secret left out (None) keeps the one stored."""
    key = None if secret_key is None else check_secret("secret_key", secret_key, SECRET_KEY_PREFIXES)
    hook = None if webhook_secret is None else check_secret("webhook_secret", webhook_secret, WEBHOOK_SECRET_PREFIXES)

    def use_case(connection: Connection) -> GatewayView:
        seller = require_seller(connection, seller_login, principal, selling=True)
        before = store.find_gateway(connection, seller.id, GatewayKind.STRIPE)
        kept = before or GatewayConfig(0, seller.id, GatewayKind.STRIPE, enabled)
        if (key is None and kept.secret_key_sealed is None) or (hook is None and kept.webhook_secret_sealed is None):
            raise Refusal("secrets_required", "a new Stripe gateway needs its secret key and its webhook secret")
        config = GatewayConfig(
            id=0,
            node_id=seller.id,
            kind=GatewayKind.STRIPE,
            enabled=enabled,
            secret_key_sealed=settings.sealer.seal(key) if key else kept.secret_key_sealed,
            secret_key_hint=secret_hint(key) if key else kept.secret_key_hint,
            webhook_secret_sealed=settings.sealer.seal(hook) if hook else kept.webhook_secret_sealed,
            webhook_secret_hint=secret_hint(hook) if hook else kept.webhook_secret_hint,
        )
        return _put_gateway(connection, principal, seller, config)

    return database.run(use_case)


def configure_bank_transfer(
    database: Database,
    *,
    seller_login: str,
    details: dict[str, str],
    enabled: bool = True,
    principal: Principal | None = None,
) -> GatewayView:
    """The seller's bank details, shown to its payers, who then declare their transfers."""
    cleaned = check_details(details)

    def use_case(connection: Connection) -> GatewayView:
        seller = require_seller(connection, seller_login, principal, selling=True)
        config = GatewayConfig(0, seller.id, GatewayKind.BANK_TRANSFER, enabled, cleaned)
        return _put_gateway(connection, principal, seller, config)

    return database.run(use_case)


def list_gateways(database: Database, *, seller_login: str, principal: Principal | None = None) -> list[GatewayView]:
    with database.reading() as connection:
        seller = require_seller(connection, seller_login, principal)
        return [_view(seller, config) for config in store.gateways_of(connection, seller.id)]


def put_topup_offer(
    database: Database, *, seller_login: str, offer: TopupOffer, principal: Principal | None = None
) -> TopupOffer:
    check_currency(offer.currency)

    def use_case(connection: Connection) -> TopupOffer:
        seller = require_seller(connection, seller_login, principal, selling=True)
        store.put_offer(connection, seller.id, offer, now=utc_now())
        audit(
            connection,
            principal,
            action="shop.topups",
            target_type="shop",
            target_id=f"{seller.login}:{offer.currency}",
            node=seller,
            after={
                "amounts_micros": list(offer.amounts_micros),
                "free_min_micros": offer.free_min_micros,
                "free_max_micros": offer.free_max_micros,
            },
        )
        return offer

    return database.run(use_case)


def topup_offers(database: Database, *, seller_login: str, principal: Principal | None = None) -> list[TopupOffer]:
    """The top-ups a seller's shop offers, one per currency."""
    with database.reading() as connection:
        seller = require_seller(connection, seller_login, principal)
        return store.offers_of(connection, seller.id)


# --- the payer's side: its shop, starting a payment ------------------------------------------------------


def seller_of(connection: Connection, payer: Node) -> Node:
    """A payer pays its owner, through its owner's gateways; the provider has nobody to pay."""
    if payer.parent_id is None:
        raise Refusal("provider_pays_nobody", "the provider's balance is unlimited: it has no shop to pay")
    return present(tree_store.get_node(connection, payer.parent_id), f"owner of {payer.login}")


def _plan_offers(connection: Connection, seller: Node, payer: Node) -> tuple[PlanOffer, ...]:
    if payer.position.kind is not NodeKind.CLIENT:
        return ()
    return tuple(
        PlanOffer(plan.name, plan.fee_micros, plan.currency, str(plan.period), plan.included_seconds)
        for _, _, plan in rating_store.plans_of(connection, seller.id, limit=PAYMENTS_PAGE_MAX)
        if plan.currency == payer.currency and plan.fee_micros > 0
    )


def shop_for(database: Database, *, login: str, principal: Principal | None = None) -> Shop:
    with database.reading() as connection:
        payer = require_node(connection, login)
        authorize(principal, Action.BALANCE_READ, payer)
        seller = seller_of(connection, payer)
        enabled = [config for config in store.gateways_of(connection, seller.id) if config.enabled]
        bank = next((c for c in enabled if c.kind is GatewayKind.BANK_TRANSFER), None)
        return Shop(
            payer=payer.login,
            seller=seller.login,
            seller_name=store.brand_of(connection, seller.id) or seller.name,
            currency=payer.currency,
            gateways=tuple(config.kind for config in enabled),
            bank_details=None if bank is None else bank.details,
            topups=store.get_offer(connection, seller.id, payer.currency),
            plans=_plan_offers(connection, seller, payer),
        )


def _priced(connection: Connection, seller: Node, payer: Node, order: Order) -> tuple[int, int | None]:
    """The amount to pay for ``order`` and the plan it buys, or a refusal."""
    if order.product is ProductKind.TOPUP:
        amount = order.amount_micros or 0
        check_topup(store.get_offer(connection, seller.id, payer.currency), amount)
        return amount, None
    if order.product is ProductKind.PLAN:
        if order.plan is None:
            raise Refusal("plan_required", "name the plan to buy")
        found = rating_store.find_plan(connection, order.plan)
        if found is None or found[1] != seller.id or payer.position.kind is not NodeKind.CLIENT:
            raise NotFound("plan", order.plan)
        plan_id, _, plan = found
        if plan.currency != payer.currency:
            raise Refusal("currency_mismatch", f"{plan.name} is in {plan.currency}, {payer.login} in {payer.currency}")
        if plan.fee_micros <= 0:
            raise Refusal("plan_free", "a plan without a fee is not sold: its owner gives it")
        held = rating_store.subscriptions_of(connection, [payer.id])
        if any(subscription.status is not SubscriptionStatus.ENDED for subscription in held):
            raise Refusal("plan_exists", f"{payer.login} already has a plan")
        minor_from_micros(plan.fee_micros, plan.currency)
        return plan.fee_micros, plan_id
    raise Refusal("product_not_sold", f"{order.product} is not sold in the shop")


def _same_order(payment: Payment, order: Order, amount_micros: int | None) -> bool:
    return (
        payment.gateway_kind is order.gateway
        and payment.product is order.product
        and (amount_micros is None or payment.amount_micros == amount_micros)
    )


def clearing_account(connection: Connection, seller: Node, kind: GatewayKind, currency: str) -> int:
    """The seller's clearing account for one gateway and currency, opened on first use (no floor)."""
    purpose = CLEARING_PURPOSES[kind]
    found = ledger_store.find_account_id(connection, node_id=seller.id, purpose=purpose, currency=currency)
    if found is not None:
        return found
    return ledger_store.create_account(
        connection, node_id=seller.id, purpose=purpose, currency=currency, floor=False, now=utc_now()
    )


def record_of(connection: Connection, payment: Payment, *, history: bool = False) -> PaymentRecord:
    payer = present(tree_store.get_node(connection, payment.node_id), "a payment's payer")
    gateway = present(store.get_gateway(connection, payment.gateway_id), "a payment's gateway")
    seller = present(tree_store.get_node(connection, gateway.node_id), "a gateway's seller")
    plan = None if payment.plan_id is None else store.plan_name(connection, payment.plan_id)
    events = tuple(store.events_of(connection, payment.id)) if history else ()
    return PaymentRecord(payment, payer.login, seller.login, plan, events)


def _create(connection: Connection, login: str, order: Order, principal: Principal | None) -> PaymentRecord:
    payer = require_node(connection, login)
    authorize(principal, Action.SHOP_PAY, payer)
    existing = store.find_payment_by_request(connection, payer.id, order.request_id)
    if existing is not None:
        if not _same_order(existing, order, order.amount_micros if order.product is ProductKind.TOPUP else None):
            raise Refusal("exists_with_different_fields", f"payment {order.request_id} was asked with other values")
        return record_of(connection, existing)
    if payer.status is Status.CLOSED:
        raise Refusal("node_closed", f"{payer.login} is closed")
    seller = seller_of(connection, payer)
    config = store.find_gateway(connection, seller.id, order.gateway)
    if config is None or not config.enabled:
        raise Refusal("gateway_not_offered", f"{seller.login}'s shop takes no {order.gateway.replace('_', ' ')}")
    reference = None
    if order.gateway is GatewayKind.BANK_TRANSFER:
        reference = (order.payer_reference or "").strip()
        if not reference or len(reference) > REFERENCE_LENGTH_MAX or not reference.isprintable():
            raise Refusal("reference_required", "a bank transfer is declared with the reference written on it")
    amount, plan_id = _priced(connection, seller, payer, order)
    clearing_account(connection, seller, order.gateway, payer.currency)
    now = utc_now()
    payment_id = store.insert_payment(
        connection,
        node_id=payer.id,
        gateway_id=config.id,
        request_id=order.request_id,
        product=order.product,
        plan_id=plan_id,
        amount_micros=amount,
        currency=payer.currency,
        payer_reference=reference,
        now=now,
    )
    actor = actor_of(principal)
    store.insert_event(
        connection,
        payment_id=payment_id,
        at=now,
        from_state=None,
        to_state=PaymentState.CREATED,
        actor=actor,
        detail=f"{order.product} through {order.gateway}",
    )
    if order.gateway is GatewayKind.BANK_TRANSFER:
        transition(
            connection,
            present(store.get_payment(connection, payment_id), "payment"),
            PaymentState.PENDING,
            actor=actor,
            now=now,
            detail=f"bank transfer declared, reference {reference}",
        )
    payment = present(store.get_payment(connection, payment_id), "the payment just made")
    audit(
        connection,
        principal,
        action="payment.start",
        target_type="payment",
        target_id=payment_id,
        node=payer,
        after={
            "gateway": str(order.gateway),
            "product": str(order.product),
            "amount_micros": amount,
            "currency": payer.currency,
            "reference": reference,
        },
    )
    return record_of(connection, payment)


def start_payment(
    database: Database,
    settings: PaymentSettings,
    *,
    login: str,
    order: Order,
    principal: Principal | None = None,
) -> PaymentRecord:
    """A payer starts paying its seller: a Stripe Checkout Session to send it to, or a declared bank
    transfer for the seller to confirm. The same ``request_id`` answers the same payment, however often."""
    check_request_id(order.request_id)
    record = retried_once_on_conflict(database, lambda connection: _create(connection, login, order, principal))
    payment = record.payment
    if payment.state is not PaymentState.CREATED or payment.gateway_kind is not GatewayKind.STRIPE:
        return record
    return _checkout(database, settings, record, principal)


def _checkout(
    database: Database, settings: PaymentSettings, record: PaymentRecord, principal: Principal | None
) -> PaymentRecord:
    payment = record.payment
    with database.reading() as connection:
        config = present(store.get_gateway(connection, payment.gateway_id), "a payment's gateway")
    page = settings.public_url + RETURN_PAGE.format(payment_id=payment.id)
    what = f"plan {record.plan}" if record.plan else "top-up"
    request = CheckoutRequest(
        payment_id=payment.id,
        amount_micros=payment.amount_micros,
        currency=payment.currency,
        description=f"{record.payer}: {what}, {format_amount(payment.amount_micros, payment.currency)}",
        payer_login=record.payer,
        success_url=page + "?outcome=paid",
        cancel_url=page + "?outcome=canceled",
        idempotency_key=f"{CHECKOUT_IDEMPOTENCY_PREFIX}{payment.id}",
    )
    try:
        checkout = gateway_of(config, settings).start(request)
    except GatewayFailed as failure:
        log.warning("checkout_failed", payment=payment.id, reason=failure.reason, message=failure.message)
        if failure.reason != "gateway_unavailable":  # unreachable: left as created, a retry asks again
            refused = failure
            database.run(lambda c: _fail_created(c, payment.id, refused, actor_of(principal)))
        raise
    return database.run(lambda connection: _checkout_started(connection, payment.id, checkout, actor_of(principal)))


def _fail_created(connection: Connection, payment_id: int, failure: Refusal, actor: str) -> None:
    payment = present(store.get_payment(connection, payment_id, lock=True), "payment")
    if payment.state is PaymentState.CREATED:
        transition(
            connection,
            payment,
            PaymentState.FAILED,
            actor=actor,
            now=utc_now(),
            reason=failure.reason,
            detail=failure.message,
        )


def _checkout_started(connection: Connection, payment_id: int, checkout: Checkout, actor: str) -> PaymentRecord:
    payment = present(store.get_payment(connection, payment_id, lock=True), "payment")
    now = utc_now()
    values: dict[str, object] = {}
    if payment.external_id is None:
        values["external_id"] = checkout.external_id
    if payment.checkout_url is None:
        values["checkout_url"] = checkout.redirect_url
    if values:
        store.update_payment(connection, payment.id, now=now, **values)
    if payment.state is PaymentState.CREATED:  # not if its webhook was faster than this answer
        payment = present(store.get_payment(connection, payment_id), "payment")
        transition(
            connection,
            payment,
            PaymentState.PENDING,
            actor=actor,
            now=now,
            detail=f"sent to the gateway, session {checkout.external_id}",
        )
    return record_of(connection, present(store.get_payment(connection, payment_id), "payment"))


# --- state changes and confirmation ----------------------------------------------------------------------


def actor_of(principal: Principal | None) -> str:
    return principal.label if principal else "cli"


def transition(
    connection: Connection,
    payment: Payment,
    target: PaymentState,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
    detail: str | None = None,
    gateway_event_id: str | None = None,
    **values: object,
) -> None:
    check_transition(payment.state, target)
    store.update_payment(connection, payment.id, now=now, state=target, reason=reason or payment.reason, **values)
    store.insert_event(
        connection,
        payment_id=payment.id,
        at=now,
        from_state=payment.state,
        to_state=target,
        actor=actor,
        gateway_event_id=gateway_event_id,
        detail=detail,
    )


def note(connection: Connection, payment: Payment, *, actor: str, detail: str, gateway_event_id: str | None) -> None:
    """A line in the payment's history that changes nothing (a refused event, a refused refund)."""
    store.insert_event(
        connection,
        payment_id=payment.id,
        at=utc_now(),
        from_state=payment.state,
        to_state=payment.state,
        actor=actor,
        gateway_event_id=gateway_event_id,
        detail=detail,
    )


def confirm_in(
    connection: Connection,
    payment: Payment,
    *,
    transfer_key: str,
    actor: str,
    principal: Principal | None = None,
    external_id: str | None = None,
    external_payment_id: str | None = None,
    gateway_event_id: str | None = None,
) -> Applied:
    """Credit the payer's wallet from its seller's clearing account, once; its agent earns its commission;
    what the payment bought (a plan) is delivered. ``payment`` must be locked by the caller."""
    check_transition(payment.state, PaymentState.CONFIRMED)
    now = utc_now()
    payer = present(tree_store.get_node(connection, payment.node_id), "a payment's payer")
    gateway = present(store.get_gateway(connection, payment.gateway_id), "a payment's gateway")
    seller = present(tree_store.get_node(connection, gateway.node_id), "a gateway's seller")
    transfer_id = payment_transfer_id(payment.gateway_kind, gateway.id, transfer_key)
    requests = [
        TransferRequest(
            id=transfer_id,
            amount_micros=payment.amount_micros,
            debit_account_id=clearing_account(connection, seller, payment.gateway_kind, payment.currency),
            credit_account_id=account_id(connection, payer, AccountPurpose.WALLET),
            kind=TransferKind.PAYMENT,
            reference=f"shop payment {payment.id}",
        )
    ]
    requests += commission_on_payment(connection, payer, payment_id=transfer_id, amount_micros=payment.amount_micros)
    applied = ledger_store.execute(connection, requests, now=now)
    transition(
        connection,
        payment,
        PaymentState.CONFIRMED,
        actor=actor,
        now=now,
        gateway_event_id=gateway_event_id,
        detail=f"credited {format_amount(payment.amount_micros, payment.currency)}, transfer {transfer_id}",
        transfer_id=transfer_id,
        confirmed_at=now,
        external_id=external_id or payment.external_id,
        external_payment_id=external_payment_id or payment.external_payment_id,
    )
    audit(
        connection,
        principal,
        action="payment.confirm",
        target_type="payment",
        target_id=payment.id,
        node=payer,
        actor=actor,
        after={
            "transfers": [t.id for t in applied.transfers],
            "amount_micros": payment.amount_micros,
            "currency": payment.currency,
            "gateway": str(payment.gateway_kind),
        },
    )
    _deliver(connection, payment, payer, actor=actor, now=now)
    return applied


def _deliver(connection: Connection, payment: Payment, payer: Node, *, actor: str, now: datetime) -> None:
    """What the payment bought, from the money just credited. A plan that can no longer be given (one was
    given meanwhile) leaves the money in the wallet, and says why on the payment."""
    if payment.product is not ProductKind.PLAN or payment.plan_id is None:
        return
    plan = present(store.plan_name(connection, payment.plan_id), "a payment's plan")
    try:
        with connection.begin_nested():
            subscribe_in(connection, login=payer.login, plan_name=plan, principal=None, now=now)
        outcome = "plan_given"
    except Refusal as refusal:
        outcome = f"plan_not_given:{refusal.reason}"[:64]
        log.warning("plan_not_given", payment=payment.id, plan=plan, reason=refusal.reason)
    store.update_payment(connection, payment.id, now=now, reason=outcome)
    store.insert_event(
        connection,
        payment_id=payment.id,
        at=now,
        from_state=PaymentState.CONFIRMED,
        to_state=PaymentState.CONFIRMED,
        actor=actor,
        detail=f"{plan}: {outcome}",
    )


# --- bank transfers, by hand -----------------------------------------------------------------------------


def seller_payment(
    connection: Connection, payment_id: int, principal: Principal | None, action: Action
) -> tuple[Payment, Node]:
    """The payment, locked, and its seller, if the principal may act for that seller; else not found."""
    payment = store.get_payment(connection, payment_id, lock=True)
    if payment is None:
        raise NotFound("payment", payment_id)
    gateway = present(store.get_gateway(connection, payment.gateway_id), "a payment's gateway")
    seller = present(tree_store.get_node(connection, gateway.node_id), "a gateway's seller")
    try:
        authorize(principal, action, seller)
    except NotFound:
        raise NotFound("payment", payment_id) from None
    return payment, seller


def decide_bank_transfer(
    database: Database,
    *,
    payment_id: int,
    accept: bool,
    note_text: str = "",
    principal: Principal | None = None,
) -> PaymentRecord:
    """The seller confirms a declared bank transfer (the money arrived: credited) or rejects it. Confirming
    twice credits once; rejecting a confirmed payment is refused (a refund gives money back)."""
    text = note_text.strip()[:NOTE_LENGTH_MAX]
    if not accept and not text:
        raise Refusal("note_required", "say why the transfer is rejected")

    def use_case(connection: Connection) -> PaymentRecord:
        payment, _ = seller_payment(connection, payment_id, principal, Action.SHOP_MANAGE)
        if payment.gateway_kind is not GatewayKind.BANK_TRANSFER:
            raise Refusal("not_a_bank_transfer", "only bank transfers are confirmed or rejected by hand")
        actor = actor_of(principal)
        if accept and payment.state not in (PaymentState.CONFIRMED, PaymentState.REFUNDED):
            confirm_in(connection, payment, transfer_key=f"p{payment.id}", actor=actor, principal=principal)
            if text:
                note(
                    connection,
                    present(store.get_payment(connection, payment.id), "payment"),
                    actor=actor,
                    detail=text,
                    gateway_event_id=None,
                )
        elif not accept and payment.state is not PaymentState.CANCELED:
            transition(
                connection,
                payment,
                PaymentState.CANCELED,
                actor=actor,
                now=utc_now(),
                reason="rejected",
                detail=f"rejected: {text}",
            )
            audit(
                connection,
                principal,
                action="payment.reject",
                target_type="payment",
                target_id=payment.id,
                node=tree_store.get_node(connection, payment.node_id),
                after={"note": text},
            )
        return record_of(connection, present(store.get_payment(connection, payment.id), "payment"), history=True)

    return database.run(use_case)


# --- reading ---------------------------------------------------------------------------------------------


def get_payment(database: Database, *, payment_id: int, principal: Principal | None = None) -> PaymentRecord:
    """A payment with its history, for its payer, the payer's agent and everyone above the payer."""
    with database.reading() as connection:
        payment = store.get_payment(connection, payment_id)
        if payment is None:
            raise NotFound("payment", payment_id)
        payer = present(tree_store.get_node(connection, payment.node_id), "a payment's payer")
        try:
            authorize(principal, Action.BALANCE_READ, payer)
        except NotFound:
            raise NotFound("payment", payment_id) from None
        return record_of(connection, payment, history=True)


def payments_of(
    database: Database, *, login: str, limit: int, before_id: int | None = None, principal: Principal | None = None
) -> list[PaymentRecord]:
    """A payer's payments, newest first."""
    with database.reading() as connection:
        payer = require_node(connection, login)
        authorize(principal, Action.BALANCE_READ, payer)
        found = store.list_payments(
            connection, node_id=payer.id, limit=min(limit, PAYMENTS_PAGE_MAX), before_id=before_id
        )
        return [record_of(connection, payment) for payment in found]


def sales_of(
    database: Database,
    *,
    seller_login: str,
    limit: int,
    state: PaymentState | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    principal: Principal | None = None,
) -> list[PaymentRecord]:
    """The payments made to a seller through its gateways, newest first."""
    with database.reading() as connection:
        seller = require_seller(connection, seller_login, principal)
        found = store.list_payments(
            connection,
            seller_id=seller.id,
            state=state,
            since=since,
            until=until,
            limit=min(limit, PAYMENTS_PAGE_MAX),
            before_id=before_id,
        )
        return [record_of(connection, payment) for payment in found]
