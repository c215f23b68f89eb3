"""``tollway organization``: organizations (UC/PBX clients), their users and extensions, at the command line.

Secrets are written once, to a new file readable by the operator only (``--secrets``), or to the
terminal when none is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
from tollway.config import Settings
from tollway.lines import service as lines
from tollway.lines.model import FollowMeEntry
from tollway.organizations import imports
from tollway.organizations import service as organizations
from tollway.organizations.model import Caps, ExtensionStatus, Limits, OrganizationRole, Wallet
from tollway.organizations.service import NewExtension, NewUser
from tollway.sealing import Sealer
from tollway.tree.model import Status

organization_app = typer.Typer(help="Organizations: users, extensions, limits, imports.", no_args_is_help=True)
line_app = typer.Typer(help="Lines: caller ids and FollowMe of a client or an extension.", no_args_is_help=True)

SecretsOption = Annotated[
    Path | None, typer.Option("--secrets", help="A new file (mode 0600) to write the secrets to; else printed.")
]


def _sealer() -> Sealer:
    return Sealer.from_settings(Settings())


def _new_file(path: Path | None) -> None:
    """Checked before anything is made: a secret nobody can read again must not be lost."""
    if path is not None and path.exists():
        raise fail(f"{path} exists: secrets go to a new file only")


def _write_secrets(path: Path | None, text: str) -> None:
    if path is None:
        out.print(text, markup=False, highlight=False, end="")
        return
    path.touch(mode=0o600, exist_ok=False)  # secrets: readable by the operator only
    path.write_text(text)
    err.print(f"secrets written to {path}")


@organization_app.command("show")
@one_line_errors
def show(login: str) -> None:
    """An organization's settings, limits and counts."""
    view = organizations.get_organization(database(), login=login)
    limits = view.limits_in_force
    out.print(
        f"{view.node.login} ({view.node.name}): wallet {view.settings.wallet}, {view.settings.extension_digits}-digit "
        f"extensions in SIP domain {view.settings.sip_domain}; {view.users} users (limit {limits.users or 'none'}), "
        f"{view.extensions} extensions (per user: {limits.extensions_per_user or 'no limit'})"
    )


@organization_app.command("configure")
@one_line_errors
def configure(
    login: str,
    wallet: Annotated[Wallet | None, typer.Option(help="Who pays for users' calls.")] = None,
    extension_digits: Annotated[int | None, typer.Option(help="Digits of every extension number, 2 to 6.")] = None,
    sip_domain: Annotated[str | None, typer.Option(help="The extensions' SIP domain (the digest realm).")] = None,
) -> None:
    """Change who pays, the length of extension numbers, or the SIP domain."""
    organizations.configure(
        database(),
        login=login,
        wallet=wallet,
        extension_digits=extension_digits,
        sip_domain=sip_domain,
        sealer=_sealer() if sip_domain is not None else None,
    )
    show(login)


@organization_app.command("limits")
@one_line_errors
def set_limits(
    login: str,
    users: Annotated[int | None, typer.Option(help="Users of an organization (on a reseller: of each below).")] = None,
    extensions_per_user: Annotated[int | None, typer.Option(help="Extensions of each user.")] = None,
) -> None:
    """Limit an organization, or every organization below a reseller (never wider than above)."""
    organizations.set_limits(database(), login=login, limits=Limits(users, extensions_per_user))
    out.print(
        f"{login}: users {users if users is not None else 'no limit'}, extensions per user "
        f"{extensions_per_user if extensions_per_user is not None else 'no limit'}"
    )


@organization_app.command("user")
@one_line_errors
def add_user(
    organization: str,
    login: str,
    name: str,
    email: Annotated[str | None, typer.Option()] = None,
    language: Annotated[str | None, typer.Option()] = None,
    role: Annotated[OrganizationRole, typer.Option()] = OrganizationRole.MEMBER,
    daily_cap: Annotated[str | None, typer.Option(help="When the organization pays: the most a day, e.g. 5.")] = None,
    monthly_cap: Annotated[str | None, typer.Option(help="When the organization pays: the most a month.")] = None,
) -> None:
    """Add a user (with its own account) to an organization."""
    caps = Caps(None if daily_cap is None else amount(daily_cap), None if monthly_cap is None else amount(monthly_cap))
    new = NewUser(login=login, name=name, email=email, language=language, role=role, caps=caps)
    user = organizations.create_user(database(), organization=organization, new=new)
    out.print(f"{user.node.login}: a {user.role} of {organization}")


@organization_app.command("users")
@one_line_errors
def list_users(
    organization: str, limit: Annotated[int, typer.Option(min=1, max=500)] = 100, output_format: FormatOption = None
) -> None:
    """An organization's users and their extensions."""
    rows: list[list[Cell]] = []
    for user in organizations.list_users(database(), organization=organization, limit=limit):
        currency = user.node.currency
        caps = [None if c is None else Amount(c, currency) for c in (user.caps.day_micros, user.caps.month_micros)]
        rows.append(
            [user.node.login, user.node.name, str(user.role), str(user.node.status), " ".join(user.extensions), *caps]
        )
    headers = ("login", "name", "role", "status", "extensions", "daily cap", "monthly cap")
    print_listing(Listing(headers, rows), output_format)


@organization_app.command("extension")
@one_line_errors
def add_extension(
    organization: str,
    user: str,
    number: str,
    sip_username: Annotated[str | None, typer.Option(help="Default: the number.")] = None,
    voicemail: Annotated[bool, typer.Option()] = False,
    recording: Annotated[bool, typer.Option()] = False,
    secrets: SecretsOption = None,
) -> None:
    """Add an extension to a user; its SIP secret is shown once."""
    _new_file(secrets)
    new = NewExtension(user=user, number=number, sip_username=sip_username, voicemail=voicemail, recording=recording)
    view, secret = organizations.create_extension(database(), organization=organization, new=new, sealer=_sealer())
    _write_secrets(secrets, f"{view.sip_username}@{view.sip_domain} {secret}\n")


@organization_app.command("rotate")
@one_line_errors
def rotate(organization: str, number: str, secrets: SecretsOption = None) -> None:
    """A new SIP secret for an extension (the old one stops working at once), shown once."""
    _new_file(secrets)
    view, secret = organizations.rotate_secret(database(), organization=organization, number=number, sealer=_sealer())
    _write_secrets(secrets, f"{view.sip_username}@{view.sip_domain} {secret}\n")


@organization_app.command("disable")
@one_line_errors
def disable(organization: str, number: str) -> None:
    """Stop an extension registering and calling (its number stays taken)."""
    organizations.update_extension(
        database(), organization=organization, number=number, status=ExtensionStatus.DISABLED
    )
    out.print(f"{organization}/{number}: disabled")


@organization_app.command("edit")
@one_line_errors
def edit_extension(
    organization: str,
    number: str,
    voicemail: Annotated[
        bool | None,
        typer.Option("--voicemail/--no-voicemail", help="A flag for the switch: unanswered calls go to voicemail."),
    ] = None,
    recording: Annotated[
        bool | None, typer.Option("--recording/--no-recording", help="A flag for the switch: its calls are recorded.")
    ] = None,
    status: Annotated[ExtensionStatus | None, typer.Option(help="active, or disabled.")] = None,
) -> None:
    """Change an extension's voicemail and recording flags or its status (what is not given stays)."""
    view = organizations.update_extension(
        database(), organization=organization, number=number, voicemail=voicemail, recording=recording, status=status
    )
    out.print(
        f"{organization}/{number}: voicemail {'on' if view.voicemail else 'off'}, "
        f"recording {'on' if view.recording else 'off'}, {view.status}"
    )


@organization_app.command("user-status")
@one_line_errors
def user_status(organization: str, login: str, status: Status) -> None:
    """Suspend a user (its extensions stop registering and calling), activate it again, or close it."""
    view = organizations.update_user(database(), organization=organization, login=login, status=status)
    out.print(f"{organization}/{view.node.login}: {view.node.status}")


@organization_app.command("extensions")
@one_line_errors
def list_extensions(
    organization: str, user: Annotated[str | None, typer.Option()] = None, output_format: FormatOption = None
) -> None:
    """An organization's extensions (or one user's), by number."""
    rows: list[list[Cell]] = [
        [
            view.number,
            view.user,
            view.sip_username,
            view.sip_domain,
            str(view.voicemail),
            str(view.recording),
            str(view.status),
        ]
        for view in organizations.list_extensions(database(), organization=organization, user=user)
    ]
    headers = ("number", "user", "SIP username", "domain", "voicemail", "recording", "status")
    print_listing(Listing(headers, rows), output_format)


@organization_app.command("import")
@one_line_errors
def import_accounts(organization: str, file: Path, secrets: SecretsOption = None) -> None:
    """Import VoipPanel 2.5 extension accounts (CSV): each line a user with one extension, all or nothing."""
    _new_file(secrets)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"cannot read {file}: {error}") from None
    try:
        imported = imports.import_extension_accounts(database(), organization=organization, text=text, sealer=_sealer())
    except imports.ImportRefused as refused:
        for problem in refused.problems:
            err.print(f"{file}: {problem}", markup=False, highlight=False, soft_wrap=True)
        raise fail(f"nothing was imported: {len(refused.problems)} problems") from None
    err.print(f"{len(imported)} users, each with one extension, imported into {organization}")
    _write_secrets(secrets, imports.secrets_csv(imported))


@line_app.command("show")
@one_line_errors
def show_line(login: str, extension: Annotated[str | None, typer.Option()] = None) -> None:
    """A line's caller ids and FollowMe."""
    view = lines.get_line(database(), login=login, extension=extension)
    numbers = ", ".join(
        f"{c.number}{'' if c.verified else ' (unverified)'}{' *' if c.default else ''}" for c in view.caller_ids
    )
    follow_me = " -> ".join(f"{e.number} ({e.ring_seconds} s)" for e in view.follow_me)
    out.print(f"caller ids: {numbers or '(none)'}; presents {view.default_caller_id or 'nothing'}")
    out.print(f"FollowMe: {follow_me or 'off'}")


@line_app.command("caller-id")
@one_line_errors
def add_caller_id(login: str, number: str, extension: Annotated[str | None, typer.Option()] = None) -> None:
    """Add a number a line may present (from the command line: verified)."""
    lines.add_caller_id(database(), login=login, extension=extension, number=number)
    show_line(login, extension)


@line_app.command("follow-me")
@one_line_errors
def set_follow_me(
    login: str,
    entries: Annotated[list[str] | None, typer.Argument(help="NUMBER or NUMBER:SECONDS, in order; none: off.")] = None,
    extension: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Replace a line's FollowMe list."""
    parsed = []
    for entry in entries or []:
        number, _, seconds = entry.partition(":")
        if seconds and not seconds.isdigit():
            raise fail(f"{entry}: ring seconds are a whole number")
        parsed.append(FollowMeEntry(number, int(seconds)) if seconds else FollowMeEntry(number))
    lines.set_follow_me(database(), login=login, extension=extension, entries=parsed)
    show_line(login, extension)
