"""Stripe's webhooks, one URL per seller's gateway: verified, then acted on exactly once.

The signature is checked on the raw body with the gateway's own signing secret (another seller's secret does
not verify). The event's id is recorded in the same transaction as what the event does (a credit, a refund),
before it does it: a redelivered event, or the same event arriving at the same moment in another process,
meets that row (the second waits for the first to commit on PostgreSQL, or for the write lock on SQLite) and
changes nothing. A payment's transfer id derives from its Checkout Session's id, a second guard of the same.

A disabled gateway still takes its events: money a customer was charged is credited whatever the seller's
settings say now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection

from tollway.clock import utc_now
from tollway.errors import NotFound
from tollway.logs import get_logger
from tollway.payments import refunds, store
from tollway.payments.gateways.stripe import SessionFacts, StripeEvent, charge_facts, session_facts, verify_event
from tollway.payments.model import CREDITED_STATES, GatewayConfig, GatewayKind, Payment, PaymentState
from tollway.payments.service import PaymentSettings, confirm_in, note, transition, unsealed
from tollway.store.database import Database

log = get_logger("tollway.payments.webhooks")

GATEWAY_ACTOR = "stripe"


class Outcome(StrEnum):
    CREDITED = "credited"
    ALREADY_CREDITED = "already_credited"
    IGNORED_UNPAID = "ignored_unpaid"  # a session completed, but its money has not arrived (a bank debit)
    IGNORED_TYPE = "ignored_type"  # an event Tollway does not act on
    IGNORED_STATE = "ignored_state"  # too late: the payment is past what the event would do
    PAYMENT_UNKNOWN = "payment_unknown"
    CURRENCY_MISMATCH = "refused_currency_mismatch"
    AMOUNT_MISMATCH = "refused_amount_mismatch"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUND_RECORDED = refunds.RefundOutcome.RECORDED.value
    REFUND_KNOWN = refunds.RefundOutcome.KNOWN.value
    REFUND_REFUSED = refunds.RefundOutcome.REFUSED.value


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    event_id: str
    event_type: str
    outcome: str
    payment_id: int | None
    repeated: bool = False  # the event was received before: this delivery changed nothing


def receive_stripe_event(
    database: Database, settings: PaymentSettings, *, gateway_id: int, payload: bytes, signature: str | None
) -> WebhookAnswer:
    """Verify one delivery to gateway ``gateway_id``'s webhook URL and act on it once."""
    with database.reading() as connection:
        config = store.get_gateway(connection, gateway_id)
    if config is None or config.kind is not GatewayKind.STRIPE or config.webhook_secret_sealed is None:
        raise NotFound("gateway", gateway_id)
    event = verify_event(payload, signature, unsealed(settings, config.webhook_secret_sealed, "a webhook secret"))
    answer = database.run(lambda connection: _apply(connection, config, event))
    log.info(
        "stripe_event",
        gateway=gateway_id,
        stripe_event=event.id,
        type=event.type,
        outcome=answer.outcome,
        payment=answer.payment_id,
        repeated=answer.repeated,
    )
    return answer


Handler = Callable[[Connection, GatewayConfig, StripeEvent, datetime], tuple[Outcome, int | None]]


def _apply(connection: Connection, config: GatewayConfig, event: StripeEvent) -> WebhookAnswer:
    now = utc_now()
    first = store.record_gateway_event(
        connection,
        gateway_id=config.id,
        event_id=event.id,
        event_type=event.type,
        outcome="received",
        payment_id=None,
        now=now,
    )
    if not first:
        earlier = store.gateway_event_outcome(connection, config.id, event.id) or "received"
        return WebhookAnswer(event.id, event.type, earlier, None, repeated=True)
    handler = HANDLERS.get(event.type)
    outcome, payment_id = (Outcome.IGNORED_TYPE, None) if handler is None else handler(connection, config, event, now)
    store.set_gateway_event_outcome(connection, config.id, event.id, outcome=str(outcome), payment_id=payment_id)
    return WebhookAnswer(event.id, event.type, str(outcome), payment_id)


def _session_payment(connection: Connection, config: GatewayConfig, facts: SessionFacts) -> Payment | None:
    """The payment a session is for, locked: by the session's id, or (if its checkout answer was never
    recorded) by the payment id the session carries, if that payment is this gateway's and has no session."""
    payment = store.find_payment_by_external(connection, config.id, facts.session_id, lock=True)
    if payment is not None or facts.payment_reference is None:
        return payment
    payment = store.get_payment(connection, int(facts.payment_reference), lock=True)
    if payment is None or payment.gateway_id != config.id or payment.external_id not in (None, facts.session_id):
        return None
    return payment


def _mismatch(payment: Payment, facts: SessionFacts) -> Outcome | None:
    if facts.currency != payment.currency:
        return Outcome.CURRENCY_MISMATCH
    if facts.amount_micros != payment.amount_micros:
        return Outcome.AMOUNT_MISMATCH
    return None


def _session_paid(
    connection: Connection, config: GatewayConfig, event: StripeEvent, now: datetime
) -> tuple[Outcome, int | None]:
    facts = session_facts(event.object)
    if not facts.paid:
        return Outcome.IGNORED_UNPAID, None
    payment = _session_payment(connection, config, facts)
    if payment is None:
        log.warning("stripe_payment_unknown", gateway=config.id, session=facts.session_id, stripe_event=event.id)
        return Outcome.PAYMENT_UNKNOWN, None
    refused = _mismatch(payment, facts)
    if refused is not None:
        log.error(
            "stripe_payment_refused",
            reason=str(refused),
            payment=payment.id,
            expected=f"{payment.amount_micros} {payment.currency}",
            received=f"{facts.amount_micros} {facts.currency}",
            stripe_event=event.id,
        )
        detail = f"{refused}: Stripe says {facts.amount_micros} {facts.currency} micro-units; nothing credited"
        note(connection, payment, actor=GATEWAY_ACTOR, detail=detail, gateway_event_id=event.id)
        return refused, payment.id
    if payment.state in CREDITED_STATES:
        return Outcome.ALREADY_CREDITED, payment.id
    confirm_in(
        connection,
        payment,
        transfer_key=facts.session_id,
        actor=GATEWAY_ACTOR,
        external_id=facts.session_id,
        external_payment_id=facts.payment_intent,
        gateway_event_id=event.id,
    )
    return Outcome.CREDITED, payment.id


def _session_ended(target: PaymentState, outcome: Outcome) -> Handler:
    """A session whose payment failed (an asynchronous method), or that expired unpaid."""

    def handle(
        connection: Connection, config: GatewayConfig, event: StripeEvent, now: datetime
    ) -> tuple[Outcome, int | None]:
        facts = session_facts(event.object)
        payment = _session_payment(connection, config, facts)
        if payment is None:
            return Outcome.PAYMENT_UNKNOWN, None
        if payment.state not in (PaymentState.CREATED, PaymentState.PENDING):
            return Outcome.IGNORED_STATE, payment.id
        transition(
            connection,
            payment,
            target,
            actor=GATEWAY_ACTOR,
            now=now,
            reason=event.type.rsplit(".", 1)[-1][:64],
            detail=event.type,
            gateway_event_id=event.id,
            external_id=facts.session_id,
        )
        return outcome, payment.id

    return handle


def _charge_refunded(
    connection: Connection, config: GatewayConfig, event: StripeEvent, now: datetime
) -> tuple[Outcome, int | None]:
    facts = charge_facts(event.object)
    payment = store.find_payment_by_external_payment(connection, config.id, facts.payment_intent, lock=True)
    if payment is None or payment.state not in CREDITED_STATES:
        log.warning(
            "stripe_refund_unknown", gateway=config.id, payment_intent=facts.payment_intent, stripe_event=event.id
        )
        return Outcome.PAYMENT_UNKNOWN, None if payment is None else payment.id
    if facts.currency != payment.currency:
        log.error("stripe_refund_refused", reason="currency_mismatch", payment=payment.id, stripe_event=event.id)
        note(
            connection,
            payment,
            actor=GATEWAY_ACTOR,
            detail="refund in another currency: nothing reversed",
            gateway_event_id=event.id,
        )
        return Outcome.CURRENCY_MISMATCH, payment.id
    outcome = refunds.record_gateway_refund(
        connection,
        payment,
        refunded_in_all_micros=facts.amount_refunded_micros,
        actor=GATEWAY_ACTOR,
        gateway_event_id=event.id,
        now=now,
    )
    return Outcome(str(outcome)), payment.id


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _session_paid,
    "checkout.session.async_payment_succeeded": _session_paid,
    "checkout.session.async_payment_failed": _session_ended(PaymentState.FAILED, Outcome.FAILED),
    "checkout.session.expired": _session_ended(PaymentState.CANCELED, Outcome.CANCELED),
    "charge.refunded": _charge_refunded,
}
