"""The header of a rate sheet as carriers write it, mapped onto Tollway's own columns. Pure.

A carrier's sheet names its columns its own way ("Dial code", "Destination", "Rate (USD/min)",
"Billing increment", "Effective date"), in any case and spacing, and separates them with commas,
semicolons or tabs. ``map_columns`` finds, for each of Tollway's columns, the carrier's column that
holds it, by the names in ``COLUMN_NAMES``; ``delimiter_of`` picks the separator from the header line.

- A name is compared lower-cased, with a parenthesised or bracketed part left out ("Rate (USD)" is
  "rate"), "/" read as "per" ("Rate/min" is "rate per min"), and "_", "-", "." as spaces.
- The description is the first of Description, Destination, Destination name, Name, Country that the
  sheet has: a carrier that gives both Country and Description has its Description used.
- An increment column ("Increment", "Billing increment") holds "a/b": the first a seconds are billed
  at least, then steps of b seconds (a single number n is n/n). That is Tollway's minimal_time a and
  resolution b when a is a multiple of b (1/1, 60/60, 30/6, 60/1); otherwise the row is refused. It may
  not come with minimal_time or resolution columns.
- Columns that only inform a person (Change, Notes, Comments, Remarks) are read and left out; any
  other column Tollway does not know is refused, so that a charge is never dropped unseen.

Given the wrong layout, the header says so (``layout_mismatch``): a VoipSwitch sheet read as Tollway's
own, or a Tollway or carrier sheet read as VoipSwitch.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from tollway.errors import Refusal

# Tollway's own columns, in its layout's order (sheets.NATIVE_COLUMNS).
NATIVE_COLUMNS = (
    "prefix",
    "description",
    "price",
    "connect_fee",
    "minimal_time",
    "resolution",
    "grace_period",
    "free_seconds",
    "from_day",
    "to_day",
    "from_time",
    "to_time",
    "valid_from",
    "valid_to",
)
NATIVE_REQUIRED = ("prefix", "description", "price")
INCREMENT = "increment"  # a carrier's "a/b": minimal_time and resolution at once
COLUMN_NAMES: dict[str, tuple[str, ...]] = {
    "prefix": ("prefix", "code", "dial code", "dialcode", "dialing code", "dial prefix", "destination code"),
    "description": ("description", "destination", "destination name", "name", "country"),  # preferred first
    "price": ("price", "rate", "rate per minute", "rate per min", "price per minute", "price per min", "per minute"),
    "connect_fee": ("connect fee", "connection fee", "connect charge", "connection charge", "setup fee"),
    "minimal_time": ("minimal time", "minimum time", "min time", "first increment", "initial increment"),
    "resolution": ("resolution", "next increment", "subsequent increment", "additional increment"),
    "grace_period": ("grace period", "grace time"),
    "free_seconds": ("free seconds",),
    "from_day": ("from day",),
    "to_day": ("to day",),
    "from_time": ("from time",),
    "to_time": ("to time",),
    "valid_from": ("valid from", "effective date", "effective from", "effective", "start date"),
    "valid_to": ("valid to", "valid until", "end date", "expiry date", "expiration date", "effective to"),
    INCREMENT: ("increment", "increments", "billing increment", "billing increments", "billing", "interval"),
}
INFORMATIONAL_NAMES = frozenset({"change", "rate change", "notes", "note", "comment", "comments", "remarks"})
TARGET_OF = {name: target for target, names in COLUMN_NAMES.items() for name in names}
VOIPSWITCH_SIGNS = frozenset({"voice rate", "rate multiplier", "rate addition", "surcharge time", "surcharge amount"})
VOIPSWITCH_WIDTH = 15
DELIMITER_CHOICES = (",", ";", "\t")
UNKNOWN_NAMED_MAX = 5  # unknown columns named in one message
INCREMENT_PATTERN = re.compile(r"([0-9]{1,5})(?:\s*/\s*([0-9]{1,5}))?")
_BRACKETED = re.compile(r"\(.*?\)|\[.*?\]")
_SEPARATORS = re.compile(r"[_\-.]+")
VOIPSWITCH_HINT = "import it in the VoipSwitch layout (format=voipswitch; tollway tariff import --format voipswitch)"
NATIVE_HINT = "import it in Tollway's own layout, which reads carriers' sheets too (format=native)"


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Where each of Tollway's columns is in a sheet's rows (-1: absent), and its increment column."""

    indexes: tuple[int, ...]  # per NATIVE_COLUMNS
    increment: int  # -1: none
    width: int  # cells a row has


@dataclass(frozen=True, slots=True)
class HeaderProblem:
    reason: str
    message: str


def normalized(name: str) -> str:
    """A column name as it is compared: "Rate (USD/min)" -> "rate", " Dial_Code " -> "dial code"."""
    text = _BRACKETED.sub(" ", name.strip().lower()).replace("/", " per ")
    return " ".join(_SEPARATORS.sub(" ", text).split())


def delimiter_of(header_line: str) -> str:
    """The separator of a sheet, from its header line: whichever of comma, semicolon or tab it has most of."""
    counts = [(header_line.count(choice), -index, choice) for index, choice in enumerate(DELIMITER_CHOICES)]
    count, _, choice = max(counts)
    return choice if count else ","


def map_columns(names: list[str]) -> ColumnMap | list[HeaderProblem]:
    """Where Tollway's columns are among a header's ``names``, or what is wrong with the header."""
    keys = [normalized(name) for name in names]
    if VOIPSWITCH_SIGNS & set(keys) or _voipswitch_row([name.strip() for name in names]):
        return [HeaderProblem("layout_mismatch", f"this is a VoipSwitch sheet: {VOIPSWITCH_HINT}")]
    targets = [TARGET_OF.get(key) for key in keys]
    if not any(targets):
        columns = ",".join(NATIVE_COLUMNS)
        return [HeaderProblem("header_invalid", f"the sheet must start with a header such as {columns}")]
    targets = _preferred_description(keys, targets)
    problems = [
        HeaderProblem("header_invalid", message)
        for message in (*_unknown(names, keys, targets), *_repeated(names, targets), *_missing(targets))
    ]
    if problems:
        return problems
    position = {target: index for index, target in enumerate(targets) if target}
    return ColumnMap(
        tuple(position.get(column, -1) for column in NATIVE_COLUMNS), position.get(INCREMENT, -1), len(names)
    )


def _voipswitch_row(cells: list[str]) -> bool:
    """A VoipSwitch row without a header: 15 cells, the first a prefix, the third an amount."""
    return len(cells) == VOIPSWITCH_WIDTH and cells[0].isdigit() and cells[2].replace(".", "", 1).isdigit()


def _preferred_description(keys: list[str], targets: list[str | None]) -> list[str | None]:
    """Only the most preferred of the description's columns is the description; the others are left out."""
    found = [index for index, target in enumerate(targets) if target == "description"]
    if len({keys[index] for index in found}) <= 1:
        return targets
    best = min(found, key=lambda index: COLUMN_NAMES["description"].index(keys[index]))
    return [None if index in found and index != best else target for index, target in enumerate(targets)]


def _unknown(names: list[str], keys: list[str], targets: list[str | None]) -> list[str]:
    unknown = [
        names[index].strip()
        for index, key in enumerate(keys)
        if targets[index] is None and key not in INFORMATIONAL_NAMES and key not in COLUMN_NAMES["description"]
    ]
    if not unknown:
        return []
    shown = ", ".join(repr(name) for name in unknown[:UNKNOWN_NAMED_MAX])
    more = f" and {len(unknown) - UNKNOWN_NAMED_MAX} more" if len(unknown) > UNKNOWN_NAMED_MAX else ""
    return [f"unknown column {shown}{more} (the columns are {', '.join(NATIVE_COLUMNS)}, or a carrier's names)"]


def _repeated(names: list[str], targets: list[str | None]) -> list[str]:
    counts = Counter(target for target in targets if target)
    messages = []
    for target, count in sorted(counts.items()):
        if count > 1:
            given = ", ".join(repr(names[i].strip()) for i, t in enumerate(targets) if t == target)
            messages.append(f"column {target!r} appears {count} times: {given}")
    if counts[INCREMENT] and (counts["minimal_time"] or counts["resolution"]):
        messages.append("an increment column and minimal_time or resolution columns give the billing steps twice")
    return messages


def _missing(targets: list[str | None]) -> list[str]:
    present = set(targets)
    return [f"required column {name!r} is missing" for name in NATIVE_REQUIRED if name not in present]


def increment_of(text: str) -> tuple[int, int]:
    """A carrier's increment "a/b" (or n, as n/n) as (minimal_time, resolution)."""
    match = INCREMENT_PATTERN.fullmatch(text.strip())
    if match is None:
        raise Refusal("increment_invalid", f"increment {text.strip()[:40]!r} is not such as 1/1, 60/60 or 30/6")
    first = int(match.group(1))
    step = int(match.group(2) or first)
    if step == 0:
        raise Refusal("increment_invalid", f"increment {text.strip()}: the step is at least one second")
    if first % step:
        raise Refusal(
            "increment_unsupported",
            f"increment {text.strip()}: Tollway bills at least {first} s in steps of {step} s counted from the "
            f"call's start, which is the carrier's {first}/{step} only when {first} is a multiple of {step}",
        )
    return first, step


def voipswitch_hint(cells: list[str]) -> HeaderProblem | None:
    """The first record of a sheet read as VoipSwitch, if it is the header of another layout."""
    line = ";".join(cells)
    names = line.split(delimiter_of(line))
    if isinstance(map_columns(names), ColumnMap):
        return HeaderProblem("layout_mismatch", f"this is not a VoipSwitch sheet: {NATIVE_HINT}")
    return None
