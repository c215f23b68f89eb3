"""Every CSV Tollway writes is safe to open in a spreadsheet, and Tollway reads its own cells back."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tollway.csvsafe import restore_cell, safe_cell, safe_row


def test_a_formula_in_a_description_is_shown_as_text() -> None:
    assert safe_cell("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert safe_cell("@SUM(A1:A9)") == "'@SUM(A1:A9)"
    assert safe_cell("+44 premium") == "'+44 premium"
    assert safe_cell("-2+3") == "'-2+3"
    assert safe_cell("\t=1+1") == "'\t=1+1"
    assert safe_cell("\r=1+1") == "'\r=1+1"


def test_numbers_keep_their_sign_and_digits() -> None:
    assert safe_row([-1, Decimal("-1.500000"), "-0.036000", "+44", "1e5", 7, None, True]) == [
        "-1",
        "-1.500000",
        "-0.036000",
        "+44",
        "1e5",
        "7",
        "",
        "true",
    ]


def test_plain_text_is_untouched() -> None:
    assert safe_row(["United Kingdom - London", "4420", "a=b", "north-city:retail"]) == [
        "United Kingdom - London",
        "4420",
        "a=b",
        "north-city:retail",
    ]


@given(st.text())
def test_a_cell_written_and_read_back_is_the_original(text: str) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([safe_cell(text)])
    (cell,) = next(csv.reader(io.StringIO(buffer.getvalue(), newline="")))
    assert restore_cell(cell) == text


@given(st.text())
def test_no_written_cell_starts_a_formula(text: str) -> None:
    cell = safe_cell(text)
    assert not cell.startswith(("=", "@", "\t", "\r"))
    if cell.startswith(("+", "-")):
        Decimal(cell)  # only a number may start with a sign
