"""A seller's tariffs: the provider's and resellers' admins list, create and derive their own tariffs, load
rate sheets into them and see their rates and the accounts that pay at them.

Only the login's own tariffs are here (those its node made): never the tariffs of its owners, never what they
charge it. Another tariff, the tariff it pays at included, answers 404 as one that does not exist. Every read
and change goes through the service the API calls (``tollway.rating.service``) with the visitor's principal.
A derived tariff whose base is the tariff the login pays at says so without naming it or showing its rates.

A rate sheet (Tollway's CSV or VoipSwitch's) is read whole before anything is written: a sheet with errors is
refused with every error's line and reason (the first ``SHEET_ERRORS_MAX``, and the count of all) and the
tariff keeps its rows. The browser shows the upload's progress (``portal.js``), then "checking" while the
server reads the sheet. Assigning a tariff is the account page's form (``pages/accounts.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from tollway.errors import NotFound, Refusal
from tollway.http.errors import status_for
from tollway.portal import staff
from tollway.portal.i18n import N_
from tollway.portal.messages import refusal_text
from tollway.portal.navigation import NavItem
from tollway.portal.pages.settings import parse_amount, parse_number
from tollway.portal.web import ADMIN_ROLES, AdminDep, Visitor, redirect, render
from tollway.rating import service as rating
from tollway.rating.rates import RateRow
from tollway.rating.sheets import Layout, SheetError, SheetRefused
from tollway.rating.tariff import TIME_SECONDS_MAX, Defaults, Derivation, Tariff

router = APIRouter()
NAVIGATION = (NavItem("/tariffs", N_("Tariffs"), ADMIN_ROLES, order=30),)
TARIFFS_LISTED_MAX = 200  # a seller's tariffs on one page (and offered as bases)
RATES_PAGE_SIZE = 50
PAYERS_LISTED_MAX = 100
MULTIPLIER_DECIMALS_MAX = 6
EXAMPLE_MULTIPLIER = Decimal("1.10")
SECONDS_TYPED_MAX = 6  # digits of a number of seconds typed in a form
SAVED = {
    "created": N_("The tariff is created."),
    "sheet": N_("The rate sheet is loaded."),
}
LAYOUTS = {
    Layout.NATIVE: N_("Tollway CSV (comma-separated, with a header)"),
    Layout.VOIPSWITCH: N_("VoipSwitch (semicolon-separated)"),
}
SHEET_REASONS: dict[str, str] = {
    "sheet_empty": N_("The sheet has no rate rows."),
    "sheet_too_large": N_("The sheet is too large."),
    "line_too_long": N_("The line is too long."),
    "encoding_invalid": N_("The line is not UTF-8 text."),
    "header_invalid": N_("The header is not one this format reads."),
    "columns_invalid": N_("The line does not have the columns of the format."),
    "columns_too_many": N_("The header has too many columns."),
    "layout_mismatch": N_("The file looks like the other format: choose it."),
    "format_invalid": N_("The line cannot be read as CSV."),
    "prefix_invalid": N_("The prefix is not 1 to 20 digits."),
    "description_invalid": N_("The description is too long or holds characters that are not allowed."),
    "price_invalid": N_("A price is not an amount between 0 and 1,000,000."),
    "value_invalid": N_("A value is not valid."),
    "seconds_invalid": N_("A number of seconds is not between 0 and 86,400."),
    "resolution_invalid": N_("The resolution is not between 1 and 86,400 seconds."),
    "increment_invalid": N_("The increment is not valid."),
    "increment_unsupported": N_("This increment is not supported."),
    "window_invalid": N_("The days or times are not valid."),
    "validity_invalid": N_("The validity dates are not valid."),
    "rows_overlap": N_("Two rows of this prefix could price the same call."),
    "surcharge_unsupported": N_("This surcharge cannot be expressed exactly."),
    "multiplier_invalid": N_("The rate multiplier is not between 0 and 1,000."),
}
SHEET_REASON_OTHER = N_("The line is refused (%(reason)s).")
SecondsField = Annotated[str, Form(max_length=12)]
NameField = Annotated[str, Form(max_length=200)]


@dataclass(frozen=True, slots=True)
class SheetProblem:
    line: int
    reason: str  # translated
    detail: str  # the service's own sentence, in English


def _own_tariffs(visitor: Visitor) -> list[Tariff]:
    return rating.list_tariffs(
        visitor.database, owner_login=visitor.login, limit=TARIFFS_LISTED_MAX, principal=visitor.principal
    )


def tariff_path(name: str) -> str:
    return "/tariffs/" + quote(name, safe=":")


def _list_page(
    visitor: Visitor, *, error: Refusal | None = None, typed: dict[str, str] | None = None, form: str = ""
) -> Response:
    own = _own_tariffs(visitor)
    by_id = {tariff.id: tariff for tariff in own}
    return render(
        visitor,
        "tariffs.html",
        status_code=status_for(error) if error else 200,
        values={
            "tariffs": own,
            "bases": by_id,
            "node": visitor.signed_in.node,
            "error": refusal_text(visitor, error) if error else None,
            "error_form": form,
            "typed": typed or {},
            "example_multiplier": EXAMPLE_MULTIPLIER,
            "tariff_path": tariff_path,
        },
    )


@router.get("/tariffs")
def tariff_list(visitor: AdminDep) -> Response:
    return _list_page(visitor)


def _seconds(text: str, name: str, default: int) -> int:
    typed = text.strip()
    if not typed:
        return default
    if not (typed.isascii() and typed.isdigit() and len(typed) <= SECONDS_TYPED_MAX):
        raise Refusal("seconds_invalid", f"{name} is a whole number of seconds")
    if int(typed) > TIME_SECONDS_MAX:
        raise Refusal("seconds_invalid", f"{name} is at most {TIME_SECONDS_MAX} seconds")
    return int(typed)


@router.post("/tariffs")
def create_tariff(
    visitor: AdminDep,
    name: NameField = "",
    currency: Annotated[str, Form(max_length=8)] = "",
    minimal_time: SecondsField = "",
    resolution: SecondsField = "",
    grace_period: SecondsField = "",
) -> Response:
    typed = {
        "name": name,
        "currency": currency,
        "minimal_time": minimal_time,
        "resolution": resolution,
        "grace_period": grace_period,
    }
    try:
        resolution_seconds = _seconds(resolution, "resolution", 1)
        if resolution_seconds == 0:
            raise Refusal("resolution_invalid", "the resolution is at least one second")
        defaults = Defaults(
            _seconds(minimal_time, "minimal_time", 0), resolution_seconds, _seconds(grace_period, "grace_period", 0)
        )
        tariff = rating.create_tariff(
            visitor.database,
            owner_login=visitor.login,
            name=name.strip(),
            currency=currency.strip().upper() or None,
            defaults=defaults,
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return _list_page(visitor, error=refusal, typed=typed, form="create")
    return redirect(f"{tariff_path(tariff.name)}?saved=created")


def _derivation(multiplier: str, addition: str, language: str) -> Derivation:
    factor = parse_number(multiplier.strip() or "1", language, reason="multiplier_invalid")
    if not factor.is_finite() or factor != factor.quantize(Decimal(1).scaleb(-MULTIPLIER_DECIMALS_MAX)):
        raise Refusal("multiplier_invalid", "a multiplier has at most six decimal places")
    return Derivation(factor, parse_amount(addition.strip() or "0", language))


@router.post("/tariffs/derived")
def create_derived(
    visitor: AdminDep,
    derived_name: NameField = "",
    base: NameField = "",
    multiplier: Annotated[str, Form(max_length=40)] = "",
    addition: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """A tariff that follows one of the login's own tariffs: price x multiplier + addition (per minute)."""
    typed = {"derived_name": derived_name, "base": base, "multiplier": multiplier, "addition": addition}
    try:
        own = {tariff.name: tariff for tariff in _own_tariffs(visitor)}
        chosen = own.get(base)
        if chosen is None:
            raise Refusal("base_tariff_invalid", "derive from one of your own tariffs")
        derivation = _derivation(multiplier, addition, visitor.language)
        tariff = rating.create_tariff(
            visitor.database,
            owner_login=visitor.login,
            name=derived_name.strip(),
            currency=chosen.currency,
            time_zone=chosen.time_zone,
            defaults=chosen.defaults,
            base_name=chosen.name,
            derivation=derivation,
            principal=visitor.principal,
        )
    except Refusal as refusal:
        return _list_page(visitor, error=refusal, typed=typed, form="derive")
    return redirect(f"{tariff_path(tariff.name)}?saved=created")


def own_tariff(visitor: Visitor, name: str) -> tuple[Tariff, int]:
    """One of the login's own tariffs and its number of rows; any other answers 404."""
    tariff, rows = rating.get_tariff(visitor.database, name=name, principal=visitor.principal)
    if tariff.owner_id != visitor.signed_in.node.id:
        raise NotFound("tariff", name)  # its owner's (the tariff it pays at): not shown here
    return tariff, rows


def _rates(
    visitor: Visitor, tariff: Tariff, starting_with: str | None, after: str | None
) -> tuple[list[RateRow], str | None]:
    """A page of the rows the tariff prices with, in prefix order after ``after``, and the prefix the next page
    starts after (None: this is the last)."""
    rows = rating.priced_rows(
        visitor.database,
        name=tariff.name,
        starting_with=starting_with,
        after_prefix=after,
        limit=RATES_PAGE_SIZE,
        principal=visitor.principal,
    )
    return rows, rows[-1].prefix if len(rows) >= RATES_PAGE_SIZE else None


def _problems(visitor: Visitor, refused: SheetRefused) -> list[SheetProblem]:
    def reason(error: SheetError) -> str:
        known = SHEET_REASONS.get(error.reason)
        if known is not None:
            return visitor.gettext(known)
        return visitor.gettext(SHEET_REASON_OTHER, reason=error.reason)

    return [SheetProblem(error.line, reason(error), error.message) for error in refused.errors]


def _loaded_rows(visitor: Visitor) -> int | None:
    rows = visitor.request.query_params.get("rows", "")
    return int(rows) if rows.isascii() and rows.isdigit() and len(rows) <= SECONDS_TYPED_MAX + 3 else None


def tariff_page(
    visitor: Visitor,
    name: str,
    *,
    prefix: str = "",
    after: str = "",
    error: Refusal | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    """A tariff's page: its settings, what it derives from, who pays at it, its rates (paged, by prefix)."""
    tariff, own_rows = own_tariff(visitor, name)
    base = rating.base_of(visitor.database, tariff)
    starting_with = prefix.strip().lstrip("+").replace(" ", "") or None
    try:
        rows, next_after = _rates(visitor, tariff, starting_with, after or None)
    except Refusal as refusal:  # a search that is not digits
        rows, next_after, error = [], None, error or refusal
    saved = visitor.request.query_params.get("saved", "")
    values: dict[str, Any] = {
        "tariff": tariff,
        "own_rows": own_rows,
        "base": base if base is not None and base.owner_id == tariff.owner_id else None,
        "follows_paid": base is not None and base.owner_id != tariff.owner_id,
        "payers": rating.payers_of(
            visitor.database, name=tariff.name, limit=PAYERS_LISTED_MAX, principal=visitor.principal
        ),
        "rows": rows,
        "prefix": prefix.strip(),
        "first_page": not after,
        "next_page": staff.query(prefix=prefix.strip(), after=next_after) if next_after is not None else None,
        "first_page_query": staff.query(prefix=prefix.strip()),
        "path": tariff_path(tariff.name),
        "layouts": LAYOUTS,
        "position_words": staff.position_words,
        "tariff_path": tariff_path,
        "saved": SAVED.get(saved),
        "loaded_rows": _loaded_rows(visitor) if saved == "sheet" else None,
        "error": None,
        "sheet_problems": [],
        "sheet_errors_total": 0,
        "typed": typed or {},
    }
    if isinstance(error, SheetRefused):
        values |= {"sheet_problems": _problems(visitor, error), "sheet_errors_total": error.total}
    elif error is not None:
        values["error"] = refusal_text(visitor, error)
    return render(visitor, "tariff.html", status_code=status_for(error) if error else 200, values=values)


@router.get("/tariffs/{name:path}")
def tariff(
    visitor: AdminDep,
    name: str,
    prefix: Annotated[str, Query(max_length=40)] = "",
    after: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    return tariff_page(visitor, name, prefix=prefix, after=after)


@router.post("/tariffs/{name:path}/sheet")
def upload_sheet(
    visitor: AdminDep,
    name: str,
    sheet: Annotated[UploadFile | None, File()] = None,
    layout: Annotated[str, Form(max_length=16)] = "native",
) -> Response:
    """Replace every row of the tariff with the sheet's, or refuse it whole listing every error by line."""
    tariff, _ = own_tariff(visitor, name)
    try:
        chosen = Layout(layout)
    except ValueError:
        return tariff_page(visitor, name, error=Refusal("layout_invalid", "choose a format offered"))
    if sheet is None:
        return tariff_page(visitor, name, error=Refusal("sheet_required", "choose a rate sheet file"))
    try:
        count = rating.import_sheet(
            visitor.database, name=tariff.name, stream=sheet.file, layout=chosen, principal=visitor.principal
        )
    except NotFound:
        raise
    except Refusal as refusal:
        return tariff_page(visitor, name, error=refusal, typed={"layout": layout})
    return redirect(f"{tariff_path(tariff.name)}?saved=sheet&rows={count}")
