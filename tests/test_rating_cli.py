"""`tollway tariff ...` and `tollway rate` as an operator runs them: real processes, real files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tests.test_cli import tollway
from tollway.store.database import Database

CALLS = """call_id,account,tariff,caller,callee,start,duration
c1,alice,,15550001,011 44 20 7946 0000,2026-11-23T10:00:00Z,95
c2,alice,,15550001,1 212 555 1234,2026-11-23T10:05:00+00:00,120
c3,nobody,,1,442079460000,2026-11-23T10:00:00Z,60
c4,,house:wholesale,1,+33 1 23 45 67 89,2026-11-23T10:00:00,61
c5,alice,,1,442079460000,yesterday,60
"""


def test_batch_rating_writes_one_line_per_call_and_level_and_reports_bad_lines(
    database: Database, tmp_path: Path
) -> None:
    assert tollway("demo", "--dev", url=database.url).returncode == 0
    calls, rated = tmp_path / "calls.csv", tmp_path / "rated.csv"
    calls.write_text(CALLS)
    result = tollway("rate", str(calls), "-o", str(rated), url=database.url)
    assert result.returncode == 1  # two calls could not be rated
    assert f"{calls}: line 4: account nobody not found (account_not_found)" in result.stderr
    assert f"{calls}: line 6: 'yesterday' is not an ISO 8601 date and time (start_invalid)" in result.stderr
    assert "rated 3 of 5 calls, 2 failed" in result.stderr
    lines = list(csv.DictReader(io.StringIO(rated.read_text())))
    london = [
        (r["level"], r["account"], r["prefix"], r["billed_seconds"], r["amount"]) for r in lines if r["call_id"] == "c1"
    ]
    assert london == [
        ("0", "alice", "4420", "95", "0.043840"),
        ("1", "north-city", "4420", "95", "0.028738"),
        ("2", "atlas-north", "4420", "95", "0.026125"),
        ("3", "atlas", "4420", "95", "0.023750"),
    ]
    new_york = next(r for r in lines if r["call_id"] == "c2" and r["level"] == "0")
    assert (new_york["plan_seconds"], new_york["amount"]) == ("120", "0.000000")  # alice's talk-100 plan
    paris = [r for r in lines if r["call_id"] == "c4"]
    assert [(r["tariff"], r["prefix"], r["amount"]) for r in paris] == [("house:wholesale", "33", "0.018300")]  # 61 s
    assert [r["error"] for r in lines if r["call_id"] in ("c3", "c5")] == ["account_not_found", "start_invalid"]


def test_importing_a_bad_sheet_lists_every_bad_line_and_changes_nothing(database: Database, tmp_path: Path) -> None:
    assert tollway("demo", "--dev", url=database.url).returncode == 0
    assert tollway("tariff", "create", "north-city", "promo", "--resolution", "6", url=database.url).returncode == 0
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("prefix,description,price\n44,UK,0.02\n33,France,0.018\n")
    bad.write_text("prefix,description,price\n44,UK,0.02\n4x,Bad,0.01\n33,France,-1\n")
    imported = tollway("tariff", "import", "north-city:promo", str(good), url=database.url)
    assert imported.returncode == 0 and "imported 2 rows into north-city:promo" in imported.stdout
    refused = tollway("tariff", "import", "north-city:promo", str(bad), url=database.url)
    assert refused.returncode == 1
    assert f"{bad}:3: " in refused.stderr and "(prefix_invalid)" in refused.stderr
    assert f"{bad}:4: " in refused.stderr and "(price_invalid)" in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("error: ")
    shown = tollway("tariff", "show", "north-city:promo", url=database.url)
    assert "rows of its own: 2" in shown.stdout
    exported = tollway("tariff", "export", "north-city:promo", "--format", "voipswitch", url=database.url)
    assert exported.returncode == 0
    assert exported.stdout.splitlines()[1:] == [
        "33;France;0.018;-1;-1;-1;-1;-1;-1;-1;1;0;0;0;0",
        "44;UK;0.02;-1;-1;-1;-1;-1;-1;-1;1;0;0;0;0",
    ]


def test_tariffs_and_plans_are_managed_from_the_command_line(database: Database) -> None:
    assert tollway("demo", "--dev", url=database.url).returncode == 0
    created = tollway(
        "tariff",
        "create",
        "north-city",
        "gold",
        "--base",
        "atlas-north:standard",
        "--multiplier",
        "1.5",
        url=database.url,
    )
    assert created.returncode == 0 and "created tariff north-city:gold" in created.stdout
    assert tollway("tariff", "assign", "bob", "north-city:gold", url=database.url).returncode == 0
    quoted = tollway("tariff", "quote", "bob", "+442079460000", "--duration", "60", url=database.url)
    # atlas-north:standard 4420 is 0.01815; x1.5 = 0.027225 a minute.
    assert quoted.returncode == 0 and "0.027225 USD" in quoted.stdout
    plan = tollway(
        "plan",
        "create",
        "north-city",
        "euro-100",
        "--fee",
        "3",
        "--included-minutes",
        "100",
        "--prefix",
        "33",
        url=database.url,
    )
    assert plan.returncode == 0, plan.stderr
    assert "north-city:euro-100" in tollway("plan", "list", "north-city", url=database.url).stdout
    assert tollway("plan", "assign", "bob", "north-city:euro-100", url=database.url).returncode == 0
    again = tollway("plan", "assign", "bob", "north-city:euro-100", url=database.url)
    assert again.returncode == 1 and again.stderr == "error: bob already has a plan (plan_exists)\n"
    listed = tollway("tariff", "list", "north-city", url=database.url)
    assert "north-city:gold" in listed.stdout and "x1.5" in listed.stdout
