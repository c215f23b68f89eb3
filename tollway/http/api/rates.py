"""Exchange rates: everyone reads them, the provider sets them."""

from __future__ import annotations

from fastapi import APIRouter

from tollway.access.model import Action, authorize
from tollway.balances import service as balances
from tollway.http.api.nodes import ERRORS
from tollway.http.api.schemas import ExchangeRateIn, ExchangeRateOut
from tollway.http.auth import DatabaseDep, PrincipalDep
from tollway.ledger.exchange import list_rates

router = APIRouter(prefix="/exchange-rates", tags=["exchange rates"], responses=ERRORS)  # type: ignore[arg-type]


@router.get("", summary="The exchange rates, newest first per pair")
def get_rates(database: DatabaseDep, principal: PrincipalDep) -> list[ExchangeRateOut]:
    authorize(principal, Action.EXCHANGE_RATES_READ, None)
    with database.reading() as connection:
        rates = list_rates(connection)
    return [
        ExchangeRateOut(
            base_currency=r.base_currency, quote_currency=r.quote_currency, rate=r.rate, valid_from=r.valid_from
        )
        for r in rates
    ]


@router.post("", status_code=201, summary="Set a rate from now on (provider only)")
def set_rate(body: ExchangeRateIn, database: DatabaseDep, principal: PrincipalDep) -> ExchangeRateOut:
    rate = balances.set_exchange_rate(
        database,
        base_currency=body.base_currency,
        quote_currency=body.quote_currency,
        rate=body.rate,
        principal=principal,
    )
    return ExchangeRateOut(
        base_currency=rate.base_currency, quote_currency=rate.quote_currency, rate=rate.rate, valid_from=rate.valid_from
    )
