"""``tollway notices``: set thresholds, addresses and branding; send what is due; read what was sent."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from tollway.cli.common import Cell, FormatOption, Listing, amount, database, one_line_errors, out, print_listing
from tollway.config import Settings
from tollway.money import format_amount
from tollway.notifications import service as notices
from tollway.notifications.model import EmailState
from tollway.notifications.service import KEEP, Keep, MailSettings, NoticeChanges
from tollway.notifications.store import EMAILS_PAGE_SIZE_MAX

notices_app = typer.Typer(
    help="Low-balance notices by email: settings, sending, and what was sent.", no_args_is_help=True
)
CLEARS = 'An empty value ("") clears it.'


@notices_app.command("run")
@one_line_errors
def notices_run() -> None:
    """Queue a notice for every account that fell below its threshold, re-arm the others, send what is due."""
    report = notices.run_notices(database(), settings=MailSettings.of(Settings()))
    out.print(
        f"queued {report.queued}, skipped without an address {report.skipped}, re-armed {report.rearmed}; "
        f"sent {report.sent}, to retry {report.retried}, failed {report.failed}"
    )


def _text(value: str | None) -> str | Keep | None:
    """An option not given keeps the setting; an empty one clears it."""
    return KEEP if value is None else (value or None)


def _micros(value: str | None) -> int | Keep | None:
    return KEEP if value is None else (amount(value) if value else None)


@notices_app.command("set")
@one_line_errors
def notices_set(
    login: str,
    email: Annotated[str | None, typer.Option(help=f"Where the node's notices go. {CLEARS}")] = None,
    threshold: Annotated[
        str | None, typer.Option(help=f"Notify below this amount; cleared, the owner's default applies. {CLEARS}")
    ] = None,
    default_threshold: Annotated[
        str | None, typer.Option(help=f"Resellers: the threshold of children that set none. {CLEARS}")
    ] = None,
    brand_name: Annotated[
        str | None, typer.Option(help=f"Resellers: what their children's notices are signed with. {CLEARS}")
    ] = None,
    email_from: Annotated[
        str | None, typer.Option(help=f"Resellers: the address their children's notices come from. {CLEARS}")
    ] = None,
) -> None:
    """Set a node's notice address, threshold, or (resellers and the provider) defaults and branding."""
    changes = NoticeChanges(
        email=_text(email),
        threshold_micros=_micros(threshold),
        default_threshold_micros=_micros(default_threshold),
        brand_name=_text(brand_name),
        email_from=_text(email_from),
    )
    notices.set_notices(database(), login=login, changes=changes)
    notices_show(login)


@notices_app.command("show")
@one_line_errors
def notices_show(login: str) -> None:
    """Show a node's notice settings, who its notices come from, and whether its alert is armed."""
    db = database()
    settings = notices.get_notices(db, None, login=login)
    sender = notices.sender_of(db, login=login, settings=MailSettings.of(Settings()))

    def money(micros: int | None, missing: str) -> str:
        return missing if micros is None else format_amount(micros, settings.currency)

    table = Table(show_header=False, box=None)
    rows = [
        ("email", settings.email or "none: no notices are sent"),
        ("threshold", money(settings.threshold_micros, "the owner's default")),
        ("in force", money(settings.effective_threshold_micros, "none: no notices")),
        ("default for children", money(settings.default_threshold_micros, "none")),
        ("brand name", settings.brand_name or "none"),
        ("sender", settings.email_from or "none"),
        ("its notices come from", f"{sender.name} <{sender.address}>"),
        ("alert", f"{'armed' if settings.alert.armed else 'disarmed'}, {settings.alert.crossings} crossings"),
    ]
    for key, value in rows:
        table.add_row(key, Text(value))
    out.print(table)


@notices_app.command("list")
@one_line_errors
def notices_list(
    node: Annotated[str | None, typer.Option(help="Only the emails to this node.")] = None,
    state: Annotated[EmailState | None, typer.Option(help="Only emails in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=EMAILS_PAGE_SIZE_MAX)] = 50,
    before_id: Annotated[int | None, typer.Option(min=1, help="Only emails older than this id.")] = None,
    output_format: FormatOption = None,
) -> None:
    """The record of emails: what was sent, is due or failed, newest first."""
    emails = notices.list_emails(database(), None, login=node, state=state, limit=limit, before_id=before_id)
    rows: list[list[Cell]] = []
    for e in emails:
        when = e.sent_at if e.state is EmailState.SENT else e.next_at
        rows.append(
            [
                e.id,
                f"{e.created_at:%Y-%m-%d %H:%M:%S}",
                e.login,
                e.recipient,
                e.subject,
                str(e.state),
                e.attempts,
                f"{when:%Y-%m-%d %H:%M:%S}" if when else None,
                e.last_error,
            ]
        )
    headers = ("id", "created (UTC)", "node", "to", "subject", "state", "attempts", "sent / next (UTC)", "error")
    print_listing(Listing(headers, rows), output_format)
