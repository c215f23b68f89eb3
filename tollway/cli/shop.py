"""``tollway shop``: a seller's gateways and top-ups, its sales, bank transfers confirmed by hand, refunds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from tollway.cli.common import (
    Amount,
    Cell,
    FormatOption,
    Listing,
    amount,
    database,
    fail,
    one_line_errors,
    out,
    print_listing,
    progress_bar,
)
from tollway.config import Settings
from tollway.money import format_amount
from tollway.payments import records, refunds
from tollway.payments import service as shop
from tollway.payments.model import BillingProfile, PaymentState, TopupOffer, tax_rate_ppm_of
from tollway.payments.service import GatewayView, PaymentRecord, PaymentSettings

shop_app = typer.Typer(help="The online shop: gateways, top-ups, sales, bank transfers, refunds.", no_args_is_help=True)
SALES_SHOWN_DEFAULT = 50


def _gateway_line(view: GatewayView) -> str:
    state = "enabled" if view.enabled else "disabled"
    if view.webhook_path is None:
        return f"{view.seller}: {view.kind} ({state}), shown to payers: {view.details}"
    return (
        f"{view.seller}: {view.kind} ({state}), secret key …{view.secret_key_hint}, "
        f"webhook secret …{view.webhook_secret_hint}; point Stripe's webhook at <your address>{view.webhook_path} "
        "for checkout.session.completed, checkout.session.async_payment_succeeded, "
        "checkout.session.async_payment_failed, checkout.session.expired and charge.refunded"
    )


@shop_app.command("stripe")
@one_line_errors
def stripe_gateway(
    seller: str,
    secret_key: Annotated[
        str, typer.Option(prompt=True, hide_input=True, help="sk_… or rk_… (asked for, not echoed, if left out)")
    ],
    webhook_secret: Annotated[str, typer.Option(prompt=True, hide_input=True, help="whsec_… of the webhook")],
    disable: Annotated[bool, typer.Option(help="Keep it configured but take no new payments.")] = False,
) -> None:
    """Set a seller's own Stripe account; its secrets are sealed and never shown again (their last 4 only)."""
    settings = PaymentSettings.of(Settings())
    view = shop.configure_stripe(
        database(),
        settings,
        seller_login=seller,
        secret_key=secret_key,
        webhook_secret=webhook_secret,
        enabled=not disable,
    )
    out.print(_gateway_line(view), markup=False, highlight=False)


@shop_app.command("bank")
@one_line_errors
def bank_gateway(
    seller: str,
    holder: Annotated[str, typer.Option(help="The account holder's name.")],
    iban: Annotated[str, typer.Option()] = "",
    bic: Annotated[str, typer.Option()] = "",
    bank: Annotated[str, typer.Option(help="The bank's name.")] = "",
    account_number: Annotated[str, typer.Option()] = "",
    routing_number: Annotated[str, typer.Option()] = "",
    instructions: Annotated[str, typer.Option(help="A line for payers, e.g. what to write as the reference.")] = "",
    disable: Annotated[bool, typer.Option()] = False,
) -> None:
    """Set the bank details a seller's payers transfer to (they then declare their transfers)."""
    details = {
        "account_holder": holder,
        "iban": iban,
        "bic": bic,
        "bank_name": bank,
        "account_number": account_number,
        "routing_number": routing_number,
        "instructions": instructions,
    }
    view = shop.configure_bank_transfer(database(), seller_login=seller, details=details, enabled=not disable)
    out.print(_gateway_line(view), markup=False, highlight=False)


@shop_app.command("gateways")
@one_line_errors
def gateways(seller: str) -> None:
    """A seller's gateways (never their secrets)."""
    for view in shop.list_gateways(database(), seller_login=seller):
        out.print(_gateway_line(view), markup=False, highlight=False)


@shop_app.command("topups")
@one_line_errors
def topups(
    seller: str,
    currency: str,
    amounts: Annotated[str, typer.Option(help="Fixed amounts, comma-separated: 10,20,50.")] = "",
    free: Annotated[str | None, typer.Option(help="A free amount between two bounds: 5-500.")] = None,
) -> None:
    """What a seller's shop offers as top-ups in one currency."""
    fixed = tuple(amount(part.strip()) for part in amounts.split(",") if part.strip())
    low = high = None
    if free is not None:
        low_text, _, high_text = free.partition("-")
        low, high = amount(low_text.strip()), amount(high_text.strip() or "0")
    offer = shop.put_topup_offer(database(), seller_login=seller, offer=TopupOffer(currency.upper(), fixed, low, high))
    shown = ", ".join(format_amount(a, offer.currency) for a in offer.amounts_micros) or "no fixed amount"
    if offer.free_min_micros is not None and offer.free_max_micros is not None:
        shown += (
            f"; any amount from {format_amount(offer.free_min_micros, offer.currency)}"
            f" to {format_amount(offer.free_max_micros, offer.currency)}"
        )
    out.print(f"{seller} offers {shown}", markup=False, highlight=False)


def _sales_listing(records: list[PaymentRecord]) -> Listing:
    rows: list[list[Cell]] = []
    for record in records:
        payment = record.payment
        rows.append(
            [
                payment.id,
                record.payer,
                str(payment.gateway_kind),
                Amount(payment.amount_micros, payment.currency),
                str(payment.state) + (f" ({payment.reason})" if payment.reason else ""),
                payment.payer_reference,
                payment.created_at.isoformat(timespec="seconds"),
            ]
        )
    return Listing(("payment", "payer", "gateway", "amount", "state", "reference", "created"), rows)


@shop_app.command("sales")
@one_line_errors
def sales(
    seller: str,
    state: Annotated[
        PaymentState | None, typer.Option(help="Only payments in this state (pending: to decide).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=shop.PAYMENTS_PAGE_MAX)] = SALES_SHOWN_DEFAULT,
    output_format: FormatOption = None,
) -> None:
    """The payments made to a seller, newest first."""
    records = shop.sales_of(database(), seller_login=seller, state=state, limit=limit)
    print_listing(_sales_listing(records), output_format)


@shop_app.command("confirm")
@one_line_errors
def confirm(payment: int, note: Annotated[str, typer.Option(help="What you matched it with.")] = "") -> None:
    """Confirm a declared bank transfer: its payer's wallet is credited (once, however often confirmed)."""
    record = shop.decide_bank_transfer(database(), payment_id=payment, accept=True, note_text=note)
    done = record.payment
    out.print(f"payment {done.id}: {done.state}, {format_amount(done.amount_micros, done.currency)} to {record.payer}")


@shop_app.command("reject")
@one_line_errors
def reject(payment: int, note: Annotated[str, typer.Option(help="Why: the payer sees it.")]) -> None:
    """Reject a declared bank transfer that never arrived."""
    record = shop.decide_bank_transfer(database(), payment_id=payment, accept=False, note_text=note)
    out.print(f"payment {record.payment.id}: {record.payment.state}")


@shop_app.command("refund")
@one_line_errors
def refund(
    payment: int,
    value: Annotated[str, typer.Argument(metavar="AMOUNT")],
    request_id: Annotated[str, typer.Option("--id", help="Idempotency key: a retry refunds nothing twice.")],
    reason: Annotated[str, typer.Option()],
) -> None:
    """Give back unspent money of a payment through its gateway (Stripe refunds the card)."""
    done = refunds.refund_payment(
        database(),
        PaymentSettings.of(Settings()),
        payment_id=payment,
        amount_micros=amount(value),
        reason=reason,
        request_id=request_id,
    )
    paid = done.payment.payment
    out.print(
        f"refund {done.refund.id}: {done.refund.state}, {format_amount(done.refund.amount_micros, paid.currency)}; "
        f"payment {paid.id} {paid.state}, {format_amount(paid.refunded_micros, paid.currency)} refunded in all"
    )


@shop_app.command("billing")
@one_line_errors
def billing(
    seller: str,
    legal_name: Annotated[str, typer.Option(help="The name printed on receipts and invoices.")],
    address: Annotated[str, typer.Option()] = "",
    tax_id: Annotated[str, typer.Option(help="The seller's tax id (VAT number).")] = "",
    tax_rate: Annotated[str, typer.Option(help="Tax included in the prices, in percent: 20, 7.5.")] = "0",
    prefix: Annotated[str, typer.Option(help="Invoice numbers read PREFIX-000001.")] = "INV",
) -> None:
    """How a seller appears on its receipts and invoices (its invoice numbers carry on where they were)."""
    profile = BillingProfile(legal_name, address, tax_id, tax_rate_ppm_of(tax_rate), prefix)
    records.set_billing_profile(database(), seller_login=seller, profile=profile)
    out.print(f"{seller}: {legal_name}, tax id {tax_id or '(none)'}, tax {tax_rate} %, invoices {prefix}-…")


@shop_app.command("invoices")
@one_line_errors
def invoices(
    month: Annotated[str, typer.Option(help="The month, over: 2026-11.")],
    seller: Annotated[str | None, typer.Option(help="Only this seller's (default: every seller's).")] = None,
) -> None:
    """Issue the month's invoices, one per customer that paid or was refunded; a rerun issues only the missing."""
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise fail(f"a month is written 2026-11, not {month!r}", 2) from None
    with progress_bar() as progress:
        task = progress.add_task("issuing invoices", total=None)
        report = records.issue_invoices(
            database(),
            month=first,
            seller_login=seller,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    out.print(f"{report.issued} invoices issued, {report.already_issued} issued before")


@shop_app.command("export")
@one_line_errors
def export(
    seller: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="The CSV file to write (made anew).")],
    since: Annotated[datetime | None, typer.Option(help="From this instant (UTC unless it says).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Until this instant, excluded.")] = None,
) -> None:
    """A seller's payments as CSV for accounting (every cell safe to open in a spreadsheet)."""
    since, until = (None if t is None else t if t.tzinfo else t.replace(tzinfo=UTC) for t in (since, until))
    text = records.sales_csv(database(), seller_login=seller, since=since, until=until)
    try:
        with output.open("x", encoding="utf-8", newline="") as file:
            file.write(text)
    except FileExistsError:
        raise fail(f"{output} exists: name a new file", 2) from None
    out.print(f"{text.count(chr(10)) - 1} payments written to {output}")
