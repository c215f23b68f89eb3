"""The provider's exchange rates: the rates in force and before, newest first per pair, and the form that
sets a pair's rate from now on (``balances.set_exchange_rate``, audited as ``rates.set``).

Provider admins only: for anyone else the page does not exist (404), though every login may read the rates
through the API.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Response

from tollway.balances import service as balances
from tollway.errors import Refusal
from tollway.http.errors import status_for
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.web import PROVIDER_ROLES, ProviderDep, Visitor, redirect, render

router = APIRouter()
NAVIGATION = (NavItem("/exchange-rates", N_("Exchange rates"), PROVIDER_ROLES, order=72),)
SAVED = {"rate": N_("The rate is set from now on.")}
Currency = Annotated[str, Form(max_length=3)]


def rates_page(visitor: Visitor, *, error: Refusal | None = None, typed: dict[str, str] | None = None) -> Response:
    saved = visitor.request.query_params.get("saved", "")
    return render(
        visitor,
        "exchange_rates.html",
        status_code=status_for(error) if error else 200,
        values={
            "rates": balances.exchange_rates(visitor.database, principal=visitor.principal),
            "saved": SAVED.get(saved),
            "error": refusal_text(visitor, error) if error else None,
            "typed": typed or {"base": "", "quote": "", "rate": ""},
        },
    )


@router.get("/exchange-rates")
def rate_list(visitor: ProviderDep) -> Response:
    return rates_page(visitor)


@router.post("/exchange-rates")
def set_rate(
    visitor: ProviderDep,
    base: Currency = "",
    quote: Currency = "",
    rate: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    typed = {"base": base.strip().upper(), "quote": quote.strip().upper(), "rate": rate.strip()}
    try:
        balances.set_exchange_rate(
            visitor.database,
            base_currency=typed["base"],
            quote_currency=typed["quote"],
            rate=typed["rate"].replace(",", "."),  # '4,05' in Polish is 4.05
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return rates_page(visitor, error=refusal, typed=typed)
    return redirect("/exchange-rates?saved=rate")
