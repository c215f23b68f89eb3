"""``tollway switch`` and ``tollway calls``: register switches, look at calls, run the keeper's work by hand."""

from __future__ import annotations

from typing import Annotated

import typer

from tollway.calls import keeper
from tollway.calls import service as calls
from tollway.calls.service import CallSettings
from tollway.cli.common import Cell, FormatOption, Listing, database, err, one_line_errors, out, print_listing
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
    active: Annotated[bool, typer.Option("--active/--all", help="Only the calls up now.")] = True,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    output_format: FormatOption = None,
) -> None:
    """The calls up now (or all calls) with their grants."""
    page, _ = calls.list_calls(database(), active=active or None, limit=limit)
    rows: list[list[Cell]] = [
        [
            view["call_id"],
            view["account"],
            view["number"],
            view["status"],
            view["grant_seconds"],
            view["max_seconds"],
            view["grant_expires_at"],
            view["disconnect"],
        ]
        for view in page
    ]
    headers = ("call id", "account", "number", "status", "granted", "max", "expires", "disconnect")
    print_listing(Listing(headers, rows), output_format)


@calls_app.command("keep")
@one_line_errors
def calls_keep() -> None:
    """Run the keeper once: extend grants running low, flag blocked calls, push disconnects, sweep stale calls."""
    report = keeper.tick(database(), settings=CallSettings.of(Settings()))
    out.print(
        f"extended {report.extended}, flagged {report.flagged}, disconnects pushed {report.pushed}, "
        f"swept {report.swept}, plan periods renewed {report.renewed}"
    )
