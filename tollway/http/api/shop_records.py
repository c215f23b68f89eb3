"""The shop's records: receipts (HTML and PDF), a seller's billing profile, monthly invoices, payments as CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from tollway.errors import Refusal
from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import Strict
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.money import to_decimal
from tollway.payments import records, render
from tollway.payments.model import BillingProfile, Invoice, tax_rate_ppm_of
from tollway.portal.documents import document_words
from tollway.store.types import ID_MAX

router = APIRouter(tags=["shop"], responses=ERRORS)  # type: ignore[arg-type]
DbId = Annotated[int, Path(ge=1, le=ID_MAX)]
Percent = Annotated[str, Field(pattern=r"^[0-9]{1,3}(\.[0-9]{1,4})?$", examples=["20", "7.5"])]
Month = Annotated[str, Field(pattern=r"^[12][0-9]{3}-(0[1-9]|1[0-2])$", examples=["2026-11"])]  # years 1000-2999
PRIVATE = {"Cache-Control": "private, no-store"}
# An HTML document's refusals are still JSON problems: declared so, not as text/html (FastAPI would document a
# route's extra responses in its own media type).
HTML_DOCUMENT_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": "A refusal (a Problem)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for status in ERRORS
}


class BillingProfileIn(Strict):
    legal_name: Annotated[str, Field(min_length=1, max_length=200)]
    address: Annotated[str, Field(max_length=400)] = ""
    tax_id: Annotated[str, Field(max_length=64)] = ""
    tax_rate_percent: Percent = "0"
    invoice_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9/_-]{0,15}$")] = "INV"


class BillingProfileOut(BaseModel):
    legal_name: str
    address: str
    tax_id: str
    tax_rate_percent: Decimal
    invoice_prefix: str


class IssueIn(Strict):
    month: Month


class IssueOut(BaseModel):
    issued: int
    already_issued: int


class InvoiceOut(BaseModel):
    id: int
    number: str
    customer: str
    period_start: datetime
    period_end: datetime
    currency: str
    total: Decimal
    tax: Decimal
    issued_at: datetime


def profile_out(profile: BillingProfile) -> BillingProfileOut:
    return BillingProfileOut(
        legal_name=profile.legal_name,
        address=profile.address,
        tax_id=profile.tax_id,
        tax_rate_percent=(Decimal(profile.tax_rate_ppm) / 10_000).normalize(),
        invoice_prefix=profile.invoice_prefix,
    )


def invoice_out(invoice: Invoice) -> InvoiceOut:
    customer: dict[str, str] = invoice.content["customer"]  # type: ignore[assignment]
    return InvoiceOut(
        id=invoice.id,
        number=invoice.label,
        customer=customer["login"],
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        currency=invoice.currency,
        total=to_decimal(invoice.total_micros),
        tax=to_decimal(invoice.tax_micros),
        issued_at=invoice.issued_at,
    )


def invoice_html(invoice: Invoice) -> str:
    """The invoice in its customer's language, as it was when issued."""
    return render.invoice_html(invoice, document_words(str(invoice.content["language"])))


def pdf(document: bytes, filename: str) -> Response:
    headers = PRIVATE | {"Content-Disposition": f'inline; filename="{filename}"'}
    return Response(document, media_type="application/pdf", headers=headers)


@router.put("/nodes/{login}/billing-profile", summary="How a seller appears on its receipts and invoices")
def put_billing_profile(
    login: str, body: BillingProfileIn, database: DatabaseDep, principal: PrincipalDep
) -> BillingProfileOut:
    profile = BillingProfile(
        legal_name=body.legal_name,
        address=body.address,
        tax_id=body.tax_id,
        tax_rate_ppm=tax_rate_ppm_of(body.tax_rate_percent),
        invoice_prefix=body.invoice_prefix,
    )
    return profile_out(records.set_billing_profile(database, seller_login=login, profile=profile, principal=principal))


@router.get("/nodes/{login}/billing-profile", summary="A seller's billing profile")
def get_billing_profile(login: str, database: DatabaseDep, principal: PrincipalDep) -> BillingProfileOut:
    return profile_out(records.get_billing_profile(database, seller_login=login, principal=principal))


@router.get(
    "/payments/{payment_id}/receipt",
    response_class=HTMLResponse,
    responses=HTML_DOCUMENT_ERRORS,
    summary="A credited payment's receipt",
)
def receipt(payment_id: DbId, database: DatabaseDep, principal: PrincipalDep) -> HTMLResponse:
    found = records.receipt(database, payment_id=payment_id, principal=principal)
    return HTMLResponse(render.receipt_html(found, document_words(found.language)), headers=PRIVATE)


@router.get(
    "/payments/{payment_id}/receipt/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
    summary="A credited payment's receipt, as PDF",
)
def receipt_pdf(payment_id: DbId, database: DatabaseDep, principal: PrincipalDep) -> Response:
    found = records.receipt(database, payment_id=payment_id, principal=principal)
    return pdf(render.to_pdf(render.receipt_html(found, document_words(found.language))), f"{found.number}.pdf")


@router.post("/nodes/{login}/invoices", summary="Issue a seller's invoices of a month that is over (once each)")
def issue(login: str, body: IssueIn, database: DatabaseDep, principal: PrincipalDep) -> IssueOut:
    year, month = (int(part) for part in body.month.split("-"))
    report = records.issue_invoices(database, month=date(year, month, 1), seller_login=login, principal=principal)
    return IssueOut(issued=report.issued, already_issued=report.already_issued)


@router.get("/nodes/{login}/invoices", summary="A customer's invoices, newest first")
def list_invoices(login: str, database: DatabaseDep, principal: PrincipalDep) -> list[InvoiceOut]:
    return [invoice_out(invoice) for invoice in records.invoices_for(database, login=login, principal=principal)]


@router.get(
    "/invoices/{invoice_id}",
    response_class=HTMLResponse,
    responses=HTML_DOCUMENT_ERRORS,
    summary="An invoice, as issued",
)
def invoice(invoice_id: DbId, database: DatabaseDep, principal: PrincipalDep) -> HTMLResponse:
    found = records.get_invoice(database, invoice_id=invoice_id, principal=principal)
    return HTMLResponse(invoice_html(found), headers=PRIVATE)


@router.get(
    "/invoices/{invoice_id}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
    summary="An invoice, as PDF",
)
def invoice_pdf(invoice_id: DbId, database: DatabaseDep, principal: PrincipalDep) -> Response:
    found = records.get_invoice(database, invoice_id=invoice_id, principal=principal)
    return pdf(render.to_pdf(invoice_html(found)), f"{found.label}.pdf")


@router.get(
    "/nodes/{login}/sales.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
    summary="A seller's payments as CSV, for accounting",
)
def sales_csv(
    login: str,
    database: DatabaseDep,
    principal: PrincipalDep,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
) -> Response:
    since, until = (None if t is None else t if t.tzinfo else t.replace(tzinfo=UTC) for t in (since, until))
    if since is not None and until is not None and until <= since:
        raise Refusal("period_invalid", "a period ends after it starts")
    text = records.sales_csv(database, seller_login=login, since=since, until=until, principal=principal)
    headers = PRIVATE | {"Content-Disposition": f'attachment; filename="{login}-sales.csv"'}
    return Response(text, media_type="text/csv", headers=headers)
