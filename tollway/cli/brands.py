"""``tollway brand``: what a reseller's portal looks like to its customers, and on which host names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tollway.branding import service as branding
from tollway.branding.model import KEEP, Keep
from tollway.branding.service import BrandChanges, BrandSettings
from tollway.cli.common import database, fail, one_line_errors, out

brand_app = typer.Typer(
    help="Each reseller's brand in the portal: name, colours, logo, support, hosts.", no_args_is_help=True
)
CLEARS = 'An empty value ("") clears it.'


def _text(value: str | None) -> str | Keep | None:
    """An option not given keeps the setting; an empty one clears it."""
    return KEEP if value is None else (value or None)


def _logo(path: str | None) -> bytes | Keep | None:
    if path is None:
        return KEEP
    if not path:
        return None
    file = Path(path)
    if not file.is_file():
        raise fail(f"no such file: {path}")
    return file.read_bytes()


def _show(settings: BrandSettings) -> None:
    shown = settings.shown
    out.print(f"{settings.login}: {shown.name}")
    out.print(f"  colours  {shown.colour_primary} (primary), {shown.colour_accent} (accent)")
    out.print(f"  logo     {'/brand/logo/' + shown.logo_digest if shown.logo_digest else '-'}")
    support = [value for value in (shown.support_email, shown.support_phone, shown.support_url) if value]
    out.print(f"  support  {', '.join(support) or '-'}")
    out.print(f"  language {shown.language} (its customers' default)")
    out.print(f"  hosts    {', '.join(settings.hosts) or '-'}")


@brand_app.command("set")
@one_line_errors
def brand_set(
    login: str,
    name: Annotated[str | None, typer.Option(help=f"The name its customers see. {CLEARS}")] = None,
    primary: Annotated[
        str | None, typer.Option(help=f"Header and buttons, e.g. #1f4e79 (white text on it). {CLEARS}")
    ] = None,
    accent: Annotated[str | None, typer.Option(help=f"Highlights, e.g. #e8f0f8 (dark text on it). {CLEARS}")] = None,
    logo: Annotated[str | None, typer.Option(help=f"A PNG, JPEG, WebP or plain SVG, at most 256 KiB. {CLEARS}")] = None,
    support_email: Annotated[str | None, typer.Option(help=CLEARS)] = None,
    support_phone: Annotated[str | None, typer.Option(help=CLEARS)] = None,
    support_url: Annotated[str | None, typer.Option(help=CLEARS)] = None,
    language: Annotated[str | None, typer.Option(help=f"Its portal's and new customers' default. {CLEARS}")] = None,
) -> None:
    """Set what a reseller's (or the provider's) customers see in the portal."""
    changes = BrandChanges(
        name=_text(name),
        colour_primary=_text(primary),
        colour_accent=_text(accent),
        support_email=_text(support_email),
        support_phone=_text(support_phone),
        support_url=_text(support_url),
        customer_language=_text(language),
        logo=_logo(logo),
    )
    _show(branding.set_brand(database(), None, login=login, changes=changes))


@brand_app.command("hosts")
@one_line_errors
def brand_hosts(login: str, hosts: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Replace the host names on which the portal shows this reseller's brand (none: remove them all)."""
    _show(branding.set_hosts(database(), None, login=login, hosts=hosts or []))


@brand_app.command("show")
@one_line_errors
def brand_show(login: str) -> None:
    """A reseller's brand as its customers see it, and its host names."""
    _show(branding.get_brand(database(), None, login=login))
