"""What every command shares: the consoles, the one-line error rule, the database, how listings print."""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import OperationalError, ProgrammingError

from tollway.config import Settings
from tollway.csvsafe import safe_row
from tollway.errors import TollwayError
from tollway.money import format_amount, to_decimal, to_micros
from tollway.store.database import Database

out = Console()
err = Console(stderr=True)
P = ParamSpec("P")
R = TypeVar("R")


def progress_bar() -> Progress:
    """The bar long commands show on standard error (description, bar, done of total, time taken)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except TollwayError as error:
            raise fail(str(error)) from None
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise fail(f"configuration invalid: {problems}", 2) from None
        except (OperationalError, ProgrammingError) as error:
            first_line = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            raise fail(f"database not ready ({first_line}): run `tollway init`", 2) from None

    return wrapper


def database() -> Database:
    settings = Settings()
    return Database(settings.database_url, pool_size=settings.database_pool_size)


def amount(text: str) -> int:
    return to_micros(text)


class OutputFormat(StrEnum):
    """How a listing is printed. Without ``--format``: a table when it fits the terminal, plain columns
    when it does not or when the output goes to a pipe or a file. No format ever cuts a cell."""

    TABLE = "table"
    PLAIN = "plain"
    CSV = "csv"
    JSON = "json"


FormatOption = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        case_sensitive=False,
        help="table, plain (aligned columns), csv or json; default: a table if it fits the terminal, else plain.",
    ),
]
PLAIN_COLUMN_GAP = "  "
RENDER_WIDTH_MAX = 10_000  # characters: what a table or tree may need, measured unclamped by the terminal


def natural_width(console: Console, renderable: RenderableType) -> int:
    """The width a table or tree needs to show every cell whole (not the terminal's width)."""
    return Measurement.get(console, console.options.update(max_width=RENDER_WIDTH_MAX), renderable).maximum


def print_whole(renderable: RenderableType, *, console: Console | None = None) -> None:
    """Print a table or tree at the width it needs, wider than the terminal if it must: nothing is cut."""
    console = console or out
    width = natural_width(console, renderable)
    if width > console.width:  # Console.print never renders wider than its console: draw on a wider one
        console = Console(file=console.file, width=width, force_terminal=console.is_terminal, no_color=console.no_color)
    console.print(renderable, crop=False)


@dataclass(frozen=True, slots=True)
class Amount:
    """An amount in a listing: shown with its currency; in CSV and JSON the decimal, then the currency apart."""

    micros: int
    currency: str


Cell = str | int | Amount | None


@dataclass(frozen=True)
class Listing:
    """Rows under column headers, with an optional title above and notes below (not in CSV or JSON)."""

    headers: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    title: str | None = None
    notes: Sequence[str] = ()


def column_key(header: str) -> str:
    """The CSV and JSON name of a column: ``valid from (UTC)`` -> ``valid_from_utc``."""
    return re.sub(r"[^a-z0-9]+", "_", header.lower()).strip("_")


def _shown(cell: Cell) -> str:
    if isinstance(cell, Amount):
        return format_amount(cell.micros, cell.currency)
    return "" if cell is None else str(cell)


def _records(listing: Listing) -> tuple[list[str], list[list[Cell | str]]]:
    """Keys and rows for CSV and JSON: an amount column becomes ``key`` and ``key_currency``."""
    amount_columns = {i for row in listing.rows for i, cell in enumerate(row) if isinstance(cell, Amount)}
    keys: list[str] = []
    for index, header in enumerate(listing.headers):
        keys.append(column_key(header))
        if index in amount_columns:
            keys.append(f"{column_key(header)}_currency")
    records: list[list[Cell | str]] = []
    for row in listing.rows:
        record: list[Cell | str] = []
        for index, cell in enumerate(row):
            if isinstance(cell, Amount):
                record += [str(to_decimal(cell.micros)), cell.currency]
            else:
                record += [cell, None] if index in amount_columns else [cell]
        records.append(record)
    return keys, records


def _table(listing: Listing) -> Table:
    table = Table(*listing.headers, title=listing.title)
    for row in listing.rows:
        table.add_row(*(Text(_shown(cell)) for cell in row))
    return table


def _plain_lines(listing: Listing) -> list[str]:
    lines = [[*listing.headers], *([_shown(cell) for cell in row] for row in listing.rows)]
    widths = [max(cell_len(line[i]) for line in lines) for i in range(len(listing.headers))]
    return [
        PLAIN_COLUMN_GAP.join(
            cell + " " * (width - cell_len(cell)) for cell, width in zip(line, widths, strict=True)
        ).rstrip()
        for line in lines
    ]


def _machine_text(listing: Listing, output_format: OutputFormat) -> str:
    keys, records = _records(listing)
    sink = io.StringIO()
    if output_format is OutputFormat.CSV:
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(safe_row(keys))
        writer.writerows(safe_row(record) for record in records)
    else:
        json.dump([dict(zip(keys, record, strict=True)) for record in records], sink, ensure_ascii=False, indent=2)
        sink.write("\n")
    return sink.getvalue()


def print_listing(listing: Listing, output_format: OutputFormat | None, *, console: Console | None = None) -> None:
    """Print a listing in the format asked for; every cell whole, whatever the terminal's width.

    CSV cells go through ``tollway.csvsafe`` (no formula reaches a spreadsheet); in CSV and JSON the
    title is left out and the notes go to stderr, so that stdout parses.
    """
    console = console or out
    table = _table(listing)
    if output_format is None:
        fits = console.is_terminal and natural_width(console, table) <= console.width
        output_format = OutputFormat.TABLE if fits else OutputFormat.PLAIN
    if output_format in (OutputFormat.CSV, OutputFormat.JSON):
        console.file.write(_machine_text(listing, output_format))
        for note in listing.notes:
            err.print(note, markup=False, highlight=False, soft_wrap=True)
        return
    if output_format is OutputFormat.TABLE:
        print_whole(table, console=console)
    else:
        lines = [listing.title] if listing.title else []
        console.print("\n".join([*lines, *_plain_lines(listing)]), markup=False, highlight=False, soft_wrap=True)
    for note in listing.notes:
        console.print(note, markup=False, highlight=False, soft_wrap=True)
