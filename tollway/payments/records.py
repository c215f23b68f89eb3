"""The shop's records: a receipt for every payment, a monthly invoice per customer with its seller's identity,
tax rate and tax id, numbered per seller without gaps, and the payments as CSV for accounting.

Numbering: a seller's next invoice number lives in its billing profile and is taken, under a row lock, in the
transaction that issues the invoice. A rollback gives it back; concurrent issuers queue for it; so the numbers
a seller has issued are always 1, 2, 3, … with none missing and none twice.

An invoice is issued once per customer and month (UTC), from the payments confirmed and the refunds made in
it, and kept as issued (its content is stored), so it reads the same however the seller's profile changes
later. Prices in the shop include tax: an invoice shows the tax its total contains.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import MAXYEAR, UTC, date, datetime

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from tollway.access.audit import audit
from tollway.access.model import Action, Principal, authorize
from tollway.clock import utc_now
from tollway.csvsafe import safe_row
from tollway.errors import NotFound, Refusal, present
from tollway.money import to_decimal
from tollway.payments import store
from tollway.payments.model import (
    CREDITED_STATES,
    BillingProfile,
    Invoice,
    invoice_label,
    tax_included_micros,
)
from tollway.payments.service import PAYMENTS_PAGE_MAX, PaymentRecord, record_of, require_seller
from tollway.store.database import Database
from tollway.tree import store as tree_store
from tollway.tree.model import Node
from tollway.tree.service import require_node

INVOICES_PER_RUN_MAX = 100_000
INVOICES_PAGE_MAX = 500
CSV_ROWS_MAX = 100_000
CSV_HEADER = (
    "payment",
    "created_at",
    "confirmed_at",
    "payer",
    "gateway",
    "product",
    "plan",
    "amount",
    "currency",
    "state",
    "refunded",
    "reference",
    "transfer_id",
    "reason",
)


@dataclass(frozen=True, slots=True)
class Seller:
    """A seller as its documents show it."""

    login: str
    brand: str
    profile: BillingProfile


@dataclass(frozen=True, slots=True)
class Receipt:
    number: str
    payment: PaymentRecord
    seller: Seller
    payer_name: str
    language: str
    tax_micros: int


@dataclass(frozen=True, slots=True)
class IssueReport:
    issued: int = 0
    already_issued: int = 0


def seller_identity(connection: Connection, seller: Node) -> Seller:
    brand = store.brand_of(connection, seller.id) or seller.name
    profile = store.get_billing_profile(connection, seller.id) or BillingProfile(legal_name=brand)
    return Seller(seller.login, brand, profile)


def set_billing_profile(
    database: Database, *, seller_login: str, profile: BillingProfile, principal: Principal | None = None
) -> BillingProfile:
    def use_case(connection: Connection) -> BillingProfile:
        seller = require_seller(connection, seller_login, principal)
        before = store.get_billing_profile(connection, seller.id)
        store.put_billing_profile(connection, seller.id, profile, now=utc_now())
        audit(
            connection,
            principal,
            action="shop.billing_profile",
            target_type="node",
            target_id=seller.login,
            node=seller,
            before=None if before is None else asdict(before),
            after=asdict(profile),
        )
        return profile

    return database.run(use_case)


def get_billing_profile(database: Database, *, seller_login: str, principal: Principal | None = None) -> BillingProfile:
    with database.reading() as connection:
        seller = require_seller(connection, seller_login, principal)
        return seller_identity(connection, seller).profile


def receipt(database: Database, *, payment_id: int, principal: Principal | None = None) -> Receipt:
    """The receipt of a credited payment, for its payer, its agent and everyone above it."""
    with database.reading() as connection:
        payment = store.get_payment(connection, payment_id)
        if payment is None:
            raise NotFound("payment", payment_id)
        payer = present(tree_store.get_node(connection, payment.node_id), "a payment's payer")
        try:
            authorize(principal, Action.BALANCE_READ, payer)
        except NotFound:
            raise NotFound("payment", payment_id) from None
        if payment.state not in CREDITED_STATES:
            raise Refusal("payment_not_confirmed", f"payment {payment_id} is {payment.state}: no receipt yet")
        gateway = present(store.get_gateway(connection, payment.gateway_id), "a payment's gateway")
        seller = seller_identity(connection, present(tree_store.get_node(connection, gateway.node_id), "seller"))
        return Receipt(
            number=f"R-{payment.id:0{8}d}",
            payment=record_of(connection, payment),
            seller=seller,
            payer_name=payer.name,
            language=payer.language,
            tax_micros=tax_included_micros(payment.amount_micros, seller.profile.tax_rate_ppm),
        )


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[first instant of the month, first instant of the next), in UTC."""
    if month.year >= MAXYEAR:  # its next month is past what dates hold
        raise Refusal("month_invalid", f"no invoices for {month:%Y-%m}")
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    return start, following


def _ensure_counter(database: Database, seller_id: int) -> None:
    """A seller without a profile gets the default one (its name, no tax), so it has an invoice counter."""

    def use_case(connection: Connection) -> None:
        if store.get_billing_profile(connection, seller_id) is None:
            seller = present(tree_store.get_node(connection, seller_id), "seller")
            store.put_billing_profile(connection, seller_id, seller_identity(connection, seller).profile, now=utc_now())

    with contextlib.suppress(IntegrityError):  # another issuer made it first: it is there now
        database.run(use_case)


class _IssuedMeanwhile(Exception):
    """Another issuer made this invoice while this one waited for the number."""


def _issue_one(connection: Connection, *, seller_id: int, customer_id: int, month: date) -> bool:
    """Issue the customer's invoice for the month, if it has none: False when one was issued already."""
    start, end = month_bounds(month)
    if store.find_invoice(connection, customer_id, start) is not None:
        return False
    number = store.take_invoice_number(connection, seller_id)  # queues concurrent issuers of this seller
    if store.find_invoice(connection, customer_id, start) is not None:
        raise _IssuedMeanwhile  # rolls back: the number is given back
    seller = seller_identity(connection, present(tree_store.get_node(connection, seller_id), "seller"))
    customer = present(tree_store.get_node(connection, customer_id), "customer")
    lines = store.period_lines(connection, seller_id=seller_id, customer_id=customer_id, since=start, until=end)
    total = sum(amount for _, _, _, amount in lines)
    tax = tax_included_micros(total, seller.profile.tax_rate_ppm)
    content: dict[str, object] = {
        "seller": {
            "login": seller.login,
            "brand": seller.brand,
            "legal_name": seller.profile.legal_name,
            "address": seller.profile.address,
            "tax_id": seller.profile.tax_id,
        },
        "customer": {"login": customer.login, "name": customer.name},
        "language": customer.language,
        "tax_rate_ppm": seller.profile.tax_rate_ppm,
        "lines": [
            {"at": at.isoformat(), "payment": payment_id, "what": what, "amount_micros": amount}
            for at, payment_id, what, amount in lines
        ],
    }
    store.insert_invoice(
        connection,
        Invoice(
            id=0,
            seller_id=seller_id,
            number=number,
            label=invoice_label(seller.profile.invoice_prefix, number),
            customer_id=customer_id,
            period_start=start,
            period_end=end,
            currency=customer.currency,
            total_micros=total,
            tax_micros=tax,
            content=content,
            issued_at=utc_now(),
        ),
    )
    return True


def issue_invoices(
    database: Database,
    *,
    month: date,
    seller_login: str | None = None,
    progress: Callable[[int, int], None] = lambda _done, _total: None,
    principal: Principal | None = None,
    now: datetime | None = None,
) -> IssueReport:
    """The month's invoices of one seller (or every seller), one transaction each; a rerun issues only the
    missing ones. ``progress(done, total)`` after each customer."""
    start, end = month_bounds(month)
    if end > (now or utc_now()):
        raise Refusal("month_not_over", "a month's invoices are issued once it is over")
    with database.reading() as connection:
        seller_id = None if seller_login is None else require_seller(connection, seller_login, principal).id
        pairs = store.customers_with_activity(
            connection, since=start, until=end, seller_id=seller_id, limit=INVOICES_PER_RUN_MAX
        )
    issued = already = 0
    for seller in sorted({s for s, _ in pairs}):
        _ensure_counter(database, seller)
    for done, (seller, customer) in enumerate(pairs, start=1):
        try:
            made = database.run(functools.partial(_issue_one, seller_id=seller, customer_id=customer, month=month))
        except (_IssuedMeanwhile, IntegrityError):  # a concurrent issuer made this one
            made = False
        issued += made
        already += not made
        progress(done, len(pairs))
    return IssueReport(issued=issued, already_issued=already)


def invoices_for(database: Database, *, login: str, principal: Principal | None = None) -> list[Invoice]:
    with database.reading() as connection:
        customer = require_node(connection, login)
        authorize(principal, Action.BALANCE_READ, customer)
        return store.invoices_of(connection, customer.id, limit=INVOICES_PAGE_MAX)


def invoices_of_seller(
    database: Database, *, seller_login: str, limit: int = INVOICES_PAGE_MAX, principal: Principal | None = None
) -> list[Invoice]:
    """The invoices a seller issued, newest first."""
    with database.reading() as connection:
        seller = require_seller(connection, seller_login, principal)
        return store.invoices_issued_by(connection, seller.id, limit=min(limit, INVOICES_PAGE_MAX))


def get_invoice(database: Database, *, invoice_id: int, principal: Principal | None = None) -> Invoice:
    with database.reading() as connection:
        invoice = store.get_invoice(connection, invoice_id)
        if invoice is None:
            raise NotFound("invoice", invoice_id)
        customer = present(tree_store.get_node(connection, invoice.customer_id), "an invoice's customer")
        try:
            authorize(principal, Action.BALANCE_READ, customer)
        except NotFound:
            raise NotFound("invoice", invoice_id) from None
        return invoice


def sales_csv(
    database: Database,
    *,
    seller_login: str,
    since: datetime | None = None,
    until: datetime | None = None,
    principal: Principal | None = None,
) -> str:
    """A seller's payments for accounting, newest first, every cell safe to open in a spreadsheet."""
    with database.reading() as connection:
        seller = require_seller(connection, seller_login, principal)
        found = store.list_payments(connection, seller_id=seller.id, since=since, until=until, limit=CSV_ROWS_MAX)
        logins = store.payer_logins(connection, {payment.node_id for payment in found})
        plans = {p.plan_id: store.plan_name(connection, p.plan_id) for p in found if p.plan_id is not None}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for payment in found:
        writer.writerow(
            safe_row(
                (
                    payment.id,
                    payment.created_at.isoformat(),
                    payment.confirmed_at.isoformat() if payment.confirmed_at else "",
                    logins.get(payment.node_id, ""),
                    str(payment.gateway_kind),
                    str(payment.product),
                    plans.get(payment.plan_id, "") if payment.plan_id is not None else "",
                    to_decimal(payment.amount_micros),
                    payment.currency,
                    str(payment.state),
                    to_decimal(payment.refunded_micros),
                    payment.payer_reference,
                    payment.transfer_id,
                    payment.reason,
                )
            )
        )
    return buffer.getvalue()


__all__ = ["PAYMENTS_PAGE_MAX", "IssueReport", "Receipt", "Seller", "issue_invoices", "receipt", "sales_csv"]
