"""``tollway switch`` and ``tollway calls``: register switches, look at calls, run the keeper's work by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from tollway.calls import keeper
from tollway.calls import service as calls
from tollway.calls.service import CallFilter, CallSettings
from tollway.cli.common import Amount, Cell, FormatOption, Listing, database, err, one_line_errors, out, print_listing
from tollway.config import Settings

switch_app = typer.Typer(help="Switches that ask Tollway to authorize calls.", no_args_is_help=True)
calls_app = typer.Typer(help="Calls under credit control.", no_args_is_help=True)


@switch_app.command("create")
@one_line_errors
def switch_create(
    name: Annotated[str, typer.Argument(help="The switch's name, e.g. kamailio-1.")],
    node: Annotated[str, typer.Option(help="The node whose subtree it serves (the provider: every call).")],
    notify_kind: Annotated[
        str, typer.Option(help="How disconnects are pushed to it: jsonrpc, kamailio, radius or none.")
    ] = "none",
    notify_url: Annotated[str | None, typer.Option(help="Where disconnects are pushed (jsonrpc).")] = None,
    trusted_durations: Annotated[
        bool, typer.Option(help="Charge the durations it reports as they are, even past the grant and a floor.")
    ] = False,
) -> None:
    """Register a switch and make its API key; the key is printed once and never again."""
    _, plaintext = calls.create_switch(
        database(),
        name=name,
        node_login=node,
        notify_kind=notify_kind,
        notify_url=notify_url,
        trusted_durations=trusted_durations,
    )
    err.print(f"switch {name} registered; store its API key now, it is not shown again:")
    out.print(plaintext, markup=False, highlight=False, soft_wrap=True)


@switch_app.command("rotate-key")
@one_line_errors
def switch_rotate_key(name: Annotated[str, typer.Argument(help="The switch's name.")]) -> None:
    """Give a switch a new API key and revoke its old one at once; the new key is printed once."""
    plaintext = calls.rotate_switch_key(database(), name=name)
    err.print(f"switch {name} has a new API key (the old one is revoked); store it now, it is not shown again:")
    out.print(plaintext, markup=False, highlight=False, soft_wrap=True)


@calls_app.command("list")
@one_line_errors
def calls_list(
    active: Annotated[
        bool | None, typer.Option("--active/--all", help="Only the calls up now (the default without filters).")
    ] = None,
    account: Annotated[
        str | None, typer.Option(help="The calls of this account and of every account below it.")
    ] = None,
    since: Annotated[datetime | None, typer.Option(help="Started at or after (ISO 8601, UTC if no zone).")] = None,
    until: Annotated[datetime | None, typer.Option(help="Started before (ISO 8601, UTC if no zone).")] = None,
    prefix: Annotated[str | None, typer.Option(help="The E.164 number dialled starts with these digits.")] = None,
    state: Annotated[str | None, typer.Option(help="authorized, answered, ended or refused.")] = None,
    after_id: Annotated[int, typer.Option(min=0, help="The last id of the previous page.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    output_format: FormatOption = None,
) -> None:
    """Call records with what each cost: the calls up now, or all calls with --all or any filter."""
    filtered = any(value is not None for value in (account, since, until, prefix, state))
    where = CallFilter(
        account=account,
        since=_utc(since),
        until=_utc(until),
        prefix=prefix,
        state=state,
        active=True if active is None and not filtered else active,
    )
    page, next_after_id = calls.list_calls(database(), where=where, after_id=after_id, limit=limit)
    rows: list[list[Cell]] = [_row(view) for view in page]
    headers = (
        "call id",
        "account",
        "number",
        "status",
        "started",
        "seconds",
        "charged",
        "granted",
        "max",
        "expires",
        "disconnect",
    )
    notes = [f"more: --after-id {next_after_id}"] if next_after_id is not None else []
    print_listing(Listing(headers, rows, notes=notes), output_format)


def _utc(instant: datetime | None) -> datetime | None:
    return instant if instant is None or instant.tzinfo else instant.replace(tzinfo=UTC)


def _row(view: dict[str, Any]) -> list[Cell]:
    """A call's line: ``charged`` is what its account paid (the first charge line), once it has ended."""
    charges = view.get("charges") or []
    first = charges[0] if charges and charges[0]["account"] == view["account"] else None
    charged = (
        Amount(first["amount_micros"], first["currency"]) if first and first.get("amount_micros") is not None else None
    )
    return [
        view["call_id"],
        view["account"],
        view["number"],
        view["status"],
        view["created_at"],
        view["duration_seconds"],
        charged,
        view["grant_seconds"],
        view["max_seconds"],
        view["grant_expires_at"],
        view["disconnect"],
    ]


@calls_app.command("keep")
@one_line_errors
def calls_keep() -> None:
    """Run the keeper once: extend grants running low, flag blocked calls, push disconnects, sweep stale calls."""
    report = keeper.tick(database(), settings=CallSettings.of(Settings()))
    out.print(
        f"extended {report.extended}, flagged {report.flagged}, disconnects pushed {report.pushed}, "
        f"swept {report.swept}, plan periods renewed {report.renewed}"
    )
