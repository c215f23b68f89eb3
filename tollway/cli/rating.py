"""``tollway tariff``, ``tollway plan`` and ``tollway rate``: tariffs, rate sheets, plans, batch rating."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tollway.cli.common import (
    Amount,
    Cell,
    FormatOption,
    Listing,
    amount,
    database,
    err,
    fail,
    one_line_errors,
    out,
    print_listing,
)
from tollway.clock import utc_now
from tollway.money import format_amount
from tollway.rating import renewals, subscriptions
from tollway.rating import service as rating
from tollway.rating.batch import rate_file
from tollway.rating.dialplan import DialPlan
from tollway.rating.plans import Period
from tollway.rating.quotes import quote
from tollway.rating.sheets import Layout, SheetRefused
from tollway.rating.tariff import Defaults, Derivation, Tariff

tariff_app = typer.Typer(help="Tariffs, their rate sheets and who pays at them.", no_args_is_help=True)
plan_app = typer.Typer(help="Plans: a fee per period and included minutes.", no_args_is_help=True)
SHEET_ERRORS_SHOWN = 50
RENEW_PROGRESS_MIN = 100  # due plans from which ``plan renew`` shows a progress bar
SUSPENSIONS_SHOWN = 200


def _decimal(text: str, what: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise fail(f"{what} {text!r} is not a number", 2) from None


@tariff_app.command("create")
@one_line_errors
def tariff_create(
    owner: Annotated[str, typer.Argument(help="Login of the provider or reseller that owns it.")],
    name: Annotated[str, typer.Argument(help="Its name; it is known as OWNER:NAME.")],
    currency: Annotated[str | None, typer.Option(help="ISO 4217 code (default: the owner's).")] = None,
    time_zone: Annotated[str | None, typer.Option(help="Windows are read in it (default: the owner's).")] = None,
    minimal_time: Annotated[int, typer.Option(min=0, help="Default minimal time, seconds.")] = 0,
    resolution: Annotated[int, typer.Option(min=1, help="Default billing increment, seconds.")] = 1,
    grace_period: Annotated[int, typer.Option(min=0, help="Default grace period, seconds.")] = 0,
    base: Annotated[str | None, typer.Option(help="Follow this tariff (a derived tariff).")] = None,
    multiplier: Annotated[str, typer.Option(help="Derived: price x multiplier ...")] = "1",
    addition: Annotated[str, typer.Option(help="Derived: ... + addition per minute.")] = "0",
) -> None:
    """Create a tariff (or, with --base, a tariff derived from another)."""
    derivation = None
    if base is not None:
        derivation = Derivation(_decimal(multiplier, "multiplier"), amount(addition))
    tariff = rating.create_tariff(
        database(),
        owner_login=owner,
        name=name,
        currency=currency,
        time_zone=time_zone,
        defaults=Defaults(minimal_time, resolution, grace_period),
        base_name=base,
        derivation=derivation,
    )
    out.print(f"created tariff {tariff.name} ({tariff.currency}, {tariff.time_zone})", markup=False)


@tariff_app.command("update")
@one_line_errors
def tariff_update(
    name: str,
    time_zone: Annotated[str | None, typer.Option(help="New time zone.")] = None,
    minimal_time: Annotated[int | None, typer.Option(min=0, help="New default minimal time.")] = None,
    resolution: Annotated[int | None, typer.Option(min=1, help="New default resolution.")] = None,
    grace_period: Annotated[int | None, typer.Option(min=0, help="New default grace period.")] = None,
    multiplier: Annotated[str | None, typer.Option(help="Derived tariffs: new multiplier.")] = None,
    addition: Annotated[str | None, typer.Option(help="Derived tariffs: new addition per minute.")] = None,
) -> None:
    """Change a tariff's time zone, defaults, or multiplier and addition."""
    db = database()
    current, _ = rating.get_tariff(db, name=name)
    defaults = None
    if (minimal_time, resolution, grace_period) != (None, None, None):
        d = current.defaults
        defaults = Defaults(
            d.minimal_time if minimal_time is None else minimal_time,
            d.resolution if resolution is None else resolution,
            d.grace_period if grace_period is None else grace_period,
        )
    derivation = None
    if (multiplier, addition) != (None, None):
        was = current.derivation or Derivation()
        derivation = Derivation(
            was.multiplier if multiplier is None else _decimal(multiplier, "multiplier"),
            was.addition_micros if addition is None else amount(addition),
        )
    tariff = rating.update_tariff(db, name=name, time_zone=time_zone, defaults=defaults, derivation=derivation)
    _print_tariff(tariff, None)


@tariff_app.command("delete")
@one_line_errors
def tariff_delete(name: str) -> None:
    """Delete a tariff nobody pays at and nothing follows."""
    rating.delete_tariff(database(), name=name)
    out.print(f"deleted tariff {name}", markup=False)


@tariff_app.command("list")
@one_line_errors
def tariff_list(owner: str, output_format: FormatOption = None) -> None:
    """The tariffs OWNER made."""
    rows: list[list[Cell]] = []
    for tariff in rating.list_tariffs(database(), owner_login=owner, limit=500):
        d = tariff.defaults
        follows = ""
        if tariff.derivation is not None:
            follows = (
                f"x{tariff.derivation.multiplier} +{format_amount(tariff.derivation.addition_micros, tariff.currency)}"
            )
        rows.append(
            [
                tariff.name,
                tariff.currency,
                tariff.time_zone,
                f"{d.minimal_time}/{d.resolution}/{d.grace_period}",
                follows,
            ]
        )
    headers = ("tariff", "currency", "time zone", "defaults (min/res/grace)", "follows")
    print_listing(Listing(headers, rows), output_format)


def _print_tariff(tariff: Tariff, rows: int | None) -> None:
    d = tariff.defaults
    out.print(f"tariff {tariff.name}: {tariff.currency}, {tariff.time_zone}", markup=False)
    out.print(f"  defaults: minimal time {d.minimal_time} s, resolution {d.resolution} s, grace {d.grace_period} s")
    if tariff.derivation is not None:
        m, a = tariff.derivation.multiplier, format_amount(tariff.derivation.addition_micros, tariff.currency)
        out.print(f"  derived: price x {m} + {a} per minute", markup=False)
    if rows is not None:
        out.print(f"  rows of its own: {rows}")


@tariff_app.command("show")
@one_line_errors
def tariff_show(name: str) -> None:
    """A tariff's settings and how many rows it has."""
    tariff, rows = rating.get_tariff(database(), name=name)
    _print_tariff(tariff, rows)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


@tariff_app.command("import")
@one_line_errors
def tariff_import(
    name: str,
    sheet: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The CSV rate sheet.")],
    layout: Annotated[Layout, typer.Option("--format", help="native or voipswitch.")] = Layout.NATIVE,
) -> None:
    """Replace every row of a tariff with a rate sheet's (the whole sheet or nothing)."""
    size = sheet.stat().st_size
    with (
        Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err, transient=True
        ) as reading,
        sheet.open("rb") as stream,
    ):
        task = reading.add_task("reading", total=size)
        writing = reading.add_task("writing", total=None, visible=False)
        try:
            count = rating.import_sheet(
                database(),
                name=name,
                stream=stream,
                layout=layout,
                on_read=lambda done: reading.update(task, completed=done),
                on_write=lambda done: reading.update(writing, completed=done, visible=True),
            )
        except SheetRefused as refused:
            for problem in refused.errors[:SHEET_ERRORS_SHOWN]:
                err.print(f"{sheet}:{problem.line}: {problem.message} ({problem.reason})", markup=False)
            raise
    out.print(f"imported {count} rows into {name}", markup=False)


@tariff_app.command("export")
@one_line_errors
def tariff_export(
    name: str,
    layout: Annotated[Layout, typer.Option("--format", help="native or voipswitch.")] = Layout.NATIVE,
    own: Annotated[bool, typer.Option(help="Derived tariffs: only their overrides.")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write (default: stdout).")] = None,
) -> None:
    """Write a tariff's rate sheet as CSV (a derived tariff: the prices it gives)."""
    lines = rating.export_sheet(database(), name=name, layout=layout, own_only=own)
    if output is None:
        sys.stdout.writelines(lines)
        return
    with output.open("w", encoding="utf-8", newline="") as file:
        file.writelines(lines)


@tariff_app.command("assign")
@one_line_errors
def tariff_assign(login: str, tariff: str) -> None:
    """Make LOGIN pay at TARIFF (one of its owner's, in its currency)."""
    chosen = rating.assign_tariff(database(), login=login, tariff=tariff)
    out.print(f"{login} pays at {chosen.name}", markup=False)


@tariff_app.command("quote")
@one_line_errors
def tariff_quote(
    login: str,
    number: str,
    duration: Annotated[int, typer.Option(min=0, help="Answered seconds.")] = 60,
    start: Annotated[datetime | None, typer.Option(help="Start instant (default: now, UTC).")] = None,
    output_format: FormatOption = None,
) -> None:
    """What a call by LOGIN to NUMBER would cost at every level of its chain."""
    when = start or datetime.now(UTC)
    normalized, charges = quote(
        database(),
        login=login,
        dialed=number,
        start=when if when.tzinfo else when.replace(tzinfo=UTC),
        duration=duration,
    )
    rows: list[list[Cell]] = [
        [
            c.account,
            c.tariff,
            c.prefix,
            c.description,
            Amount(c.price_micros, c.currency),
            c.billed_seconds,
            c.plan_seconds,
            Amount(c.amount_micros, c.currency),
        ]
        for c in charges
    ]
    headers = ("account", "tariff", "prefix", "destination", "price/min", "billed s", "plan s", "amount")
    print_listing(Listing(headers, rows, title=f"{number} → {normalized}, {duration} s"), output_format)


@tariff_app.command("dial-plan")
@one_line_errors
def tariff_dial_plan(
    login: str,
    country_code: Annotated[str, typer.Option(help="e.g. 44; empty: numbers are always international.")] = "",
    international_prefix: Annotated[str, typer.Option(help="e.g. 00, or 011 in North America.")] = "00",
    national_prefix: Annotated[str, typer.Option(help="e.g. 0, or 1 in North America.")] = "0",
) -> None:
    """Set how LOGIN's dialed numbers become E.164 (its own accounts inherit it)."""
    plan = DialPlan(country_code, international_prefix, national_prefix)
    subscriptions.set_dial_plan(database(), login=login, plan=plan)
    out.print(
        f"{login}: country code {country_code or '-'}, "
        f"international prefix {international_prefix or '-'}, national prefix {national_prefix or '-'}",
        markup=False,
    )


@plan_app.command("create")
@one_line_errors
def plan_create(
    owner: str,
    name: str,
    fee: Annotated[str, typer.Option(help="Fee per period.")],
    period: Annotated[Period, typer.Option(help="day, week or month.")] = Period.MONTH,
    included_minutes: Annotated[int, typer.Option(min=0, help="Minutes included per period.")] = 0,
    prefix: Annotated[list[str] | None, typer.Option(help="A destination it covers (repeat); none: all.")] = None,
    rollover: Annotated[bool, typer.Option(help="Carry unused minutes over, one period's worth at most.")] = False,
) -> None:
    """Create a plan OWNER gives its clients."""
    plan = subscriptions.create_plan(
        database(),
        owner_login=owner,
        name=name,
        fee_micros=amount(fee),
        period=period,
        included_seconds=included_minutes * 60,
        prefixes=tuple(prefix or ()),
        rollover=rollover,
    )
    out.print(f"created plan {plan.name}", markup=False)


@plan_app.command("list")
@one_line_errors
def plan_list(owner: str, output_format: FormatOption = None) -> None:
    """The plans OWNER made."""
    rows: list[list[Cell]] = [
        [
            plan.name,
            Amount(plan.fee_micros, plan.currency),
            str(plan.period),
            plan.included_seconds // 60,
            " ".join(plan.prefixes) or "all",
            "yes" if plan.rollover else "no",
        ]
        for _, plan in subscriptions.list_plans(database(), owner_login=owner, limit=500)
    ]
    print_listing(Listing(("plan", "fee", "period", "included min", "destinations", "rollover"), rows), output_format)


@plan_app.command("assign")
@one_line_errors
def plan_assign(login: str, plan: str) -> None:
    """Give client LOGIN a plan of its owner's; its first period's fee is charged at once."""
    chosen = subscriptions.subscribe(database(), login=login, plan_name=plan)
    fee = format_amount(chosen.plan.fee_micros, chosen.plan.currency)
    until = f"{chosen.period_end:%Y-%m-%d %H:%M:%S} UTC" if chosen.period_end else "-"
    out.print(f"{login} has plan {chosen.plan.name}: paid {fee} for the period until {until}", markup=False)


@plan_app.command("renew")
@one_line_errors
def plan_renew(
    limit: Annotated[
        int, typer.Option(min=1, help="Periods charged per round; rounds follow until nothing is due.")
    ] = renewals.RENEWALS_PER_RUN_MAX,
) -> None:
    """Charge every plan whose period has ended (the keeper does it by itself) and sum up what happened."""
    db = database()
    now = utc_now()
    due = renewals.count_due(db, now=now)
    done: list[renewals.Renewal] = []
    busy = 0
    with _progress() if due >= RENEW_PROGRESS_MIN else nullcontext() as progress:
        task = progress.add_task("renewing", total=due) if progress is not None else None
        visited = 0
        while True:

            def advance(count: int, base: int = visited) -> None:
                if progress is not None and task is not None:
                    progress.update(task, completed=min(due, base + count))

            report = renewals.renew_due(db, now=now, limit=limit, on_progress=advance)
            done.extend(report.renewals)
            busy += report.busy
            visited += len({renewal.subscription_id for renewal in report.renewals})
            if not report.more or not report.renewals:
                break
    _print_renewals(done, busy)


def _print_renewals(done: list[renewals.Renewal], busy: int) -> None:
    if not done:
        out.print("nothing due" + (f" ({busy} held by another process)" if busy else ""), markup=False)
        return
    totals: dict[tuple[renewals.RenewalOutcome, str], tuple[int, int]] = {}
    for renewal in done:
        count, amount_micros = totals.get((renewal.outcome, renewal.currency), (0, 0))
        totals[(renewal.outcome, renewal.currency)] = (count + 1, amount_micros + renewal.amount_micros)
    summary: list[list[Cell]] = []
    for outcome in renewals.RenewalOutcome:
        for (kind, currency), (count, amount_micros) in sorted(totals.items()):
            if kind is outcome:
                summary.append([str(outcome), count, Amount(amount_micros, currency)])
    print_listing(Listing(("outcome", "periods", "fees"), summary), None)
    suspended = [renewal for renewal in done if renewal.outcome is renewals.RenewalOutcome.SUSPENDED]
    if suspended:
        rows: list[list[Cell]] = [
            [renewal.login, renewal.plan, Amount(renewal.amount_micros, renewal.currency)]
            for renewal in suspended[:SUSPENSIONS_SHOWN]
        ]
        print_listing(Listing(("suspended: plan unpaid", "plan", "fee"), rows), None)
        if len(suspended) > SUSPENSIONS_SHOWN:
            out.print(f"... and {len(suspended) - SUSPENSIONS_SHOWN} more", markup=False)
    if busy:
        out.print(f"{busy} held by another process: the next run takes them", markup=False)


@one_line_errors
def rate(
    calls: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV of calls to rate.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write (default: stdout).")] = None,
) -> None:
    """Rate a CSV of calls through each account's whole chain: one line per call and per level."""
    db = database()
    with (
        calls.open(encoding="utf-8", newline="") as source,
        output.open("w", encoding="utf-8", newline="") if output else nullcontext(sys.stdout) as sink,
        _progress() as progress,
        db.reading() as connection,
    ):
        total = sum(1 for _ in source) - 1
        source.seek(0)
        task = progress.add_task("rating", total=max(total, 0))
        summary = rate_file(connection, source, sink, on_progress=lambda done: progress.update(task, completed=done))
    for line in summary.errors:
        err.print(f"{calls}: {line}", markup=False, soft_wrap=True)
    err.print(f"rated {summary.rated} of {summary.calls} calls, {summary.failed} failed", markup=False)
    if summary.failed:
        raise typer.Exit(1)
