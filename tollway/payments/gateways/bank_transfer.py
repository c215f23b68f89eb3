"""Manual bank transfer: the payer is shown its seller's bank details and a reference, pays from its bank,
declares the transfer, and the seller confirms or rejects it by hand. Nothing is asked of any outside system."""

from __future__ import annotations

from tollway.errors import Refusal
from tollway.payments.gateways import Checkout, CheckoutRequest, RefundDone, RefundRequest
from tollway.payments.model import GatewayKind

DETAIL_FIELDS = ("account_holder", "bank_name", "iban", "bic", "account_number", "routing_number", "instructions")
DETAIL_LENGTH_MAX = 400
REFERENCE_PREFIX = "TW"


def check_details(details: dict[str, str]) -> dict[str, str]:
    """The bank details shown to payers: known fields only, short, printable, and an account to pay into."""
    unknown = sorted(set(details) - set(DETAIL_FIELDS))
    if unknown:
        raise Refusal("bank_details_invalid", f"unknown bank detail {', '.join(unknown)}")
    cleaned = {name: value.strip() for name, value in details.items() if value and value.strip()}
    for name, value in cleaned.items():
        if len(value) > DETAIL_LENGTH_MAX or not value.replace("\n", " ").isprintable():
            raise Refusal("bank_details_invalid", f"the {name.replace('_', ' ')} is too long or not printable")
    if not cleaned.get("account_holder") or not (cleaned.get("iban") or cleaned.get("account_number")):
        raise Refusal("bank_details_invalid", "bank details name the account holder and an IBAN or account number")
    return cleaned


def payment_reference(payment_id: int) -> str:
    """What the payer writes on its transfer, so the seller can match the money to the payment."""
    return f"{REFERENCE_PREFIX}-{payment_id:08d}"


class BankTransferGateway:
    kind = GatewayKind.BANK_TRANSFER

    def start(self, request: CheckoutRequest) -> Checkout:
        return Checkout(external_id=None, redirect_url=None)

    def refund(self, request: RefundRequest) -> RefundDone:
        return RefundDone(external_id=None)  # the seller sends the money back from its bank
