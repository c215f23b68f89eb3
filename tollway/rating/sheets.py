"""Rate sheets as CSV, read and written, in Tollway's own layout and VoipSwitch's (docs/design.md section 3). Pure.

Reading collects every error of the file, each with its line number (the header is line 1; blank
lines count), and either returns every entry or raises ``SheetRefused``: nothing is half-imported.
Two rows of one prefix that could price the same instant are an error, reported on the later line.

Native layout: comma-separated, header required, columns named as in docs/design.md in any order
(prefix, description and price required). Empty cells: minimal_time, resolution, grace_period ->
the tariff's default (None); connect_fee, free_seconds -> 0; from_day and to_day (both or neither)
-> the whole week; from_time -> 00:00; to_time -> the end of the day (so does "24:00"). Times are
HH:MM or HH:MM:SS; days run from 0 (Monday) to 6 (Sunday). valid_from / valid_to are ISO 8601
dates or date-times: with an offset they are taken as given, without one they are wall-clock
times in the tariff's time zone (a time the clocks skip is refused; an ambiguous one is the
earlier of the two instants); a date is midnight. They are read as instants in UTC, and written in
the tariff's time zone with its offset.

VoipSwitch layout: semicolon-separated, header optional (present when the first field is
"prefix"), the fifteen columns of ``VOIPSWITCH_COLUMNS`` in that order. -1 (or an empty cell) means
the tariff's default: grace_period, minimal_time, resolution -> None; rate_multiplier -> 1;
rate_addition, surcharge_time, surcharge_amount, free_seconds -> 0; from_day and to_day (both or
neither) -> the whole week; from_hour -> 00:00 and to_hour -> the end of the day. Hours are
HH:MM[:SS] or an integer HHMM (800 is 08:00; 2400, as to_hour only, is the end of the day).

    price = voice_rate x rate_multiplier + rate_addition, rounded up to a whole micro-unit.

Surcharge. VoipSwitch charges the first surcharge_time seconds of a call surcharge_amount, and the
rest at the rate. Tollway's cost is connect_fee + price x (billed - free_seconds) / 60, so

    surcharge_amount -> connect_fee        surcharge_time -> free_seconds

which is exact as long as the seconds after the surcharge are rounded to the resolution from the
end of the surcharge, that is when surcharge_time is a multiple of the resolution. A row is refused
("surcharge_unsupported") when it has both a surcharge_time and free_seconds (Tollway's free seconds
cannot stand for both), or when its explicit resolution does not divide surcharge_time. With the
tariff's default resolution (-1) the division cannot be checked here: the default must divide it.

Writing VoipSwitch: voice_rate = price, rate_multiplier 1, rate_addition 0, surcharge_time 0,
surcharge_amount = connect_fee; validity dates have no column there, so rows with them are refused
("layout_unsupported") before any line is produced.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Context, Decimal, localcontext
from enum import StrEnum
from heapq import heappush, heapreplace
from typing import BinaryIO, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tollway.csvsafe import NEUTRALIZER, restore_cell, safe_cell
from tollway.errors import Refusal
from tollway.money import MICROS_PER_UNIT
from tollway.rating.headers import NATIVE_COLUMNS as HEADER_COLUMNS
from tollway.rating.headers import ColumnMap, delimiter_of, increment_of, map_columns, voipswitch_hint
from tollway.rating.rates import RateRow, WeeklyWindow
from tollway.rating.tariff import MULTIPLIER_MAX, Defaults, RateEntry

SHEET_BYTES_MAX = 200 * 1024 * 1024  # a whole sheet: a million rows take about 60 MB
SHEET_LINE_BYTES_MAX = 16 * 1024  # one line: a row with a 200-character description takes about 1 kB
SHEET_COLUMNS_MAX = 64  # Tollway's layout has 14, VoipSwitch's 15, a carrier's a few more
SHEET_ERRORS_MAX = 100  # errors listed in a refusal; the message gives the count of all of them
SHEET_PROGRESS_LINES = 10_000  # on_progress is called every this many lines, and at the end
SHEET_CACHE_MAX = 10_000  # distinct amounts, multipliers and windows remembered while reading a sheet
AMOUNT_TEXT_MAX = 24  # characters: longer than any price, short enough for Decimal's 28 digits to stay exact
MICRO_DIGITS = 6
EXACT = Context(prec=AMOUNT_TEXT_MAX + MICRO_DIGITS)  # more digits than any amount's text: never rounds
INTEGER_DIGITS_MAX = 12  # longer whole numbers are refused before conversion
VALUE_SHOWN_MAX = 40  # characters of a bad cell quoted in a message

NATIVE_COLUMNS = HEADER_COLUMNS
NATIVE_WIDTH = len(NATIVE_COLUMNS)
VOIPSWITCH_COLUMNS = (
    "prefix",
    "description",
    "voice_rate",
    "from_day",
    "to_day",
    "from_hour",
    "to_hour",
    "grace_period",
    "minimal_time",
    "resolution",
    "rate_multiplier",
    "rate_addition",
    "surcharge_time",
    "surcharge_amount",
    "free_seconds",
)
VOIPSWITCH_WIDTH = len(VOIPSWITCH_COLUMNS)
VOIPSWITCH_DEFAULT = "-1"
DEFAULT_CELLS = frozenset({"", VOIPSWITCH_DEFAULT})
DEFAULT_MICROS = -MICROS_PER_UNIT  # -1 written as an amount
WHOLE_WEEK = (0, 6)
MIDNIGHT = time(0, 0)
END_OF_DAY = "24:00"
AMOUNT_PATTERN = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
BYTE_ORDER_MARK = "\ufeff"
TIME_PATTERN = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")


K = TypeVar("K")
V = TypeVar("V")


class Layout(StrEnum):
    NATIVE = "native"
    VOIPSWITCH = "voipswitch"


DELIMITERS = {Layout.NATIVE: ",", Layout.VOIPSWITCH: ";"}


@dataclass(frozen=True, slots=True)
class SheetError:
    line: int  # 1-based line number in the file (the header is line 1 when present)
    reason: str  # machine-readable, e.g. "prefix_invalid"
    message: str  # human sentence


class SheetRefused(Refusal):
    """The sheet has errors: every one is counted, the first ``SHEET_ERRORS_MAX`` are listed."""

    def __init__(self, errors: list[SheetError], total: int) -> None:
        first = errors[0]
        listed = f"; the first {len(errors)} are listed" if total > len(errors) else ""
        plural = "error" if total == 1 else "errors"
        super().__init__(
            "sheet_invalid",
            f"the rate sheet has {total} {plural}{listed}; line {first.line}: {first.message} ({first.reason})",
        )
        self.errors = errors
        self.total = total


# ---------------------------------------------------------------------------------------------- reading


def read_sheet(
    stream: BinaryIO,
    *,
    layout: Layout,
    time_zone: str,
    on_progress: Callable[[int], None] | None = None,
    bytes_max: int = SHEET_BYTES_MAX,
) -> list[RateEntry]:
    """Every entry of the sheet, or ``SheetRefused`` listing the errors of the whole file.

    Reading stops at the first line past a bound (``bytes_max`` in all, ``SHEET_LINE_BYTES_MAX`` a line,
    ``SHEET_COLUMNS_MAX`` columns in the header): what follows is not a rate sheet to go through.
    """
    zone = zone_of(time_zone)
    errors = _Errors()
    try:
        reading = _Reading(_Source(stream, errors, on_progress, bytes_max), layout, zone)
        with localcontext(EXACT):
            take = reading.header()
            reading.each_record(take)  # after a bad header, only for the encoding errors and the progress
    except _OutOfBounds:
        raise SheetRefused(errors.listed(), errors.count) from None
    reading.source.finish()
    sheet = reading.sheet
    sheet.check_overlaps()
    if errors.count == 0 and not sheet.entries:
        errors.add(1, "sheet_empty", "the sheet has no rate rows")
    if errors.count:
        raise SheetRefused(errors.listed(), errors.count)
    return sheet.entries


RowParser = Callable[[list[str]], RateEntry]
Take = Callable[[int, list[str]], None]  # called with each record's first line and cells


def _ignore(line: int, row: list[str]) -> None:
    """Takes the records that follow a bad header."""


class _Errors:
    """Counts every error and keeps the ``SHEET_ERRORS_MAX`` with the lowest line numbers."""

    def __init__(self) -> None:
        self.count = 0
        self._kept: list[tuple[int, int, SheetError]] = []  # (-line, -order): the heap's top is the last line

    def add(self, line: int, reason: str, message: str) -> None:
        self.count += 1
        item = (-line, -self.count, SheetError(line, reason, message))
        if len(self._kept) < SHEET_ERRORS_MAX:
            heappush(self._kept, item)
        elif item > self._kept[0]:
            heapreplace(self._kept, item)

    def listed(self) -> list[SheetError]:
        return [error for _, _, error in sorted(self._kept, reverse=True)]


class _Source:
    """The stream's lines decoded as UTF-8 one by one, so that a bad byte has a line number."""

    def __init__(
        self, stream: BinaryIO, errors: _Errors, on_progress: Callable[[int], None] | None, bytes_max: int
    ) -> None:
        self._stream = stream
        self.errors = errors
        self._on_progress = on_progress
        self._bytes_max = bytes_max
        self.size = 0
        self.bad_lines: list[int] = []  # lines that are not UTF-8, in order

    def lines(self) -> Iterator[str]:
        on_progress, read_line, line_max, bytes_max = (
            self._on_progress,
            self._stream.readline,
            SHEET_LINE_BYTES_MAX,
            self._bytes_max,
        )
        size = 0
        for number in itertools.count(1):
            raw = read_line(line_max + 1)  # never more than a line's bound in memory
            if not raw:
                break
            size += len(raw)
            if len(raw) > line_max or size > bytes_max:
                self._out_of_bounds(number, len(raw) > line_max)
            if number % SHEET_PROGRESS_LINES == 0 and on_progress is not None:
                on_progress(size)
            try:
                text = raw.decode()
            except UnicodeDecodeError as error:
                self._bad_line(number, raw, error)
                text = raw.decode(errors="replace")
            yield text.removeprefix(BYTE_ORDER_MARK) if number == 1 else text
        self.size = size

    def _bad_line(self, number: int, raw: bytes, error: UnicodeDecodeError) -> None:
        self.bad_lines.append(number)
        message = f"byte 0x{raw[error.start]:02x} at byte {error.start + 1} of the line is not UTF-8"
        self.errors.add(number, "encoding_invalid", message)

    def _out_of_bounds(self, number: int, line_too_long: bool) -> None:
        if line_too_long:
            self.errors.add(number, "line_too_long", f"a line is at most {SHEET_LINE_BYTES_MAX} bytes")
        else:
            self.errors.add(number, "sheet_too_large", f"a rate sheet is at most {self._bytes_max} bytes")
        raise _OutOfBounds

    def finish(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self.size)


class _OutOfBounds(Exception):
    """Reading stops: the sheet passed one of its bounds (the error is recorded)."""


class _Reading:
    """One pass over the sheet: its header, then every record, one at a time."""

    def __init__(self, source: _Source, layout: Layout, zone: ZoneInfo) -> None:
        self.layout = layout
        self.errors = source.errors
        self.source = source
        lines, delimiter = source.lines(), DELIMITERS[layout]
        if layout is Layout.NATIVE:  # a carrier's sheet may be separated by semicolons or tabs: its header says
            lines, delimiter = _sniffed(lines)
        self.reader = csv.reader(lines, delimiter=delimiter)
        self.cells = _CellParser(zone, decimal_comma=delimiter != ",")
        self.sheet = _Sheet(self.errors)
        self.last_line = 0  # the last line of the records read so far

    def each_record(self, take: Take) -> None:
        """``take`` each remaining record, but those that are blank or have a line that is not UTF-8."""
        reader, bad_lines, last_line = self.reader, self.source.bad_lines, self.last_line
        try:
            while True:
                try:
                    for row in reader:
                        first_line, last_line = last_line + 1, reader.line_num
                        if (len(row) > 1 or (row and row[0].strip())) and not (
                            bad_lines and bad_lines[-1] >= first_line
                        ):
                            take(first_line, row)
                    return
                except csv.Error as error:
                    last_line = reader.line_num
                    self.errors.add(last_line, "format_invalid", f"the line is not valid CSV: {error}")
        finally:
            self.last_line = last_line

    def first_record(self) -> tuple[int, list[str]] | None:
        found: list[tuple[int, list[str]]] = []

        def take(line: int, row: list[str]) -> None:
            found.append((line, row))
            raise _FirstFound

        try:
            self.each_record(take)
        except _FirstFound:
            return found[0]
        return None

    def header(self) -> Take:
        """Reads the header (and, in a VoipSwitch sheet without one, the first row): what takes the rows."""
        first = self.first_record()
        if first is None:
            return _ignore
        if len(first[1]) > SHEET_COLUMNS_MAX:
            message = f"a line has at most {SHEET_COLUMNS_MAX} columns, this one {len(first[1])}"
            self.errors.add(first[0], "columns_too_many", message)
            raise _OutOfBounds
        if self.layout is Layout.NATIVE:
            parse = _native_parser(first, self.cells, self.errors)
        else:
            parse = _voipswitch_parser(first, self.cells, self.errors)
        if parse is None:
            return _ignore
        take = self.sheet.taker(parse)
        if self.layout is Layout.VOIPSWITCH and first[1][0].strip() != "prefix":  # no header: the first row
            take(*first)
        return take


class _FirstFound(Exception):
    pass


def _sniffed(lines: Iterator[str]) -> tuple[Iterator[str], str]:
    """The lines as they were, and the separator their first line that is not blank uses."""
    seen: list[str] = []
    for line in lines:
        seen.append(line)
        if line.strip():
            break
    return itertools.chain(seen, lines), delimiter_of(seen[-1] if seen else "")


def _native_parser(header: tuple[int, list[str]], cells: _CellParser, errors: _Errors) -> RowParser | None:
    """The row parser for the columns the header names (Tollway's or a carrier's), or None when it is wrong."""
    line, names = header
    if tuple(name.strip() for name in names) == NATIVE_COLUMNS:
        return cells.native_entry
    found = map_columns(names)
    if not isinstance(found, ColumnMap):
        for problem in found:
            errors.add(line, problem.reason, problem.message)
        return None
    indexes, increment, width = found.indexes, found.increment, found.width
    minimal_time, resolution = NATIVE_COLUMNS.index("minimal_time"), NATIVE_COLUMNS.index("resolution")

    def parse(row: list[str]) -> RateEntry:
        _check_width(row, width)
        values = [row[i] if i >= 0 else "" for i in indexes]
        if increment >= 0 and row[increment].strip():
            values[minimal_time], values[resolution] = map(str, increment_of(row[increment]))
        return cells.native_entry(values)

    return parse


def _voipswitch_parser(first: tuple[int, list[str]], cells: _CellParser, errors: _Errors) -> RowParser | None:
    line, names = first[0], [name.strip() for name in first[1]]
    hint = voipswitch_hint(first[1]) if len(names) != VOIPSWITCH_WIDTH or names[0] == "prefix" else None
    if hint is not None:
        errors.add(line, hint.reason, hint.message)
        return None
    if names[0] == "prefix" and tuple(names) != VOIPSWITCH_COLUMNS:
        errors.add(line, "header_invalid", f"the VoipSwitch columns are {';'.join(VOIPSWITCH_COLUMNS)}")
        return None
    return cells.voipswitch_entry


def _check_width(row: list[str], width: int) -> None:
    if len(row) != width:
        raise Refusal("columns_invalid", f"expected {width} columns, found {len(row)}")


class _Sheet:
    """The entries read so far, their lines, and the prefixes that have more than one row."""

    def __init__(self, errors: _Errors) -> None:
        self.errors = errors
        self.entries: list[RateEntry] = []
        self.lines: list[int] = []
        self._first_index: dict[str, int] = {}
        self._repeated: dict[str, list[int]] = {}  # prefix -> indexes of its entries, in line order

    def taker(self, parse: RowParser) -> Take:
        """What makes each data row an entry or an error (a closure: this runs a million times a sheet)."""
        entries, lines, first_index, repeated, errors = (
            self.entries,
            self.lines,
            self._first_index,
            self._repeated,
            self.errors,
        )

        def take(line: int, row: list[str]) -> None:
            try:
                entry = parse(row)
            except Refusal as refusal:
                errors.add(line, refusal.reason, refusal.message)
                return
            index = len(entries)
            first = first_index.setdefault(entry.prefix, index)
            if first != index:
                repeated.setdefault(entry.prefix, [first]).append(index)
            entries.append(entry)
            lines.append(line)

        return take

    def check_overlaps(self) -> None:
        """Each row that could price an instant an earlier row of its prefix prices, naming the first such row."""
        overlap = _Overlap()
        for prefix, indexes in self._repeated.items():
            group = [self.entries[index] for index in indexes]
            for later in range(1, len(group)):
                earlier = next((i for i in range(later) if overlap(group[i], group[later])), None)
                if earlier is not None:
                    message = (
                        f"prefix {prefix} could be priced at the same instant by line {self.lines[indexes[earlier]]}"
                    )
                    self.errors.add(self.lines[indexes[later]], "rows_overlap", message)


class _Overlap:
    """``RateRow.overlaps`` of two entries of one prefix, skipped when their windows or validity are apart.

    Rows whose windows do not overlap, or whose validity periods do not, never price the same instant.
    The rows of a sheet share a few window objects, so whether two windows overlap is remembered by their
    identities (the entries keep them alive). An entry becomes a row once, resolved with any defaults:
    windows and validity do not depend on them.
    """

    def __init__(self) -> None:
        self._windows: dict[tuple[int, int], bool] = {}
        self._rows: dict[int, RateRow] = {}
        self._defaults = Defaults()

    def __call__(self, first: RateEntry, second: RateEntry) -> bool:
        key = (id(first.window), id(second.window))
        windows_meet = self._windows.get(key)
        if windows_meet is None:
            windows_meet = self._windows[key] = first.window.overlaps(second.window)
        if not windows_meet or _apart(first, second) or _apart(second, first):
            return False
        return self._row(first).overlaps(self._row(second))

    def _row(self, entry: RateEntry) -> RateRow:
        row = self._rows.get(id(entry))
        if row is None:
            row = self._rows[id(entry)] = entry.resolve(self._defaults)
        return row


def _apart(first: RateEntry, second: RateEntry) -> bool:
    """``first`` stops being valid before ``second`` starts."""
    return first.valid_to is not None and second.valid_from is not None and first.valid_to <= second.valid_from


# ---------------------------------------------------------------------------------------------- cells


class _CellParser:
    """Turns the cells of one row into a ``RateEntry``, raising a ``Refusal`` at the first bad cell.

    Amounts, whole numbers, rate multipliers and windows repeat across a sheet: each is parsed once.
    """

    def __init__(self, zone: ZoneInfo, *, decimal_comma: bool = False) -> None:
        self.zone = zone
        self.decimal_comma = decimal_comma  # a sheet separated by semicolons or tabs may write 0,013
        self._windows: dict[tuple[str, ...], WeeklyWindow] = {}
        self._amounts: dict[str, int] = {}
        self._integers: dict[str, int] = {}
        self._factors: dict[str, tuple[int, int]] = {}  # rate_multiplier -> (numerator, denominator)

    def native_entry(self, row: list[str]) -> RateEntry:
        if len(row) != NATIVE_WIDTH:
            _check_width(row, NATIVE_WIDTH)
        (prefix, description, price, connect_fee, minimal_time, resolution, grace_period, free_seconds) = row[:8]
        window_cells = (row[8], row[9], row[10], row[11])
        valid_from, valid_to = row[12], row[13]
        # Positional arguments, in RateEntry's field order: a keyword call costs a fifth more.
        return RateEntry(
            _prefix(prefix),
            _description(description),
            self.amount(price, "price"),
            self.amount(connect_fee, "connect_fee") if connect_fee.strip() else 0,
            self.integer(minimal_time, "minimal_time") if minimal_time else None,
            self.integer(resolution, "resolution", "resolution_invalid") if resolution else None,
            self.integer(grace_period, "grace_period") if grace_period else None,
            self.integer(free_seconds, "free_seconds") or 0 if free_seconds else 0,
            self._windows.get(window_cells) or self.window(window_cells, _native_window),
            self.instant(valid_from, "valid_from") if valid_from else None,
            self.instant(valid_to, "valid_to") if valid_to else None,
        )

    def voipswitch_entry(self, row: list[str]) -> RateEntry:
        if len(row) != VOIPSWITCH_WIDTH:
            _check_width(row, VOIPSWITCH_WIDTH)
        (prefix, description, voice_rate, from_day, to_day, from_hour, to_hour) = row[:7]
        (grace_period, minimal_time, resolution, multiplier, addition, surcharge_time, surcharge_amount) = row[7:14]
        defaults = DEFAULT_CELLS  # most cells of a VoipSwitch sheet are -1: skip the parsing of those
        resolution_seconds = (
            None if resolution in defaults else self.default_integer(resolution, "resolution", "resolution_invalid")
        )
        surcharge_seconds = 0 if surcharge_time in defaults else self.default_integer(surcharge_time, "surcharge_time")
        free_seconds = 0 if row[14] in defaults else self.default_integer(row[14], "free_seconds")
        if surcharge_seconds:
            _check_surcharge(surcharge_seconds, free_seconds or 0, resolution_seconds)
        window_cells = (from_day, to_day, from_hour, to_hour)
        return RateEntry(  # positional, in RateEntry's field order
            _prefix(prefix),
            _description(description),
            self.voipswitch_price(voice_rate, multiplier, addition),
            0 if surcharge_amount in defaults else self.default_amount(surcharge_amount, "surcharge_amount"),
            None if minimal_time in defaults else self.default_integer(minimal_time, "minimal_time"),
            resolution_seconds,
            None if grace_period in defaults else self.default_integer(grace_period, "grace_period"),
            surcharge_seconds or free_seconds or 0,
            self._windows.get(window_cells) or self.window(window_cells, _voipswitch_window),
        )

    def voipswitch_price(self, voice_rate: str, multiplier: str, addition: str) -> int:
        """voice_rate x rate_multiplier + rate_addition, rounded up to a whole micro-unit."""
        price = self.amount(voice_rate, "voice_rate")
        if multiplier not in DEFAULT_CELLS:
            factor = self._factors.get(multiplier)
            if factor is None:
                factor = _multiplier(multiplier.strip()).as_integer_ratio()
                _remember(self._factors, multiplier, factor)
            numerator, denominator = factor
            price = -(-price * numerator // denominator)
        if addition not in DEFAULT_CELLS:
            price += self.default_amount(addition, "rate_addition", signed=True)
        if price < 0:
            raise Refusal("price_invalid", "voice_rate x rate_multiplier + rate_addition is negative")
        return price

    def amount(self, text: str, name: str) -> int:
        """An amount such as 0.013, in micro-units: at most six decimals, never negative."""
        amounts = self._amounts
        micros = amounts.get(text)
        if micros is None:
            micros = _amount(text.strip().replace(",", ".") if self.decimal_comma else text.strip(), name)
            if len(amounts) < SHEET_CACHE_MAX:
                amounts[text] = micros
        if micros < 0:
            raise Refusal("price_invalid", f"{name} {_shown(text)} is negative")
        return micros

    def signed_amount(self, text: str, name: str) -> int:
        micros = self._amounts.get(text)
        if micros is None:
            micros = _amount(text.strip().replace(",", ".") if self.decimal_comma else text.strip(), name)
            _remember(self._amounts, text, micros)
        return micros

    def default_amount(self, text: str, name: str, *, signed: bool = False) -> int:
        """A VoipSwitch amount where -1 or an empty cell means 0."""
        if text in DEFAULT_CELLS or not text.strip():
            return 0
        micros = self._amounts.get(text)
        if micros is None:
            micros = self.signed_amount(text, name)
        if micros == DEFAULT_MICROS:
            return 0
        return micros if signed else self.amount(text, name)

    def integer(self, text: str, name: str, reason: str = "value_invalid") -> int | None:
        """A whole number, or None for an empty cell."""
        value = self._integers.get(text)
        if value is None:
            value = _optional_integer(text, name, reason)
            if value is not None:
                _remember(self._integers, text, value)
        return value

    def default_integer(self, text: str, name: str, reason: str = "value_invalid") -> int | None:
        """A VoipSwitch whole number, or None for -1 or an empty cell (the tariff's default)."""
        value = self.integer(text, name, reason)
        return None if value == -1 else value

    def instant(self, text: str, name: str) -> datetime | None:
        text = text.strip()
        return _instant(text, self.zone, name) if text else None

    def window(self, cells: tuple[str, ...], build: Callable[[list[str]], WeeklyWindow]) -> WeeklyWindow:
        window = self._windows.get(cells)
        if window is None:
            window = build([cell.strip() for cell in cells])
            _remember(self._windows, cells, window)
        return window


def _prefix(text: str) -> str:
    """A prefix in E.164 digits: "+44" and "0044" as carriers write them are 44. (Numbers are rated in E.164,
    whose digits never start with 0: a row of prefix 0044 could never match a call.)"""
    text = text.strip()
    if text[:1] == "+":
        return text[1:]
    return text[2:] if text[:2] == "00" and text[2:3] not in ("", "0") else text


def _description(text: str) -> str:
    """A description as it was before ``_written_text`` neutralised it: one leading apostrophe comes off
    when a formula character or another apostrophe follows it. An apostrophe a carrier wrote in front
    of a letter stays."""
    if text[:1] == NEUTRALIZER and (text[1:2] == NEUTRALIZER or restore_cell(text) != text):
        return text[1:]
    return text


def _written_text(text: str) -> str:
    """A description a spreadsheet will not run (``csvsafe``), and that ``_description`` reads back as it is:
    one starting with an apostrophe gets another in front, so that only the one added comes off."""
    return NEUTRALIZER + text if text[:1] == NEUTRALIZER else safe_cell(text)


def _remember(cache: dict[K, V], key: K, value: V) -> None:
    if len(cache) < SHEET_CACHE_MAX:
        cache[key] = value


def _amount(text: str, name: str) -> int:
    """Micro-units of an amount's text, exactly: ``Decimal`` holds 28 digits, the text is shorter."""
    if len(text) > AMOUNT_TEXT_MAX or not AMOUNT_PATTERN.fullmatch(text):
        raise Refusal("price_invalid", f"{name} {_shown(text)} is not an amount such as 0.013")
    micros = Decimal(text).scaleb(MICRO_DIGITS)  # in the EXACT context
    whole = int(micros)
    if whole != micros:
        raise Refusal("price_invalid", f"{name} {_shown(text)} has more than {MICRO_DIGITS} decimals")
    return whole


def _multiplier(text: str) -> Decimal:
    text = text.strip()
    if text in ("", VOIPSWITCH_DEFAULT):
        return Decimal(1)
    if not AMOUNT_PATTERN.fullmatch(text):
        raise Refusal("value_invalid", f"rate_multiplier {_shown(text)} is not a number")
    value = Decimal(text)
    if value == -1:
        return Decimal(1)
    if not 0 <= value <= MULTIPLIER_MAX:
        raise Refusal("value_invalid", f"rate_multiplier must be between 0 and {MULTIPLIER_MAX}, not {text}")
    return value


def _integer(text: str, name: str, reason: str = "value_invalid") -> int:
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit() and len(digits) <= INTEGER_DIGITS_MAX):
        raise Refusal(reason, f"{name} {_shown(text)} is not a whole number")
    return int(text)


def _optional_integer(text: str, name: str, reason: str = "value_invalid") -> int | None:
    if not text:
        return None
    text = text.strip()
    return None if not text else _integer(text, name, reason)


def _check_surcharge(surcharge_time: int, free_seconds: int, resolution: int | None) -> None:
    if surcharge_time < 0:
        raise Refusal("value_invalid", f"surcharge_time is -1 (none) or a number of seconds, not {surcharge_time}")
    if surcharge_time > 0 and free_seconds > 0:
        raise Refusal(
            "surcharge_unsupported",
            f"surcharge_time {surcharge_time} becomes Tollway's free seconds, so the row cannot also have "
            f"free_seconds {free_seconds}",
        )
    if surcharge_time > 0 and resolution is not None and resolution > 0 and surcharge_time % resolution:
        raise Refusal(
            "surcharge_unsupported",
            f"surcharge_time {surcharge_time} is not a multiple of resolution {resolution}: the seconds after "
            "the surcharge would be rounded differently from VoipSwitch",
        )


def _days(from_day: str, to_day: str, *, default: str) -> tuple[int, int]:
    if from_day == to_day == default:
        return WHOLE_WEEK
    if default in (from_day, to_day):
        raise Refusal("value_invalid", "give both from_day and to_day, or neither (the whole week)")
    return _integer(from_day, "from_day"), _integer(to_day, "to_day")


def _native_window(cells: list[str]) -> WeeklyWindow:
    from_day, to_day = _days(cells[0], cells[1], default="")
    from_time = (_time_of_day(cells[2], "from_time") if cells[2] else None) or MIDNIGHT
    to_time = _time_of_day(cells[3], "to_time", end=True) if cells[3] else None
    return WeeklyWindow(from_day, to_day, from_time, to_time)


def _voipswitch_window(cells: list[str]) -> WeeklyWindow:
    from_day, to_day = (cell or VOIPSWITCH_DEFAULT for cell in cells[:2])
    from_day_number, to_day_number = _days(from_day, to_day, default=VOIPSWITCH_DEFAULT)
    from_time = _voipswitch_hour(cells[2], "from_hour", end=False) or MIDNIGHT
    return WeeklyWindow(from_day_number, to_day_number, from_time, _voipswitch_hour(cells[3], "to_hour", end=True))


def _voipswitch_hour(text: str, name: str, *, end: bool) -> time | None:
    """HH:MM[:SS] or HHMM; None for -1, an empty cell or (as an end) 2400: the day's start or end."""
    if text in ("", VOIPSWITCH_DEFAULT):
        return None
    if ":" in text:
        return _time_of_day(text, name, end=end)
    value = _integer(text, name)
    hour, minute = divmod(value, 100)
    if end and value == 2400:
        return None
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise Refusal("value_invalid", f"{name} {_shown(text)} is not an hour such as 800 (08:00) or 2000")
    return time(hour, minute)


def _time_of_day(text: str, name: str, *, end: bool = False) -> time | None:
    """HH:MM or HH:MM:SS; as an end, 24:00 is the end of the day (None)."""
    match = TIME_PATTERN.fullmatch(text)
    if match is None:
        raise Refusal("value_invalid", f"{name} {_shown(text)} is not a time such as 08:00 or 08:00:30")
    hour, minute, second = (int(part or 0) for part in match.groups())
    if end and (hour, minute, second) == (24, 0, 0):
        return None
    if hour > 23 or minute > 59 or second > 59:
        raise Refusal("value_invalid", f"{name} {_shown(text)} is not a time of day")
    return time(hour, minute, second)


def _instant(text: str, zone: ZoneInfo, name: str) -> datetime:
    """An ISO 8601 date or date-time, as an instant in UTC; a naive one is a wall-clock time in ``zone``.

    UTC, because Python never finds an instant in a time zone's repeated hour equal to one in another zone.
    """
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        instant = value.replace(tzinfo=zone).astimezone(UTC)
        exists = instant.astimezone(zone).replace(tzinfo=None) == value
    except (ValueError, OverflowError):
        raise Refusal("value_invalid", f"{name} {_shown(text)} is not an ISO 8601 date or date-time") from None
    if not exists:
        raise Refusal("value_invalid", f"{name} {text} does not exist in {zone.key} (the clocks skip it)")
    return instant


def _shown(text: str) -> str:
    return repr(text if len(text) <= VALUE_SHOWN_MAX else text[:VALUE_SHOWN_MAX] + "…")


def zone_of(time_zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise Refusal("time_zone_invalid", f"{time_zone!r} is not a known time zone") from None


# ---------------------------------------------------------------------------------------------- writing


def write_sheet(entries: Iterable[RateEntry], *, layout: Layout, time_zone: str) -> Iterator[str]:
    """The sheet's text lines, each ending in a newline, header first.

    Refuses before producing any line when an entry cannot be written in the layout.
    """
    zone = zone_of(time_zone)
    rows = list(entries)
    _check_writable(rows, layout)
    return _written_lines(rows, layout, zone)


def _check_writable(rows: list[RateEntry], layout: Layout) -> None:
    if layout is Layout.VOIPSWITCH:
        dated = [row.prefix for row in rows if row.valid_from is not None or row.valid_to is not None]
        if dated:
            raise Refusal(
                "layout_unsupported",
                f"the VoipSwitch layout has no validity dates, but prefix {dated[0]} has them ({len(dated)} rows)",
            )


class _LastWrite:
    text = ""

    def write(self, text: str) -> int:
        self.text = text
        return len(text)


def _written_lines(rows: list[RateEntry], layout: Layout, zone: ZoneInfo) -> Iterator[str]:
    output = _LastWrite()
    # "\r\n" makes the writer quote a description holding a lone "\r"; each line then ends in "\n".
    writer = csv.writer(output, delimiter=DELIMITERS[layout], lineterminator="\r\n")
    # Descriptions go through csvsafe (_written_text); every other cell is a prefix, a number, a time or an
    # ISO date, which a spreadsheet never runs: a number such as -1 stays as it is.
    cells_of = _native_cells if layout is Layout.NATIVE else _voipswitch_cells
    writer.writerow(NATIVE_COLUMNS if layout is Layout.NATIVE else VOIPSWITCH_COLUMNS)
    yield output.text[:-2] + "\n"
    for row in rows:
        writer.writerow(cells_of(row, zone))
        yield output.text[:-2] + "\n"


def _native_cells(entry: RateEntry, zone: ZoneInfo) -> list[str]:
    window = entry.window
    whole_week = (window.from_day, window.to_day) == WHOLE_WEEK
    whole_day = window.from_time == MIDNIGHT and window.to_time is None
    return [
        entry.prefix,
        _written_text(entry.description),
        amount_text(entry.price_micros),
        amount_text(entry.connect_fee_micros),
        _optional_text(entry.minimal_time, ""),
        _optional_text(entry.resolution, ""),
        _optional_text(entry.grace_period, ""),
        str(entry.free_seconds),
        "" if whole_week else str(window.from_day),
        "" if whole_week else str(window.to_day),
        "" if whole_day else time_text(window.from_time),
        "" if window.to_time is None else time_text(window.to_time),
        "" if entry.valid_from is None else entry.valid_from.astimezone(zone).isoformat(),
        "" if entry.valid_to is None else entry.valid_to.astimezone(zone).isoformat(),
    ]


def _voipswitch_cells(entry: RateEntry, zone: ZoneInfo) -> list[str]:
    window = entry.window
    whole_week = (window.from_day, window.to_day) == WHOLE_WEEK
    whole_day = window.from_time == MIDNIGHT and window.to_time is None
    default = VOIPSWITCH_DEFAULT
    return [
        entry.prefix,
        _written_text(entry.description),
        amount_text(entry.price_micros),
        default if whole_week else str(window.from_day),
        default if whole_week else str(window.to_day),
        default if whole_day else time_text(window.from_time),
        default if whole_day else END_OF_DAY if window.to_time is None else time_text(window.to_time),
        _optional_text(entry.grace_period, default),
        _optional_text(entry.minimal_time, default),
        _optional_text(entry.resolution, default),
        "1",  # rate_multiplier
        "0",  # rate_addition
        "0",  # surcharge_time
        amount_text(entry.connect_fee_micros),  # surcharge_amount
        str(entry.free_seconds),
    ]


def _optional_text(value: int | None, default: str) -> str:
    return default if value is None else str(value)


def amount_text(micros: int) -> str:
    """An amount with exactly the digits it needs: 13000 -> "0.013", 1000000 -> "1"."""
    sign = "-" if micros < 0 else ""
    units, fraction = divmod(abs(micros), MICROS_PER_UNIT)
    return f"{sign}{units}.{fraction:06d}".rstrip("0") if fraction else f"{sign}{units}"


def time_text(value: time) -> str:
    """HH:MM, or HH:MM:SS when the seconds are not 0."""
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")
