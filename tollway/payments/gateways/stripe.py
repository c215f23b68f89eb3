"""Stripe through its official SDK: a Checkout Session made with the seller's own secret key, refunds, and
the seller's webhooks verified on the raw body with its signing secret (``stripe.Webhook.construct_event``).

Stripe's amounts are integers of the currency's minor unit (``tollway.payments.model.minor_unit_exponent``);
they become micro-units exactly, never through a float. Everything read from an event has passed the
signature check, and is still checked for its shape before Tollway acts on it.

The SDK is imported when it is first used (a checkout, a refund, a webhook), not when this module is: it
takes a good part of a second, which every ``tollway`` command would otherwise pay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tollway.errors import Refusal
from tollway.money import check_currency
from tollway.payments.gateways import Checkout, CheckoutRequest, GatewayFailed, RefundDone, RefundRequest
from tollway.payments.model import EXTERNAL_ID_PATTERN, GatewayKind, micros_from_minor, minor_from_micros

if TYPE_CHECKING:
    import stripe
    from stripe.params import RefundCreateParams
    from stripe.params.checkout import SessionCreateParams

SECRET_KEY_PREFIXES = ("sk_live_", "sk_test_", "rk_live_", "rk_test_")  # secret or restricted keys
WEBHOOK_SECRET_PREFIXES = ("whsec_",)
WEBHOOK_TOLERANCE_SECONDS = 300  # the SDK's default tolerance: an event signed longer ago is refused (replay)
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 30
NETWORK_RETRIES_MAX = 2  # the SDK retries with the same idempotency key: safe
PAYMENT_METADATA_KEY = "tollway_payment"  # our payment's id, carried by the session
DESCRIPTION_LENGTH_MAX = 120
ERROR_MESSAGE_LENGTH_MAX = 200


def _sdk() -> ModuleType:
    import stripe

    return stripe


class StripeGateway:
    """One seller's Stripe account; a client per seller, so no key is ever shared between sellers."""

    kind = GatewayKind.STRIPE

    def __init__(self, secret_key: str, *, api_base: str | None = None) -> None:
        stripe = _sdk()
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=NETWORK_RETRIES_MAX,
            http_client=stripe.RequestsClient(timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)),
        )

    def start(self, request: CheckoutRequest) -> Checkout:
        reference = {PAYMENT_METADATA_KEY: str(request.payment_id), "tollway_payer": request.payer_login}
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency.lower(),
                        "unit_amount": minor_from_micros(request.amount_micros, request.currency),
                        "product_data": {"name": request.description[:DESCRIPTION_LENGTH_MAX]},
                    },
                }
            ],
            "client_reference_id": str(request.payment_id),
            "metadata": reference,
            "payment_intent_data": {"metadata": reference},
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
        }
        try:
            session = self._client.v1.checkout.sessions.create(params, {"idempotency_key": request.idempotency_key})
        except _sdk().StripeError as error:
            raise _failed(error) from None
        if not isinstance(session.id, str) or not EXTERNAL_ID_PATTERN.match(session.id) or not session.url:
            raise GatewayFailed("gateway_answer_invalid", "Stripe answered without a session id and page")
        return Checkout(external_id=session.id, redirect_url=session.url)

    def refund(self, request: RefundRequest) -> RefundDone:
        if request.external_payment_id is None:
            raise Refusal("payment_not_refundable", "Stripe has no payment to refund for this one")
        params: RefundCreateParams = {
            "payment_intent": request.external_payment_id,
            "amount": minor_from_micros(request.amount_micros, request.currency),
        }
        try:
            refund = self._client.v1.refunds.create(params, {"idempotency_key": request.idempotency_key})
        except _sdk().StripeError as error:
            raise _failed(error) from None
        if refund.status not in ("succeeded", "pending"):
            raise GatewayFailed("gateway_refused", f"Stripe answered the refund with status {refund.status}")
        return RefundDone(external_id=refund.id)


def _failed(error: stripe.StripeError) -> GatewayFailed:
    """What went wrong at Stripe, in its own words (it masks keys in them), never with our secrets."""
    stripe = _sdk()
    message = (error.user_message or str(error) or "no message")[:ERROR_MESSAGE_LENGTH_MAX]
    if isinstance(error, stripe.APIConnectionError):
        return GatewayFailed("gateway_unavailable", f"Stripe could not be reached: {message}")
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return GatewayFailed("gateway_key_invalid", f"Stripe refused the seller's key: {message}")
    return GatewayFailed("gateway_refused", f"Stripe refused: {message}")


@dataclass(frozen=True, slots=True)
class StripeEvent:
    id: str
    type: str
    object: Mapping[str, Any]  # the event's ``data.object``: a Checkout Session, a Charge, ...


def verify_event(payload: bytes, signature_header: str | None, webhook_secret: str) -> StripeEvent:
    """The event, if ``payload`` was signed with this seller's secret within the tolerance; else a refusal."""
    stripe = _sdk()
    try:
        event = stripe.Webhook.construct_event(
            payload, signature_header, webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError:
        raise Refusal("signature_invalid", "the Stripe-Signature header does not verify for this gateway") from None
    except ValueError:  # not UTF-8, not JSON, or not an event
        raise Refusal("payload_invalid", "the body is not a Stripe event") from None
    values = event.to_dict()
    data = values.get("data")
    found = data.get("object") if isinstance(data, dict) else None
    if not isinstance(values.get("id"), str) or not isinstance(values.get("type"), str) or not isinstance(found, dict):
        raise Refusal("payload_invalid", "the event has no id, type or object")
    if not EXTERNAL_ID_PATTERN.match(values["id"]):
        raise Refusal("payload_invalid", "the event's id is not a Stripe id")
    return StripeEvent(id=values["id"], type=values["type"][:64], object=found)


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What a Checkout Session event says about a payment."""

    session_id: str
    paid: bool
    amount_micros: int
    currency: str
    payment_intent: str | None
    payment_reference: str | None  # our payment's id, from the session's metadata


@dataclass(frozen=True, slots=True)
class ChargeFacts:
    """What a ``charge.refunded`` event says: how much of the payment has been refunded in all."""

    payment_intent: str
    amount_refunded_micros: int
    currency: str


def _text(found: Any, what: str) -> str:
    if not isinstance(found, str) or not found:
        raise Refusal("payload_invalid", f"the event has no {what}")
    return found


def _id(found: Any, what: str) -> str:
    text = _text(found, what)
    if not EXTERNAL_ID_PATTERN.match(text):
        raise Refusal("payload_invalid", f"the event's {what} is not a Stripe id")
    return text


def _currency(found: Any) -> str:
    code = _text(found, "currency").upper()
    try:
        return check_currency(code)
    except Refusal:
        raise Refusal("payload_invalid", f"the event's currency {code[:8]!r} is not ISO 4217") from None


def _amount(found: Any, currency: str, what: str) -> int:
    if isinstance(found, bool) or not isinstance(found, int):
        raise Refusal("payload_invalid", f"the event has no {what}")
    return micros_from_minor(found, currency)


def session_facts(session: Mapping[str, Any]) -> SessionFacts:
    currency = _currency(session.get("currency"))
    metadata = session.get("metadata")
    reference = metadata.get(PAYMENT_METADATA_KEY) if isinstance(metadata, dict) else None
    intent = session.get("payment_intent")
    if isinstance(intent, dict):  # expanded
        intent = intent.get("id")
    return SessionFacts(
        session_id=_id(session.get("id"), "session id"),
        paid=session.get("payment_status") == "paid",
        amount_micros=_amount(session.get("amount_total"), currency, "amount_total"),
        currency=currency,
        payment_intent=None if intent is None else _id(intent, "payment intent"),
        payment_reference=reference if isinstance(reference, str) and reference.isdigit() else None,
    )


def charge_facts(charge: Mapping[str, Any]) -> ChargeFacts:
    currency = _currency(charge.get("currency"))
    intent = charge.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    return ChargeFacts(
        payment_intent=_id(intent, "payment intent"),
        amount_refunded_micros=_amount(charge.get("amount_refunded"), currency, "amount_refunded"),
        currency=currency,
    )
