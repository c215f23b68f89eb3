"""VoipPanel 2.5 "extension accounts" into an organization: each line becomes a user with one extension.

VoipPanel3 converted "Extensions to Users with a single Extension"; so does this. The file is read and
checked whole first, then imported in one transaction: one bad line refuses the whole file, and every bad
line is named with its number (the header is line 1).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from sqlalchemy import Connection

from tollway.access import credentials
from tollway.access.model import Principal
from tollway.clock import utc_now
from tollway.csvsafe import restore_cell, safe_row
from tollway.errors import Refusal
from tollway.organizations import model, service
from tollway.organizations.service import ExtensionView, NewExtension, NewUser
from tollway.sealing import Sealer
from tollway.store.database import Database

IMPORT_LINES_MAX = 5_000
IMPORT_BYTES_MAX = 2 * 1024 * 1024
PROBLEMS_SHOWN_MAX = 50
COLUMNS = ("login", "name", "email", "language", "extension", "sip_username", "secret", "voicemail", "recording")
REQUIRED = frozenset({"login", "extension"})
SECRET_PATTERN = re.compile(r"^[A-Za-z0-9!#$%&()*+,./:;<=>?@\[\]^_{|}~-]{12,64}\Z")
FLAGS = {"": False, "0": False, "no": False, "false": False, "1": True, "yes": True, "true": True}


class ImportRefused(Refusal):
    """The file was not imported; ``problems`` says why, line by line."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:PROBLEMS_SHOWN_MAX]
        more = f"; and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__("import_invalid", "nothing was imported: " + "; ".join(shown) + more)
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    user: NewUser
    extension: NewExtension
    secret: str


@dataclass(frozen=True, slots=True)
class Imported:
    extension: ExtensionView
    secret: str  # shown once


def parse(text: str) -> tuple[list[Row], list[tuple[int, str]]]:
    """Every line as a user and its extension, and the problems of the lines that are wrong in the file
    itself (a bad value, a login or number twice); ``ImportRefused`` for a file that is no import at all."""
    if len(text.encode()) > IMPORT_BYTES_MAX:
        raise Refusal("import_too_large", f"an import is at most {IMPORT_BYTES_MAX // 1024} KiB")
    if "\x00" in text:
        raise Refusal("text_contains_nul", "the file holds a NUL character")
    reader = csv.reader(io.StringIO(text))
    header = [cell.strip().lower() for cell in next(reader, [])]
    unknown = sorted(set(header) - set(COLUMNS))
    missing = sorted(REQUIRED - set(header))
    if unknown or missing or len(set(header)) != len(header):
        raise ImportRefused([f"line 1: the columns are {', '.join(COLUMNS)} (login and extension required)"])
    rows: list[Row] = []
    problems: list[tuple[int, str]] = []
    for cells in reader:
        line = reader.line_num
        if len(rows) + len(problems) >= IMPORT_LINES_MAX:
            raise Refusal("import_too_large", f"an import has at most {IMPORT_LINES_MAX} lines")
        if not any(cell.strip() for cell in cells):
            continue
        try:
            rows.append(_row(line, dict(zip(header, (restore_cell(c.strip()) for c in cells), strict=False))))
        except Refusal as refusal:
            problems.append((line, f"line {line}: {refusal.reason}: {refusal.message}"))
    if not rows and not problems:
        raise ImportRefused(["the file has no lines after its header"])
    return rows, problems + _repeats(rows)


def _row(line: int, values: dict[str, str]) -> Row:
    login = values.get("login", "")
    secret = values.get("secret", "") or credentials.generate_secret(model.SIP_SECRET_LENGTH)
    if not SECRET_PATTERN.match(secret):
        raise Refusal("secret_invalid", "a secret is 12 to 64 visible characters, without spaces or quotes")
    flags = {}
    for name in ("voicemail", "recording"):
        flag = values.get(name, "").lower()
        if flag not in FLAGS:
            raise Refusal(f"{name}_invalid", f"{name} is yes or no")
        flags[name] = FLAGS[flag]
    user = NewUser(
        login=login,
        name=values.get("name", "") or login,
        email=values.get("email") or None,
        language=values.get("language") or None,
    )
    extension = NewExtension(
        user=login,
        number=values.get("extension", ""),
        sip_username=values.get("sip_username") or None,
        voicemail=flags["voicemail"],
        recording=flags["recording"],
    )
    return Row(line, user, extension, secret)


def _repeats(rows: list[Row]) -> list[tuple[int, str]]:
    """Two lines of the file that would take the same login, number or SIP username."""
    problems = []
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        names = [("login", row.user.login), ("extension", row.extension.number)]
        if row.extension.sip_username is not None:  # else it is the number, checked already
            names.append(("sip_username", row.extension.sip_username))
        for what, value in names:
            first = seen.setdefault((what, value), row.line)
            if first != row.line:
                problems.append((row.line, f"line {row.line}: {what}_repeated: {value} is on line {first} already"))
    return problems


def import_extension_accounts(
    database: Database, *, organization: str, text: str, sealer: Sealer, principal: Principal | None = None
) -> list[Imported]:
    """Import the file whole, or nothing: each line a user (role member) with one extension. Every bad line
    is named, those wrong in the file and those the organization refuses (a taken login, its limits)."""
    rows, problems_in_file = parse(text)
    wrong_lines = {line for line, _ in problems_in_file}
    now = utc_now()

    def use_case(connection: Connection) -> list[Imported]:
        imported: list[Imported] = []
        problems = list(problems_in_file)
        for row in rows:
            if row.line in wrong_lines:
                continue
            try:
                service.create_user_in(
                    connection,
                    organization=organization,
                    new=row.user,
                    email=service.check_email(row.user.email),
                    now=now,
                    principal=principal,
                )
                extension = service.create_extension_in(
                    connection,
                    organization=organization,
                    new=row.extension,
                    secret=row.secret,
                    sealer=sealer,
                    now=now,
                    principal=principal,
                )
            except Refusal as refusal:
                if refusal.reason in ("organization_not_found", "forbidden") or refusal.reason.endswith("_forbidden"):
                    raise  # the organization itself, or who imports: not a line's problem
                problems.append((row.line, f"line {row.line}: {refusal.reason}: {refusal.message}"))
                continue
            imported.append(Imported(extension, row.secret))
        if problems:  # the transaction is rolled back: nothing of the file stays
            raise ImportRefused([problem for _, problem in sorted(problems, key=lambda found: found[0])])
        return imported

    return database.run(use_case)


def secrets_csv(imported: list[Imported]) -> str:
    """What an import made, with the secrets, once: for the phones' configuration."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["login", "extension", "sip_username", "sip_domain", "secret"])
    for item in imported:
        view = item.extension
        writer.writerow(safe_row([view.user, view.number, view.sip_username, view.sip_domain, item.secret]))
    return out.getvalue()
