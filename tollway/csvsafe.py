"""Cells safe to open in a spreadsheet: every CSV Tollway writes goes through here.

A spreadsheet treats a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (and tab or carriage
return as a way to smuggle one past a naive check), so a destination named ``=cmd|' /C calc'!A0`` in a
rate sheet would run on the desk of whoever opens the export (OWASP's "CSV injection"). Such a cell gets a
leading apostrophe, which spreadsheets show as text and never evaluate. Numbers stay as they are: a
negative amount such as ``-1.500000`` is data, not a formula, and keeps its sign.

Readers of Tollway's own CSV (rate-sheet import) take the apostrophe off again with ``restore_cell``, so an
export read back in gives the original text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
NEUTRALIZER = "'"
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

__all__ = ["FORMULA_STARTS", "NEUTRALIZER", "restore_cell", "safe_cell", "safe_row"]


def safe_cell(value: object) -> str:
    """The text of one cell, neutralised if a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | Decimal):
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return NEUTRALIZER + text
    return text


def safe_row(values: Iterable[object]) -> list[str]:
    return [safe_cell(value) for value in values]


def restore_cell(text: str) -> str:
    """What ``safe_cell`` was given: the apostrophe it added in front of a formula-like text comes off."""
    if text.startswith(NEUTRALIZER) and text[1:].startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text[1:]):
        return text[1:]
    return text
