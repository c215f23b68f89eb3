"""Receipts and invoices as HTML (Jinja2, every value escaped) and as PDF (WeasyPrint), with the seller's
identity, amounts in the payer's locale (Babel) at the currency's own precision.

WeasyPrint needs Pango from the system (``scripts/install-pdf-libraries``); where it cannot load, a PDF is
refused with ``pdf_unavailable`` and the HTML is still there. It is given no way to fetch anything: a
document is made from its own text only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_percent
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from tollway.errors import Refusal
from tollway.money import to_decimal
from tollway.payments.model import Invoice, minor_unit_exponent
from tollway.payments.records import Receipt

FALLBACK_LOCALE = "en"
LABELS = {
    "amount": "Amount",
    "customer": "Customer",
    "date": "Date",
    "description": "Description",
    "gateway": "Paid by",
    "issued": "Issued",
    "net": "Net",
    "paid_by": "Paid by",
    "payment": "Payment",
    "period": "Period",
    "prices_include_tax": "Prices include tax.",
    "receipt": "Receipt",
    "invoice": "Invoice",
    "refunded": "Refunded",
    "tax_id": "Tax id",
    "tax_included": "Tax included",
    "total": "Total",
    "transfer": "Ledger transfer",
}
GATEWAY_NAMES = {"stripe": "card (Stripe)", "bank_transfer": "bank transfer"}
LINE_WORDS = {  # an invoice's lines, as stored ("{product} by {gateway}", "refund")
    "topup by stripe": "Top-up by card",
    "topup by bank_transfer": "Top-up by bank transfer",
    "plan by stripe": "Plan by card",
    "plan by bank_transfer": "Plan by bank transfer",
    "refund": "Refund",
}


@dataclass(frozen=True, slots=True)
class DocumentWords:
    """The words of a document in one language: the portal's catalogues translate them
    (``tollway/portal/documents.py``); English is the default."""

    labels: Mapping[str, str]
    gateways: Mapping[str, str]
    lines: Mapping[str, str]
    topup: str = "top-up"
    plan: str = "plan %(name)s"


ENGLISH = DocumentWords(LABELS, GATEWAY_NAMES, LINE_WORDS)

_templates = Environment(
    loader=PackageLoader("tollway.payments", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
)


def locale_of(language: str) -> Locale:
    try:
        return Locale.parse(language)
    except (UnknownLocaleError, ValueError):
        return Locale.parse(FALLBACK_LOCALE)


def money(micros: int, currency: str, locale: Locale) -> str:
    """An amount as people read it: the currency's precision, the locale's symbols and separators."""
    digits = minor_unit_exponent(currency)
    value = to_decimal(micros).quantize(Decimal(1).scaleb(-digits))
    return format_currency(value, currency, locale=locale, currency_digits=False, format_type="standard")


def _day(instant: datetime, locale: Locale) -> str:
    return format_date(instant.date(), format="medium", locale=locale)


def _rate(tax_rate_ppm: int, locale: Locale) -> str:
    return format_percent(Decimal(tax_rate_ppm) / 1_000_000, format="#,##0.###%", locale=locale)


def receipt_html(receipt: Receipt, words: DocumentWords = ENGLISH) -> str:
    locale = locale_of(receipt.language)
    payment = receipt.payment.payment
    profile = receipt.seller.profile
    what = words.plan % {"name": receipt.payment.plan} if receipt.payment.plan else words.topup
    values: dict[str, Any] = {
        "language": locale.language,
        "title": f"{words.labels['receipt']} {receipt.number}",
        "labels": words.labels,
        "brand": receipt.seller.brand,
        "legal_name": profile.legal_name,
        "address": profile.address,
        "tax_id": profile.tax_id,
        "confirmed_at": _day(payment.confirmed_at or payment.created_at, locale),
        "payer_name": receipt.payer_name,
        "payer_login": receipt.payment.payer,
        "description": f"{receipt.seller.brand}: {what}",
        "payment_reference": payment.payer_reference or str(payment.id),
        "amount": money(payment.amount_micros, payment.currency, locale),
        "refunded": money(payment.refunded_micros, payment.currency, locale) if payment.refunded_micros else "",
        "tax": money(receipt.tax_micros, payment.currency, locale),
        "tax_rate": _rate(profile.tax_rate_ppm, locale),
        "gateway": words.gateways.get(str(payment.gateway_kind), str(payment.gateway_kind)),
        "transfer_id": payment.transfer_id or "",
    }
    return _templates.get_template("receipt.html").render(values)


def invoice_html(invoice: Invoice, words: DocumentWords = ENGLISH) -> str:
    content = invoice.content
    seller: dict[str, str] = content["seller"]  # type: ignore[assignment]
    customer: dict[str, str] = content["customer"]  # type: ignore[assignment]
    lines: list[dict[str, Any]] = content["lines"]  # type: ignore[assignment]
    tax_rate_ppm = int(content["tax_rate_ppm"])  # type: ignore[call-overload]
    locale = locale_of(str(content["language"]))
    last_day = invoice.period_end - timedelta(days=1)  # the period ends before its end instant
    values: dict[str, Any] = {
        "language": locale.language,
        "title": f"{words.labels['invoice']} {invoice.label}",
        "labels": words.labels,
        "brand": seller["brand"],
        "legal_name": seller["legal_name"],
        "address": seller["address"],
        "tax_id": seller["tax_id"],
        "issued_at": _day(invoice.issued_at, locale),
        "period": f"{_day(invoice.period_start, locale)} \N{EN DASH} {_day(last_day, locale)}",
        "customer_name": customer["name"],
        "customer_login": customer["login"],
        "lines": [
            {
                "at": _day(datetime.fromisoformat(line["at"]), locale),
                "what": words.lines.get(line["what"], line["what"]),
                "payment": line["payment"],
                "amount": money(int(line["amount_micros"]), invoice.currency, locale),
            }
            for line in lines
        ],
        "net": money(invoice.total_micros - invoice.tax_micros, invoice.currency, locale),
        "tax": money(invoice.tax_micros, invoice.currency, locale),
        "tax_rate": _rate(tax_rate_ppm, locale),
        "total": money(invoice.total_micros, invoice.currency, locale),
    }
    return _templates.get_template("invoice.html").render(values)


def _fetch_nothing(url: str, *args: object, **kwargs: object) -> dict[str, object]:
    raise ValueError(f"documents load nothing from outside ({url[:60]})")


def to_pdf(html: str) -> bytes:
    """The document as PDF; ``pdf_unavailable`` where WeasyPrint or its system libraries are missing."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError):
        raise Refusal("pdf_unavailable", "PDF needs WeasyPrint's system libraries: the HTML is available") from None
    pdf: bytes = HTML(string=html, url_fetcher=_fetch_nothing).write_pdf()
    return pdf
