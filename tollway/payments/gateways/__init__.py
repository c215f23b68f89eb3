"""Payment gateways behind one small interface, in the shape of pretix's payment providers.

The core knows only ``Gateway``: ``start`` a payment (a page to send the payer to, or nothing when the
payer pays outside, as by bank transfer) and ``refund`` part or all of one. What a gateway tells back
later (Stripe's webhooks) is read by that gateway's own module and handed to the service as plain facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tollway.errors import Refusal
from tollway.payments.model import GatewayKind


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    payment_id: int
    amount_micros: int
    currency: str
    description: str  # what the payer sees on the gateway's page
    payer_login: str
    success_url: str
    cancel_url: str
    idempotency_key: str  # the same payment asks the gateway once, however often it is retried


@dataclass(frozen=True, slots=True)
class Checkout:
    external_id: str | None  # the gateway's id for this payment (a Checkout Session)
    redirect_url: str | None  # where the payer goes to pay; None: it pays outside (bank transfer)


@dataclass(frozen=True, slots=True)
class RefundRequest:
    external_payment_id: str | None  # what the gateway refunds (a PaymentIntent)
    amount_micros: int
    currency: str
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class RefundDone:
    external_id: str | None  # the gateway's id for the refund; None when money goes back by hand


class GatewayFailed(Refusal):
    """The gateway could not be reached, or refused the request: nothing was done there."""


class Gateway(Protocol):
    kind: GatewayKind

    def start(self, request: CheckoutRequest) -> Checkout: ...

    def refund(self, request: RefundRequest) -> RefundDone: ...
