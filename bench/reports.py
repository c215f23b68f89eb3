"""Benchmark: a seller's call reports (``tollway.calls.reports.call_report``) over 1,000,000 call records.

    .venv/bin/python bench/reports.py                      # PostgreSQL and SQLite, 1,000,000 calls
    .venv/bin/python bench/reports.py --calls 200000 --no-sqlite

It loads the demo into a fresh database, places one real call per client through the credit-control engine
(authorize, then end), and copies those calls in SQL into ``--calls`` ended calls with their charge lines,
spread over the year before today (a call a minute; one in five unanswered). Then it times the report the
Reports page shows (its total, each day, the 20 best destinations and customers: five ``GROUP BY`` queries)
for the provider (every call) and for north-city (a reseller with about a third of them), over this month so
far, the last 31 days and the last 365 days. Each is run three times; the best and the worst are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch_database import bench_database, settle

from tollway.calls import reports
from tollway.calls import service as calls
from tollway.calls.service import CallRequest
from tollway.demo import load_demo
from tollway.logs import configure_logging
from tollway.store import migrate
from tollway.store.database import Database
from tollway.store.schema import call_charges
from tollway.store.schema import calls as calls_table

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CLIENTS = ("alice", "bob", "trunk-one", "corner-shop", "carol", "dave", "erin")
NUMBERS = ("+49 30 1234567", "+33 1 23 45 67 89", "+1 212 555 0100")
FIRST_ID = 10_000_000  # copied calls' ids: far from the real ones
RUNS = 3


def templates(database: Database, now: datetime) -> int:
    """One real call per client and number; the number of calls made."""
    made = 0
    for client in CLIENTS:
        for index, number in enumerate(NUMBERS):
            call_id = f"template-{client}-{index}"
            at = now - timedelta(days=800, minutes=made)  # before every copy: ids ascend with time
            answer = calls.authorize_call(database, CallRequest(call_id, client, "", number, answered=True), now=at)
            if answer["status"] == "authorized":
                calls.end_call(database, call_id, duration_seconds=60 + 7 * made, now=at + timedelta(seconds=60))
                made += 1
    return made


def copy_calls(database: Database, count: int, now: datetime) -> None:
    """``count`` copies of the template calls, a minute apart up to ``now`` (ids ascending with time, as the
    engine writes them), with their lines."""
    sqlite = database.engine.dialect.name == "sqlite"
    series = (
        "WITH RECURSIVE series(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM series WHERE g < :count) " if sqlite else ""
    )
    source = "series" if sqlite else "generate_series(1, :count) AS series(g)"
    minute = (
        "datetime(:now, '-' || (:count - g) || ' minutes')"
        if sqlite
        else "CAST(:now AS timestamptz) - (:count - g) * interval '1 minute'"
    )
    overrides = {
        "id": f"{FIRST_ID} + g",
        "call_id": "'copy-' || g",
        "created_at": minute,
        "answered_at": f"CASE WHEN g % 5 = 0 THEN NULL ELSE {minute} END",
        "ended_at": minute,
        "duration_seconds": "CASE WHEN g % 5 = 0 THEN 0 ELSE c.duration_seconds END",
    }
    columns = [column.name for column in calls_table.columns]
    chosen = ", ".join(overrides.get(name, f"c.{name}") for name in columns)
    line_columns = [column.name for column in call_charges.columns]
    line_chosen = ", ".join(f"{FIRST_ID} + g" if name == "call_id" else f"l.{name}" for name in line_columns)
    stamp = now.replace(tzinfo=None).isoformat(" ") if sqlite else now.isoformat()
    with database.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TEMPORARY TABLE template AS SELECT ROW_NUMBER() OVER (ORDER BY id) - 1 AS k, id FROM calls "
                "WHERE state = 'ended'"
            )
        )
        templates_count = connection.execute(text("SELECT COUNT(*) FROM template")).scalar_one()
        values = {"count": count, "now": stamp, "templates": templates_count}
        connection.execute(
            text(
                f"{series}INSERT INTO calls ({', '.join(columns)}) SELECT {chosen} FROM {source} "
                "JOIN template t ON t.k = g % :templates JOIN calls c ON c.id = t.id"
            ),
            values,
        )
        connection.execute(
            text(
                f"{series}INSERT INTO call_charges ({', '.join(line_columns)}) SELECT {line_chosen} FROM {source} "
                "JOIN template t ON t.k = g % :templates JOIN call_charges l ON l.call_id = t.id"
            ),
            values,
        )


def timed(database: Database, login: str, first_day: date, last_day: date) -> tuple[float, float, int]:
    durations: list[float] = []
    attempted = 0
    for _ in range(RUNS):
        start = time.perf_counter()
        report = reports.call_report(
            database, None, login=login, first_day=first_day, last_day=last_day, time_zone="UTC"
        )
        durations.append(time.perf_counter() - start)
        attempted = report.total.calls_attempted
    return min(durations), max(durations), attempted


def measure(database: Database, label: str, today: date) -> None:
    periods = {
        "this month": (today.replace(day=1), today),
        "31 days": (today - timedelta(days=30), today),
        "365 days": (today - timedelta(days=364), today),
    }
    for login in ("house", "north-city"):
        for name, (first, last) in periods.items():
            best, worst, attempted = timed(database, login, first, last)
            print(f"{label:10} {login:11} {name:11} {attempted:>9,} calls  best {best:6.3f} s  worst {worst:6.3f} s")


def run(url: str, label: str, count: int) -> None:
    database = Database(url)
    migrate.upgrade(database)
    load_demo(database)
    now = datetime.now(UTC).replace(microsecond=0)
    made = templates(database, now)
    start = time.perf_counter()
    copy_calls(database, count, now - timedelta(hours=1))
    print(f"{label}: {made} template calls copied into {count:,} in {time.perf_counter() - start:.1f} s")
    if database.engine.dialect.name == "postgresql":
        settle(url)
    else:
        with database.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    measure(database, label, now.date())
    database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--admin-url", default=os.environ.get("TOLLWAY_BENCH_ADMIN_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgresql", action="store_true")
    arguments = parser.parse_args()
    configure_logging(level="warning")
    if not arguments.no_postgresql:
        with bench_database(arguments.admin_url, "_reports") as url:
            run(url, "PostgreSQL", arguments.calls)
    if not arguments.no_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            run(f"sqlite:///{folder}/reports.db", "SQLite", arguments.calls)


if __name__ == "__main__":
    main()
