"""Listings on the command line never cut an amount: piped or narrow, they print plain columns; with
``--format`` they print a table, plain columns, CSV or JSON, and the CSV and JSON parse."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tollway.cli.common import Amount, Listing, OutputFormat, column_key, print_listing
from tollway.cli.main import app
from tollway.store.database import Database

# alice's 95 s call to London on a Monday at 10:00 UTC, every level at its own tariff (README's example).
QUOTE = ("tariff", "quote", "alice", "011 44 20 7946 0000", "--duration", "95", "--start", "2026-11-23T10:00:00")
QUOTED_AMOUNTS = {"alice": "0.043840", "north-city": "0.028738", "atlas-north": "0.026125", "atlas": "0.023750"}
LISTINGS = (
    ("rates", "list"),
    ("tariff", "list", "north-city"),
    QUOTE,
    ("plan", "list", "north-city"),
    ("calls", "list", "--all"),
    ("agent", "statement", "agent-ana"),
    ("notices", "list"),
    ("node", "tree"),
)


CLI_MODULES = (
    "tollway.cli.main",
    "tollway.cli.rating",
    "tollway.cli.calls",
    "tollway.cli.agents",
    "tollway.cli.notices",
)


def use_database(monkeypatch: pytest.MonkeyPatch, database: Database) -> None:
    """Commands run in this process use the test's database (one engine, which its fixture disposes)."""
    for module in CLI_MODULES:
        monkeypatch.setattr(f"{module}.database", lambda: database)


@pytest.fixture
def tollway(demo_database: Database, monkeypatch: pytest.MonkeyPatch) -> Any:
    use_database(monkeypatch, demo_database)
    monkeypatch.delenv("TOLLWAY_CONFIG", raising=False)
    runner = CliRunner()

    def run(*args: str, columns: int = 40) -> Any:
        result = runner.invoke(app, list(args), env={"COLUMNS": str(columns)}, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    return run


def test_a_piped_quote_prints_plain_columns_with_every_digit(tollway: Any) -> None:
    lines = tollway(*QUOTE).stdout.splitlines()
    assert lines[0] == "011 44 20 7946 0000 → 442079460000, 95 s"
    assert lines[1].split() == [
        "account",
        "tariff",
        "prefix",
        "destination",
        "price/min",
        "billed",
        "s",
        "plan",
        "s",
        "amount",
    ]
    for line in lines[2:]:
        account = line.split()[0]
        assert line.endswith(f"{QUOTED_AMOUNTS[account]} USD"), line
    assert not any(mark in "".join(lines) for mark in "┃│…")


def test_the_quote_as_csv_parses_with_amounts_and_currencies_apart(tollway: Any) -> None:
    rows = list(csv.DictReader(io.StringIO(tollway(*QUOTE, "--format", "csv").stdout)))
    assert {row["account"]: row["amount"] for row in rows} == QUOTED_AMOUNTS
    assert {row["amount_currency"] for row in rows} == {"USD"}
    assert rows[0]["price_min"] == "0.027688" and rows[0]["billed_s"] == "95"


def test_the_quote_as_json_parses(tollway: Any) -> None:
    charges = json.loads(tollway(*QUOTE, "--format", "json").stdout)
    assert [charge["account"] for charge in charges] == list(QUOTED_AMOUNTS)
    assert charges[0] == {
        "account": "alice",
        "tariff": "north-city:retail",
        "prefix": "4420",
        "destination": "United Kingdom - London",
        "price_min": "0.027688",
        "price_min_currency": "USD",
        "billed_s": 95,
        "plan_s": 0,
        "amount": "0.043840",
        "amount_currency": "USD",
    }


def test_a_table_asked_for_on_a_narrow_terminal_is_drawn_whole(tollway: Any) -> None:
    drawn = tollway(*QUOTE, "--format", "table", columns=40).stdout
    assert "┃ account" in drawn and "…" not in drawn
    for amount in QUOTED_AMOUNTS.values():
        assert f"{amount} USD" in drawn


def test_the_tree_as_json_lists_every_node_with_its_owner_and_balance(tollway: Any) -> None:
    nodes = {node["login"]: node for node in json.loads(tollway("node", "tree", "--format", "json").stdout)}
    assert nodes["house"]["balance"] is None  # the provider's balance is unlimited
    assert nodes["atlas-euro"] == {
        "login": "atlas-euro",
        "owner": "atlas",
        "position": "reseller L2",
        "status": "active",
        "balance": "1200.000000",
        "balance_currency": "EUR",
    }


@pytest.mark.parametrize("command", LISTINGS, ids=lambda command: " ".join(command[:2]))
def test_every_listing_prints_csv_and_json_that_parse(tollway: Any, command: tuple[str, ...]) -> None:
    as_csv = list(csv.reader(io.StringIO(tollway(*command, "--format", "csv").stdout)))
    as_json = json.loads(tollway(*command, "--format", "json").stdout)
    assert isinstance(as_json, list) and len(as_json) == len(as_csv) - 1
    assert [list(row) for row in as_json[:1]] == [as_csv[0]] if as_json else as_csv[0]
    assert all(len(row) == len(as_csv[0]) for row in as_csv)


# -- the helper itself, on a terminal of a chosen width -------------------------------------------------------

WIDE_LISTING = Listing(
    ("account", "description", "amount"),
    [
        ("trunk-one", "a destination with a long name that takes room", Amount(-1_234_567_890_123, "USD")),
        ("=cmd|' /C calc'!A0", "", Amount(1, "EUR")),
    ],
)


def terminal(width: int) -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, width=width, force_terminal=True, color_system=None), screen


def test_on_a_wide_terminal_a_listing_is_a_table() -> None:
    console, screen = terminal(200)
    print_listing(WIDE_LISTING, None, console=console)
    assert "┃ account" in screen.getvalue() and "-1234567.890123 USD" in screen.getvalue()


def test_on_a_narrow_terminal_a_listing_is_plain_columns_with_every_digit() -> None:
    console, screen = terminal(30)
    print_listing(WIDE_LISTING, None, console=console)
    lines = screen.getvalue().splitlines()
    assert lines[0].split() == ["account", "description", "amount"]
    assert lines[1].endswith("-1234567.890123 USD") and lines[2].endswith("0.000001 EUR")
    assert lines[1].index("-1234567") == lines[2].index("0.000001")  # aligned columns


def test_csv_neutralises_formulas_and_keeps_negative_amounts() -> None:
    console, screen = terminal(30)
    print_listing(WIDE_LISTING, OutputFormat.CSV, console=console)
    rows = list(csv.reader(io.StringIO(screen.getvalue())))
    assert rows[0] == ["account", "description", "amount", "amount_currency"]
    assert rows[1][2:] == ["-1234567.890123", "USD"]
    assert rows[2][0] == "'=cmd|' /C calc'!A0"


def test_column_keys_are_snake_case_words() -> None:
    assert column_key("valid from (UTC)") == "valid_from_utc"
    assert column_key("sent / next (UTC)") == "sent_next_utc"
    assert column_key("price/min") == "price_min"
