"""Receipts' and invoices' words (``tollway/payments/render.py``) in the customer's language: marked here, so
the portal's catalogues carry and translate them with the pages' words, and handed to the renderer."""

from __future__ import annotations

from tollway.payments.render import DocumentWords
from tollway.portal import i18n
from tollway.portal.i18n import N_

LABELS = {
    "amount": N_("Amount"),
    "customer": N_("Customer"),
    "date": N_("Date"),
    "description": N_("Description"),
    "gateway": N_("Paid by"),
    "issued": N_("Issued"),
    "net": N_("Net"),
    "paid_by": N_("Paid by"),
    "payment": N_("Payment"),
    "period": N_("Period"),
    "prices_include_tax": N_("Prices include tax."),
    "receipt": N_("Receipt"),
    "invoice": N_("Invoice"),
    "refunded": N_("Refunded"),
    "tax_id": N_("Tax id"),
    "tax_included": N_("Tax included"),
    "total": N_("Total"),
    "transfer": N_("Ledger transfer"),
}
GATEWAYS = {"stripe": N_("card (Stripe)"), "bank_transfer": N_("bank transfer")}
LINES = {
    "topup by stripe": N_("Top-up by card"),
    "topup by bank_transfer": N_("Top-up by bank transfer"),
    "plan by stripe": N_("Plan by card"),
    "plan by bank_transfer": N_("Plan by bank transfer"),
    "refund": N_("Refund"),
}
TOPUP = N_("top-up")
PLAN = N_("plan %(name)s")


def document_words(language: str) -> DocumentWords:
    """The words of a document for a customer speaking ``language`` (English for a language not spoken here)."""
    gettext = i18n.translations(i18n.spoken(language) or i18n.SOURCE_LANGUAGE).gettext
    return DocumentWords(
        labels={key: gettext(text) for key, text in LABELS.items()},
        gateways={key: gettext(text) for key, text in GATEWAYS.items()},
        lines={key: gettext(text) for key, text in LINES.items()},
        topup=gettext(TOPUP),
        plan=gettext(PLAN),
    )
