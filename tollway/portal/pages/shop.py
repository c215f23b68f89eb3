"""The shop in the portal: the page a payer comes back to from Stripe's checkout (``RETURN_PAGE`` in
``tollway/payments/service.py``), which shows "pending" until the gateway's webhook confirms the payment,
and updates itself (htmx) until then."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from tollway.payments import service as shop
from tollway.payments.model import PaymentState
from tollway.portal.i18n import N_
from tollway.portal.web import SignedInDep, render

router = APIRouter()
STATE_WORDS = {
    PaymentState.CREATED: N_("Not sent to the payment page yet"),
    PaymentState.PENDING: N_("Waiting for confirmation"),
    PaymentState.CONFIRMED: N_("Confirmed"),
    PaymentState.FAILED: N_("Failed"),
    PaymentState.CANCELED: N_("Canceled"),
    PaymentState.REFUNDED: N_("Refunded"),
}
POLL_SECONDS = 3  # how often a pending payment's page asks again
PAYMENT_ID_MAX = 2**63 - 1  # ids are 64-bit


@router.get("/shop/payments/{payment_id}")
def payment(
    payment_id: Annotated[int, Path(ge=1, le=PAYMENT_ID_MAX)], visitor: SignedInDep, outcome: str | None = None
) -> Response:
    record = shop.get_payment(visitor.database, payment_id=payment_id, principal=visitor.principal)
    state = record.payment.state
    return render(
        visitor,
        "shop_payment.html",
        values={
            "payment": record.payment,
            "state_words": STATE_WORDS[state],
            "waiting": state in (PaymentState.CREATED, PaymentState.PENDING),
            "credited": state in (PaymentState.CONFIRMED, PaymentState.REFUNDED),
            "left_the_page": outcome == "canceled",
            "poll_seconds": POLL_SECONDS,
        },
    )
