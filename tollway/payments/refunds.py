"""Refunds of shop payments, by the policy in ``tollway.payments.model``: only unspent money goes back.

Asked from Tollway (portal, API, command line), a refund is checked and its amount reserved in the ledger
(a pending transfer from the payer's wallet to the seller's clearing account) before the gateway is asked;
the gateway's yes posts the reservation, its no voids it. Nothing can spend the reserved money meanwhile.

Made at the gateway (Stripe's dashboard), a refund is learned from ``charge.refunded``, which carries the
total refunded so far: what exceeds what Tollway already accounts for (refunded, reserved, or refused) is
reversed as a new transfer, if the policy allows it, else recorded as refused with its reason for the
seller to settle. The transfer's id derives from that total, so a redelivery reverses nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection

from tollway.access.audit import audit
from tollway.access.model import Action, Principal
from tollway.balances.service import account_id
from tollway.clock import utc_now
from tollway.errors import Refusal, present
from tollway.ledger import store as ledger_store
from tollway.ledger.model import AccountPurpose, Phase, TransferKind, TransferRequest
from tollway.logs import get_logger
from tollway.money import format_amount
from tollway.payments import store
from tollway.payments.gateways import GatewayFailed, RefundRequest
from tollway.payments.model import (
    Payment,
    PaymentState,
    Refund,
    RefundOrigin,
    RefundState,
    check_refund,
    check_request_id,
    minor_from_micros,
    refund_transfer_id,
    unspent_micros,
)
from tollway.payments.service import (
    PaymentRecord,
    PaymentSettings,
    actor_of,
    clearing_account,
    gateway_of,
    note,
    record_of,
    retried_once_on_conflict,
    seller_payment,
    transition,
)
from tollway.store.database import Database
from tollway.tree import store as tree_store
from tollway.tree.model import Node

log = get_logger("tollway.payments.refunds")

REASON_LENGTH_MAX = 200
REFUND_IDEMPOTENCY_PREFIX = "tollway-refund-"


class RefundOutcome(StrEnum):
    RECORDED = "refund_recorded"
    KNOWN = "refund_already_recorded"
    REFUSED = "refund_refused"


@dataclass(frozen=True, slots=True)
class RefundRecord:
    refund: Refund
    payment: PaymentRecord


def accounted_micros(refunds: list[Refund]) -> int:
    """What of a payment is refunded, being refunded, or was refunded at the gateway against the policy."""
    return sum(refund.amount_micros for refund in refunds if refund.state is not RefundState.FAILED)


def _accounts(connection: Connection, payment: Payment, payer: Node) -> tuple[int, int, int]:
    """(wallet, clearing, unspent): both accounts locked, in the one order every writer uses."""
    gateway = present(store.get_gateway(connection, payment.gateway_id), "a payment's gateway")
    seller = present(tree_store.get_node(connection, gateway.node_id), "a gateway's seller")
    wallet = account_id(connection, payer, AccountPurpose.WALLET)
    clearing = clearing_account(connection, seller, payment.gateway_kind, payment.currency)
    locked = ledger_store.lock_accounts(connection, [wallet, clearing])
    account = locked[wallet]
    return (
        wallet,
        clearing,
        unspent_micros(balance_micros=account.balance_micros, pending_micros=account.debits_pending),
    )


def _given_back(
    connection: Connection, payment: Payment, amount_micros: int, *, actor: str, now: datetime, event: str | None
) -> None:
    """The payment's refunded total grows by ``amount_micros``; all of it refunded, it becomes refunded."""
    refunded = payment.refunded_micros + amount_micros
    store.update_payment(connection, payment.id, now=now, refunded_micros=refunded)
    detail = f"refunded {format_amount(amount_micros, payment.currency)}"
    current = present(store.get_payment(connection, payment.id), "payment")
    if refunded == payment.amount_micros:
        transition(
            connection, current, PaymentState.REFUNDED, actor=actor, now=now, detail=detail, gateway_event_id=event
        )
    else:
        note(connection, current, actor=actor, detail=detail, gateway_event_id=event)


def record_gateway_refund(
    connection: Connection,
    payment: Payment,
    *,
    refunded_in_all_micros: int,
    actor: str,
    gateway_event_id: str,
    now: datetime,
) -> RefundOutcome:
    """A refund made at the gateway: ``refunded_in_all_micros`` is the payment's refunded total there."""
    payer = present(tree_store.get_node(connection, payment.node_id), "a payment's payer")
    known = accounted_micros(store.refunds_of(connection, payment.id))
    amount = refunded_in_all_micros - known
    if amount <= 0:
        return RefundOutcome.KNOWN
    key = f"total-{refunded_in_all_micros}"
    wallet, clearing, unspent = _accounts(connection, payment, payer)
    try:
        check_refund(
            amount_micros=amount,
            paid_micros=payment.amount_micros,
            refunded_micros=known,
            unspent=unspent,
            currency=payment.currency,
        )
    except Refusal as refusal:
        store.insert_refund(
            connection,
            payment_id=payment.id,
            key=key,
            amount_micros=amount,
            state=RefundState.REFUSED,
            origin=RefundOrigin.GATEWAY,
            external_id=None,
            transfer_id=None,
            reason=refusal.message,
            now=now,
        )
        note(
            connection,
            payment,
            actor=actor,
            gateway_event_id=gateway_event_id,
            detail=f"refund of {format_amount(amount, payment.currency)} at the gateway not reversed: {refusal}",
        )
        audit(
            connection,
            None,
            action="payment.refund_refused",
            target_type="payment",
            target_id=payment.id,
            node=payer,
            actor=actor,
            after={"amount_micros": amount, "reason": refusal.reason},
        )
        log.warning("refund_refused", payment=payment.id, amount_micros=amount, reason=refusal.reason)
        return RefundOutcome.REFUSED
    transfer_id = refund_transfer_id(present(payment.transfer_id, "a confirmed payment's transfer"), key)
    request = TransferRequest(
        id=transfer_id,
        amount_micros=amount,
        debit_account_id=wallet,
        credit_account_id=clearing,
        kind=TransferKind.REFUND,
        reference=f"refund of shop payment {payment.id}",
    )
    ledger_store.execute(connection, [request], now=now)
    store.insert_refund(
        connection,
        payment_id=payment.id,
        key=key,
        amount_micros=amount,
        state=RefundState.SUCCEEDED,
        origin=RefundOrigin.GATEWAY,
        external_id=None,
        transfer_id=transfer_id,
        reason="made at the gateway",
        now=now,
    )
    audit(
        connection,
        None,
        action="payment.refund",
        target_type="payment",
        target_id=payment.id,
        node=payer,
        actor=actor,
        after={"amount_micros": amount, "transfer": transfer_id, "origin": "gateway"},
    )
    _given_back(connection, payment, amount, actor=actor, now=now, event=gateway_event_id)
    return RefundOutcome.RECORDED


def _reserve(
    connection: Connection,
    payment_id: int,
    *,
    amount_micros: int,
    reason: str,
    request_id: str,
    principal: Principal | None,
) -> Refund:
    payment, _ = seller_payment(connection, payment_id, principal, Action.SHOP_MANAGE)
    existing = store.find_refund_by_key(connection, payment.id, request_id)
    if existing is not None:
        if existing.amount_micros != amount_micros:
            raise Refusal("exists_with_different_fields", f"refund {request_id} was asked with another amount")
        return existing
    if payment.state is not PaymentState.CONFIRMED or payment.transfer_id is None:
        raise Refusal("payment_not_refundable", f"a {payment.state} payment has nothing to refund")
    payer = present(tree_store.get_node(connection, payment.node_id), "a payment's payer")
    wallet, clearing, unspent = _accounts(connection, payment, payer)
    check_refund(
        amount_micros=amount_micros,
        paid_micros=payment.amount_micros,
        refunded_micros=accounted_micros(store.refunds_of(connection, payment.id)),
        unspent=unspent,
        currency=payment.currency,
    )
    minor_from_micros(amount_micros, payment.currency)
    now = utc_now()
    refund_id = store.insert_refund(
        connection,
        payment_id=payment.id,
        key=request_id,
        amount_micros=amount_micros,
        state=RefundState.PENDING,
        origin=RefundOrigin.TOLLWAY,
        external_id=None,
        transfer_id=None,
        reason=reason,
        now=now,
    )
    transfer_id = refund_transfer_id(payment.transfer_id, f"r{refund_id}")
    request = TransferRequest(
        id=transfer_id,
        amount_micros=amount_micros,
        debit_account_id=wallet,
        credit_account_id=clearing,
        kind=TransferKind.REFUND,
        phase=Phase.PENDING,
        reference=f"refund of shop payment {payment.id}",
    )
    ledger_store.execute(connection, [request], now=now)
    store.update_refund(connection, refund_id, now=now, transfer_id=transfer_id)
    note(
        connection,
        payment,
        actor=actor_of(principal),
        gateway_event_id=None,
        detail=f"refund of {format_amount(amount_micros, payment.currency)} reserved: {reason}",
    )
    audit(
        connection,
        principal,
        action="payment.refund",
        target_type="payment",
        target_id=payment.id,
        node=payer,
        after={"amount_micros": amount_micros, "transfer": transfer_id, "reason": reason, "origin": "tollway"},
    )
    return present(store.get_refund(connection, refund_id), "the refund just made")


def _settle(
    connection: Connection, refund_id: int, *, external_id: str | None, failure: Refusal | None, actor: str
) -> RefundRecord:
    """The gateway answered: post the reservation (given back) or void it (nothing moved)."""
    refund = present(store.get_refund(connection, refund_id), "refund")
    payment = present(store.get_payment(connection, refund.payment_id, lock=True), "a refund's payment")
    refund = present(store.get_refund(connection, refund_id), "refund")  # again, under the payment's lock
    if refund.state is RefundState.PENDING:
        now = utc_now()
        transfer_id = present(refund.transfer_id, "a pending refund's transfer")
        phase = Phase.VOID if failure else Phase.POST
        resolution = TransferRequest(
            id=f"{transfer_id}:{phase}",
            amount_micros=None,
            kind=TransferKind.REFUND,
            phase=phase,
            pending_id=transfer_id,
            reference=f"refund of shop payment {payment.id}",
        )
        ledger_store.execute(connection, [resolution], now=now)
        if failure is not None:
            store.update_refund(connection, refund.id, now=now, state=RefundState.FAILED, reason=str(failure))
            note(connection, payment, actor=actor, gateway_event_id=None, detail=f"refund failed: {failure}")
        else:
            store.update_refund(connection, refund.id, now=now, state=RefundState.SUCCEEDED, external_id=external_id)
            _given_back(connection, payment, refund.amount_micros, actor=actor, now=now, event=None)
    refund = present(store.get_refund(connection, refund_id), "refund")
    current = present(store.get_payment(connection, refund.payment_id), "payment")
    return RefundRecord(refund, record_of(connection, current, history=True))


def refund_payment(
    database: Database,
    settings: PaymentSettings,
    *,
    payment_id: int,
    amount_micros: int,
    reason: str,
    request_id: str,
    principal: Principal | None = None,
) -> RefundRecord:
    """The seller gives back part or all of a confirmed payment, through the gateway it came by.

    ``request_id`` is the idempotency key: a retry answers the same refund, and one left pending by a crash
    between the reservation and the gateway's answer is taken up again (the gateway sees the same key).
    """
    check_request_id(request_id)
    reason = reason.strip()[:REASON_LENGTH_MAX]
    if not reason:
        raise Refusal("reason_required", "a refund needs a reason")
    refund = retried_once_on_conflict(
        database,
        lambda connection: _reserve(
            connection,
            payment_id,
            amount_micros=amount_micros,
            reason=reason,
            request_id=request_id,
            principal=principal,
        ),
    )
    actor = actor_of(principal)
    if refund.state is RefundState.PENDING:
        with database.reading() as connection:
            payment = present(store.get_payment(connection, refund.payment_id), "a refund's payment")
            config = present(store.get_gateway(connection, payment.gateway_id), "a payment's gateway")
        request = RefundRequest(
            payment.external_payment_id,
            refund.amount_micros,
            payment.currency,
            idempotency_key=f"{REFUND_IDEMPOTENCY_PREFIX}{refund.id}",
        )
        try:
            done = gateway_of(config, settings).refund(request)
        except GatewayFailed as failure:
            log.warning("refund_failed", payment=payment.id, refund=refund.id, reason=failure.reason)
            if failure.reason != "gateway_unavailable":  # unreachable: stays reserved, a retry asks again
                refused = failure
                database.run(lambda c: _settle(c, refund.id, external_id=None, failure=refused, actor=actor))
            raise
        return database.run(lambda c: _settle(c, refund.id, external_id=done.external_id, failure=None, actor=actor))
    with database.reading() as connection:
        payment = present(store.get_payment(connection, refund.payment_id), "a refund's payment")
        return RefundRecord(refund, record_of(connection, payment, history=True))
